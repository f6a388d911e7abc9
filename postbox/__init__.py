"""Postbox: an end-to-end encrypted, self-hostable postbox for public authorities."""

__version__ = "0.1.0"
