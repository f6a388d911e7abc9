"""Legal delivery: signed delivery records, read receipts and the legal clock (see hooks.py)."""
