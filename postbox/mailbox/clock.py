"""Time as the protocol counts it: integer Unix milliseconds.

Services take a :data:`Clock` so tests can move time (challenge expiry, token lifetimes,
tree-head intervals) without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns() // 1_000_000
