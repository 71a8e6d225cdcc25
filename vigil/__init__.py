"""Vigil: open, accountable video analytics for city CCTV."""

__version__ = "0.1.0"
