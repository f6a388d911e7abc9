"""The inbox feature: reading mailboxes, moving and deleting messages, retention."""
