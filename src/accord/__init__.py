"""Accord: an open, TAK-compatible situational-awareness server."""

__version__ = "0.1.0"
