"""E-mail notifications: the outbox worker, its sinks (SMTP, .eml files) and templates."""
