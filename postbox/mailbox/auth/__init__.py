"""Login and sessions (PROTOCOL.md §4): challenges, signed logins, access and refresh tokens,
per-address limits and per-account delays, bundles, passphrase change and recovery login.

``routes.start`` creates the services (``app[ACCOUNTS]``, ``app[AUDIT]``, ``app[AUTH]``) and
installs the token verifier at ``app[TOKENS]``; ``routes.setup_routes`` adds the routes.
"""
