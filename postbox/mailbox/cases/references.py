"""Reference numbers (Aktenzeichen): an organisation's pattern, parsed, checked and formatted.

Pattern syntax: literal characters from ``A-Z``, ``a-z``, ``0-9``, ``- / . _`` and space, and these
placeholders:

| placeholder | becomes |
| --- | --- |
| ``{year}`` | the four-digit year, in the organisation's time zone |
| ``{yy}`` | its last two digits |
| ``{seq}`` | the running number, without padding |
| ``{seq:N}`` | the running number, zero-padded to at least N digits (1 ≤ N ≤ 12) |

Exactly one ``{seq…}`` is required; a pattern is at most 64 characters and its longest
possible reference too. The running number counts per organisation and per year when the
pattern names the year (``{year}`` or ``{yy}``), else once for the organisation (counter
year 0), so that a reference is never handed out twice. It never goes back: changing the
pattern keeps the counter. Example: ``ABH-{year}-{seq:6}`` → ``ABH-2026-000123``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from postbox.crypto.encoding import MAX_SAFE_INTEGER

MAX_PATTERN_CHARS: Final = 64
MAX_REFERENCE_CHARS: Final = 64
MAX_SEQ_WIDTH: Final = 12
#: the pattern of an organisation that has not set its own
DEFAULT_PATTERN: Final = "{year}-{seq:6}"
#: the time zone years are counted in when the organisation has not set one
DEFAULT_TIME_ZONE: Final = "Europe/Berlin"

_TOKEN: Final = re.compile(r"\{(year|yy|seq(?::([0-9]{1,2}))?)\}|([A-Za-z0-9/._ -]+)")
#: a JSON-Schema-compatible regex of the syntax (for the OpenAPI document)
PATTERN_REGEX: Final = r"^(?:\{year\}|\{yy\}|\{seq(?::[0-9]{1,2})?\}|[A-Za-z0-9/._ -])+$"


class PatternError(ValueError):
    """The pattern does not follow the syntax (the message says where)."""


@dataclass(frozen=True)
class Pattern:
    text: str
    parts: tuple[tuple[str, str | int], ...]  # ("lit", text) | ("year"|"yy", "") | ("seq", width)

    @property
    def uses_year(self) -> bool:
        return any(kind in ("year", "yy") for kind, _ in self.parts)

    def counter_year(self, year: int) -> int:
        """The counter a reference of ``year`` draws from (0: one counter for all years)."""
        return year if self.uses_year else 0

    def format(self, year: int, seq: int) -> str:
        out: list[str] = []
        for kind, value in self.parts:
            if kind == "lit":
                out.append(str(value))
            elif kind == "year":
                out.append(f"{year:04d}")
            elif kind == "yy":
                out.append(f"{year % 100:02d}")
            else:
                out.append(f"{seq:0{int(value)}d}")
        return "".join(out)


def parse(text: object) -> Pattern:
    """A checked pattern, or :class:`PatternError`."""
    if not isinstance(text, str) or not text:
        raise PatternError("a pattern is a non-empty string")
    if len(text) > MAX_PATTERN_CHARS:
        raise PatternError(f"a pattern has at most {MAX_PATTERN_CHARS} characters")
    parts: list[tuple[str, str | int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PatternError(
                f"unexpected {text[pos]!r} at position {pos}: use letters, digits, - / . _ "
                "space and {year} {yy} {seq} {seq:N}"
            )
        if m.group(3) is not None:
            parts.append(("lit", m.group(3)))
        elif m.group(1) in ("year", "yy"):
            parts.append((m.group(1), ""))
        else:
            width = int(m.group(2)) if m.group(2) is not None else 1
            if not 1 <= width <= MAX_SEQ_WIDTH:
                raise PatternError(f"{{seq:N}} takes 1 ≤ N ≤ {MAX_SEQ_WIDTH}")
            parts.append(("seq", width))
        pos = m.end()
    if sum(1 for kind, _ in parts if kind == "seq") != 1:
        raise PatternError("a pattern has exactly one {seq} or {seq:N}")
    pattern = Pattern(text, tuple(parts))
    if len(pattern.format(9999, MAX_SAFE_INTEGER)) > MAX_REFERENCE_CHARS:
        raise PatternError(f"its references could exceed {MAX_REFERENCE_CHARS} characters")
    return pattern


def zone(name: str | None) -> ZoneInfo:
    """The organisation's time zone (an unknown name falls back to the default)."""
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def year_at(ms: int, tz: ZoneInfo) -> int:
    """The calendar year of the instant ``ms`` in ``tz`` (New Year's Eve 23:30 UTC is
    already the next year in Berlin)."""
    return datetime.fromtimestamp(ms // 1000, tz).year
