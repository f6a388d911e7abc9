"""Accounts: who exists, their login credentials (peppered verifiers) and key bundles.

:class:`~postbox.mailbox.accounts.service.AccountService` (``app[ACCOUNTS]``) creates
accounts inside a caller's transaction (activation, registration, the operator CLI) and
reads, wraps and swaps key bundles; :mod:`~postbox.mailbox.accounts.store` holds the
queries. Login, sessions and bundle routes live in :mod:`postbox.mailbox.auth`.
"""
