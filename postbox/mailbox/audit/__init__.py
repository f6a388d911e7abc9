"""The hash-chained audit log of security events (``app[AUDIT]``).

See :class:`~postbox.mailbox.audit.service.Audit` for the chain and its guarantees.
"""
