"""The harvest service."""
