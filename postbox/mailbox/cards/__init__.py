"""Team mailbox cards: a team's and its organisation's names for whoever may write to it
(see service.py)."""
