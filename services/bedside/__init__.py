"""The bedside service."""
