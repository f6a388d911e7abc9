"""The aiohttp server: the blind courier (accounts, mailboxes, messages, receipts)."""
