"""Team mailboxes: members, team keys and their opaque wraps (see service.py)."""
