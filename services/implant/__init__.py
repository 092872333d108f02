"""The implant service."""
