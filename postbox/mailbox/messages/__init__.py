"""Sending messages: ``POST /api/v1/messages`` (PROTOCOL.md §5, §8; docs/protocol.md §13.9)."""
