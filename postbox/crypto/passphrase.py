"""Passphrase rules at creation and the strength estimate (PROTOCOL.md §4).

A new passphrase (account creation, passphrase change, after a recovery) must pass
:func:`check_new_passphrase`: no code point whose NFKC form may differ between Unicode
versions, at most :data:`MAX_PASSPHRASE_CHARS` code points after NFKC, and an estimated
strength (:func:`passphrase_strength`) of at least :data:`STRENGTH_THRESHOLD_BITS`. Both
are specified exactly below; ``passphrase.js`` implements the same algorithm and a
cross-language test compares both on a corpus. :func:`generate_passphrase` draws a
passphrase that passes.

Only new passphrases are checked: key derivation (:mod:`postbox.crypto.bundle`, which
calls :func:`check_new_passphrase` when sealing under a new passphrase) takes any
passphrase that NFKC and UTF-8 can encode.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from postbox.crypto import crockford
from postbox.crypto.errors import WeakPassphrase
from postbox.crypto.primitives import random_bytes

# --- parameters --------------------------------------------------------------------------
#: a new passphrase needs an estimated strength of at least this many bits
STRENGTH_THRESHOLD_BITS: Final = 60
MAX_PASSPHRASE_CHARS: Final = 1024  # code points after NFKC
GENERATED_PASSPHRASE_BYTES: Final = 15  # 120 bits → 24 Crockford symbols, 6 groups of 4

#: reason codes carried as the message of :class:`WeakPassphrase`
REASONS: Final = (
    "empty",
    "too_long",
    "surrogate",
    "non_bmp",
    "private_use",
    "unassigned",
    "control",
    "too_weak",
)


# --- rules at creation -------------------------------------------------------------------
def _code_point_problem(cp: int) -> str | None:
    if cp > 0xFFFF:
        return "non_bmp"
    category = unicodedata.category(chr(cp))
    if category == "Cs":
        return "surrogate"
    if category == "Co":
        return "private_use"
    if category == "Cn":
        return "unassigned"
    if category == "Cc":
        return "control"
    return None


def passphrase_problem(passphrase: str) -> str | None:
    """The reason code a new passphrase is refused for, or None if it is acceptable.

    In this order: ``empty``; then, for each code point of the passphrase as typed and
    then of its NFKC form, left to right, the first of ``non_bmp`` (> U+FFFF),
    ``surrogate`` (Cs), ``private_use`` (Co), ``unassigned`` (Cn), ``control`` (Cc);
    then ``too_long`` (more than 1024 code points after NFKC); then ``too_weak``
    (:func:`passphrase_strength` below :data:`STRENGTH_THRESHOLD_BITS`).

    Unassigned, private-use and non-BMP code points are refused because their NFKC form
    may differ between Unicode versions (Python's tables here are 14.0, a browser's may be
    newer): a passphrase must derive the same key on every client, forever. Residual risk:
    a code point assigned in a newer version than another client's tables is accepted by
    the newer client and treated as unassigned (NFKC-unchanged) by the older one; if it
    has a compatibility decomposition the two derive different keys. Normalization
    stability guarantees that once both know a code point, its NFKC never changes.
    """
    if not isinstance(passphrase, str):
        raise TypeError("passphrase must be a str")
    if passphrase == "":
        return "empty"
    normalized = unicodedata.normalize("NFKC", passphrase)
    for text in (passphrase, normalized):
        for ch in text:
            problem = _code_point_problem(ord(ch))
            if problem is not None:
                return problem
    if len(normalized) > MAX_PASSPHRASE_CHARS:
        return "too_long"
    if passphrase_strength(passphrase) < STRENGTH_THRESHOLD_BITS:
        return "too_weak"
    return None


def check_new_passphrase(passphrase: str) -> None:
    """Raise :class:`WeakPassphrase` (message = reason code) unless acceptable at creation."""
    problem = passphrase_problem(passphrase)
    if problem is not None:
        raise WeakPassphrase(problem)


# --- strength estimate -------------------------------------------------------------------
# Character classes and their pool sizes. Only ASCII is told apart: case mapping and
# letter categories of other scripts vary between Unicode versions, so every non-ASCII code
# point counts as one class of a typical alphabet's size.
POOL_LOWER: Final = 26  # a-z
POOL_UPPER: Final = 26  # A-Z
POOL_DIGIT: Final = 10  # 0-9
POOL_SYMBOL: Final = 33  # every other code point below U+0080 (space and punctuation)
POOL_OTHER: Final = 40  # any code point from U+0080
WORD_QUARTER_BITS: Final = 40  # a common word costs 10 bits, whatever its length
_LEET: Final = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
    "!": "i",
}

#: Very common passwords and base words, written for this project (no third-party list).
#: Letters only, lower case, NFKC; matched after ASCII lower-casing and leet mapping.
COMMON_WORDS: Final = frozenset(
    """
    abcd access admin administrator alexander amazon angel anna apple asdf asdfgh
    asdfghjkl ashley baby baseball batman bayern berlin bitte blink butterfly charlie
    cheese chelsea chocolate computer cookie daniel deutschland dragon eintracht
    familie flower football freedom fussball galatasaray geheim hallo hamburg hannah
    hello hockey hunter iloveyou internet istanbul jennifer jessica jordan junior
    killer kiev kyiv lasagne letmein liebe love lovely maggie master matrix michael
    michelle monkey mustang nicole ninja passw passwort password passwords pepper
    postbox postfach princess qazwsx qwer qwert qwertz qwerty qwertyuiop robert
    schalke schatz secret shadow soccer sommer starwars summer sunshine superman
    tigger trustno welcome whatever willkommen winter yxcvb zxcvbn zxcvbnm
    şifre sifre parola merhaba ankara пароль кохання сонечко привіт україна
    """.split()  # noqa: SIM905 - a word block reads better than 110 quoted lines
)
_MIN_WORD: Final = min(len(w) for w in COMMON_WORDS)
_MAX_WORD: Final = max(len(w) for w in COMMON_WORDS)


def _ascii_lower(cp: int) -> int:
    return cp + 32 if 0x41 <= cp <= 0x5A else cp


def _char_class_pool(cp: int) -> tuple[str, int]:
    if 0x61 <= cp <= 0x7A:
        return "lower", POOL_LOWER
    if 0x41 <= cp <= 0x5A:
        return "upper", POOL_UPPER
    if 0x30 <= cp <= 0x39:
        return "digit", POOL_DIGIT
    if cp < 0x80:
        return "symbol", POOL_SYMBOL
    return "other", POOL_OTHER


def _quarter_log2(pool: int) -> int:
    """floor(4 · log2(pool)) in integers: the largest k with 2^k ≤ pool^4."""
    target = pool**4
    k = 0
    while 2 ** (k + 1) <= target:
        k += 1
    return k


def passphrase_strength(passphrase: str) -> int:
    """A deterministic strength estimate in whole bits, identical in Python and JS.

    Algorithm (integers only; "quarter bits" are 4 x bits):

    1. ``s`` = the code points of NFKC(passphrase); empty → 0.
    2. ``t`` = ``s`` with ASCII A-Z lower-cased (nothing else); ``u`` = ``t`` with the leet
       map 0→o 1→i 3→e 4→a 5→s 7→t @→a $→s !→i applied.
    3. Pool ``P`` = sum over the classes present in ``s`` of: a-z 26, A-Z 26, 0-9 10,
       other code points below U+0080 33, code points from U+0080 40. Each counted
       character is worth ``b = floor(4·log2(P))`` quarter bits (largest k, 2^k ≤ P^4).
    4. Common words: scanning ``u`` from the left, at each position take the longest word
       of :data:`COMMON_WORDS` that starts there; its characters are *matched* and the
       scan continues after it; each match adds 40 quarter bits (10 bits).
    5. For every position i (0-based) the character is *patterned* if
       ``t[i] == t[i-1]`` (repeat), or ``t[i]-t[i-1] == t[i-1]-t[i-2]`` with
       ``|t[i]-t[i-1]| == 1`` (a run like ``abc``, ``987``), or the trigram
       ``t[i-2..i]`` already occurred starting at an index ≤ i-3 (a repeated chunk).
    6. Every character neither matched nor patterned adds ``b``.
    7. Result = total quarter bits // 4.

    This is a floor against the commonest weak choices (short, repeated, sequential,
    dictionary-based), not a guarantee: it overrates human-chosen text that looks varied.
    """
    if not isinstance(passphrase, str):
        raise TypeError("passphrase must be a str")
    s = [ord(ch) for ch in unicodedata.normalize("NFKC", passphrase)]
    n = len(s)
    if n == 0:
        return 0
    t = [_ascii_lower(cp) for cp in s]
    u = "".join(_LEET.get(chr(cp), chr(cp)) for cp in t)

    pools: dict[str, int] = dict(_char_class_pool(cp) for cp in s)
    per_char = _quarter_log2(sum(pools.values()))

    matched = [False] * n
    quarters = 0
    i = 0
    while i < n:
        length = 0
        for size in range(min(_MAX_WORD, n - i), _MIN_WORD - 1, -1):
            if u[i : i + size] in COMMON_WORDS:
                length = size
                break
        if length:
            for j in range(i, i + length):
                matched[j] = True
            quarters += WORD_QUARTER_BITS
            i += length
        else:
            i += 1

    seen: set[tuple[int, int, int]] = set()
    for i in range(n):
        patterned = i >= 1 and t[i] == t[i - 1]
        if i >= 2:
            step = t[i] - t[i - 1]
            if abs(step) == 1 and step == t[i - 1] - t[i - 2]:
                patterned = True
            trigram = (t[i - 2], t[i - 1], t[i])
            if trigram in seen:
                patterned = True
            seen.add(trigram)
        if not matched[i] and not patterned:
            quarters += per_char
    return quarters // 4


# --- generated passphrases ---------------------------------------------------------------
def generate_passphrase(*, entropy: bytes | None = None) -> str:
    """A random passphrase: 6 groups of 4 lower-case Crockford symbols (120 bits).

    ``entropy`` (15 bytes) fixes it for tests. With fresh randomness the (astronomically
    rare) draw that fails :func:`passphrase_problem` is redrawn, so the result always
    passes; with given entropy such a draw raises ``ValueError``.
    """
    while True:
        raw = random_bytes(GENERATED_PASSPHRASE_BYTES) if entropy is None else entropy
        if len(raw) != GENERATED_PASSPHRASE_BYTES:
            raise ValueError("entropy must be 15 bytes")
        phrase = crockford.group(crockford.encode(raw).lower(), 4, "-")
        if passphrase_problem(phrase) is None:
            return phrase
        if entropy is not None:
            raise ValueError("this entropy gives a passphrase that fails the rules")
