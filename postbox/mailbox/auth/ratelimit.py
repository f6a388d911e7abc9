"""Online guessing: per-address limits and the per-account exponential delay (pure rules).

**Per-address limit.** Fixed one-minute windows of ``settings.login_rate_per_minute``
requests per client address, counted separately for challenges and for login attempts
(``rate_limits`` rows keyed ``challenge-ip:<h>`` / ``login-ip:<h>``). The address is
``request.remote``, or — only with ``settings.trusted_proxy`` — the last entry of
``X-Forwarded-For`` (the one our own proxy appended; earlier entries are the client's to
forge). IPv6 addresses count per /64, because one host usually owns a whole /64. The key
holds ``H(key=K_addr, address)`` rather than the address: the database keeps no IP
addresses, and a copy of it cannot test guesses without the server secret.

**Per-account delay.** After ``n`` failed logins since the last success the account waits
``min(cap, base · 2^(n-1))`` ms before the next attempt is *evaluated*; an attempt during
the wait is answered 429 with ``Retry-After`` without looking at its signature (else the
answer would tell a guesser whether the guess was right) and does not count as a failure.
It is never a lockout: the wait is capped (60 s by default) and a correct login always
succeeds once the wait is over. The failure count is forgotten ``FAILURE_MEMORY_MS`` after
the last wait ended, so a typo months ago does not cost the cap today.

**Unknown login names behave the same.** A name without an account keeps the same state
(failures, next attempt) in a ``rate_limits`` row keyed ``login-delay:<H(key=K_name,
name)>``, updated by the same rules at the same points; so probing a name — fail, retry at
once, wait — gives the same 401/429 sequence and the same ``Retry-After`` whether or not
the account exists. Rows of unknown names are swept only when a real account would also
have forgotten its failures. What still differs: a real account's counter resets when its
owner logs in, which a prober watching one name for a long time could notice.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from postbox.crypto.encoding import b64e
from postbox.crypto.primitives import H

WINDOW_MS: Final = 60_000
#: the failure count is forgotten this long after the last wait ended
FAILURE_MEMORY_MS: Final = 24 * 3600 * 1000
IPV6_PREFIX: Final = 64
MAX_EXPONENT: Final = 40  # base · 2^40 is beyond any sane cap; keeps the integer small

LOGIN_IP: Final = "login-ip:"
CHALLENGE_IP: Final = "challenge-ip:"
LOGIN_DELAY: Final = "login-delay:"
WINDOW_PREFIXES: Final = (LOGIN_IP, CHALLENGE_IP)


@dataclass(frozen=True)
class DelayState:
    failures: int = 0
    next_attempt: int = 0  # ms; no attempt is evaluated before it


class DelayPolicy:
    """``min(cap, base · 2^(n-1))`` ms after the n-th failure; forgotten after a day."""

    def __init__(self, base_ms: int, cap_ms: int) -> None:
        self.base_ms = max(0, base_ms)
        self.cap_ms = max(0, cap_ms)

    def delay_ms(self, failures: int) -> int:
        if failures <= 0:
            return 0
        return min(self.cap_ms, self.base_ms << min(failures - 1, MAX_EXPONENT))

    def current(self, state: DelayState, now: int) -> DelayState:
        """The state as it counts now (a long-past history is forgotten)."""
        if state.failures and now >= state.next_attempt + FAILURE_MEMORY_MS:
            return DelayState()
        return state

    def wait_ms(self, state: DelayState, now: int) -> int:
        """How long until an attempt is evaluated (0: now)."""
        return max(0, self.current(state, now).next_attempt - now)

    def after_failure(self, state: DelayState, now: int) -> DelayState:
        failures = self.current(state, now).failures + 1
        return DelayState(failures, now + self.delay_ms(failures))

    def forgotten_before(self, now: int) -> int:
        """Delay rows whose ``next_attempt`` is older than this are forgotten (sweepable)."""
        return now - FAILURE_MEMORY_MS


def window_start(now: int) -> int:
    return now - now % WINDOW_MS


def retry_after_s(wait_ms: int) -> int:
    """Whole seconds to wait (at least 1), rounding up."""
    return max(1, -(-wait_ms // 1000))


def client_address(remote: str | None, forwarded_for: str | None, *, trusted_proxy: bool) -> str:
    """The address rate limits count by (see the module doc)."""
    address = remote or ""
    if trusted_proxy and forwarded_for:
        last = forwarded_for.split(",")[-1].strip()
        if last:
            address = last
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class Pseudonyms:
    """Keyed hashes that stand in for login names and addresses in the database and logs.

    Keys are derived from ``K_pepper`` (outside the database) with their own labels, so
    these values cannot be reversed by guessing names or addresses from a database copy.
    """

    def __init__(self, pepper: bytes) -> None:
        self._name_key = H(b"postbox/server/login-name", key=pepper)
        self._address_key = H(b"postbox/server/address", key=pepper)

    def __repr__(self) -> str:
        return "Pseudonyms()"

    def login(self, normalised_login: str) -> str:
        return b64e(H(normalised_login.encode("utf-8"), key=self._name_key))

    def address(self, address: str) -> str:
        return b64e(H(address.encode("utf-8"), key=self._address_key))
