"""The imaging service."""
