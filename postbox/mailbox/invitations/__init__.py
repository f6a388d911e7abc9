"""Invitations, activation and self-registration (see service.py)."""
