"""cj.json: canonical JSON (PROTOCOL.md §1, §10).

Each case is a ``value`` and the ``bytes`` of its canonical encoding; each reject case is
``bytes`` that the wire check must refuse, with the error name ``NonCanonical``.
"""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import b64e, cj

SAFE = 2**53 - 1

VALUES: list[tuple[str, Any]] = [
    ("empty object", {}),
    ("empty array", []),
    ("empty string", ""),
    ("literals", [True, False, None]),
    ("integers", [0, 1, -1, 10, -10, 255, 4096, SAFE, -SAFE, 2**31, -(2**31), 2**32 + 1]),
    ("keys sorted by UTF-16 code units",
     {"b": 1, "a": 2, "aa": 3, "ab": 4, "": 5, "B": 6, "\u00e9": 7, "\ufb01": 8}),
    ("non-BMP key sorts before U+E000..U+FFFF keys",
     {"\ue000": 1, "\uffff": 2, "\U0001f600": 3, "\U00010000": 4, "\ud7ff": 5, "z": 6}),
    ("escapes", "\"\\/\b\f\n\r\t"),
    ("every control character", "".join(chr(c) for c in range(0x20))),
    ("DEL, line and paragraph separators stay literal", "\x7f\u2028\u2029\u0085"),
    ("scripts", ["Grüße", "İstanbul ışık", "مرحبا بالعالم", "Привіт, ґанок", "Здравствуйте",
                 "你好", "🙂👩‍👩‍👧"]),
    ("bidi and invisible characters stay literal", "\u202eabc\u202c\u200b\ufeff"),
    ("nested", {"header": {"to": ["a", "b"], "rcpt": [{"mailbox": "a", "kid": "k"}]},
                "n": [[[]], {}], "x": {"y": {"z": None}}}),
    ("32 levels of nesting", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
    ("keys that need escaping", {"\n": 1, '"': 2, "\\": 3, "\u0000": 4}),
    ("a signed object", {"v": 1, "subject": "AAAAAAAAAAAAAAAAAAAAAA", "kind": "citizen",
                         "org": None, "use": "sign", "alg": "ed25519",
                         "kid": "BBBBBBBBBBBBBBBBBBBBBA", "pk": "C" * 43,
                         "created": 1767225600000, "expires": None}),
]  # fmt: skip

REJECTS: list[tuple[str, bytes]] = [
    ("whitespace between tokens", b'{"a": 1}'),
    ("leading whitespace", b' {"a":1}'),
    ("trailing newline", b'{"a":1}\n'),
    ("unsorted keys", b'{"b":1,"a":2}'),
    ("sorted by code point, not UTF-16", '{"\ue000":1,"\U0001f600":2}'.encode()),
    ("duplicate keys", b'{"a":1,"a":1}'),
    ("fraction", b"[1.0]"),
    ("exponent", b"[1e2]"),
    ("negative zero", b"[-0]"),
    ("integer above 2^53-1", b"[9007199254740992]"),
    ("integer below -(2^53-1)", b"[-9007199254740992]"),
    ("leading zero", b"[01]"),
    ("plus sign", b"[+1]"),
    ("NaN", b"[NaN]"),
    ("Infinity", b"[Infinity]"),
    ("needless escape of a letter", b'["\\u0041"]'),
    ("needless escape of a slash", b'["\\/"]'),
    ("upper-case hex escape", b'["\\u001F"]'),
    ("escaped control character that has a short form", b'["\\u000a"]'),
    ("escaped non-ASCII character", b'["\\u00e9"]'),
    ("lone high surrogate escape", b'["\\ud800"]'),
    ("lone low surrogate escape", b'["\\udc00"]'),
    ("escaped surrogate pair", b'["\\ud83d\\ude00"]'),
    ("raw control character in a string", b'["a\x01"]'),
    ("invalid UTF-8", b'["\xff"]'),
    ("overlong UTF-8", b'["\xc0\xaf"]'),
    ("UTF-8 encoded surrogate", b'["\xed\xa0\x80"]'),
    ("byte order mark", b'\xef\xbb\xbf{"a":1}'),
    ("trailing data", b'{"a":1}{}'),
    ("33 levels of nesting", b"[" * 33 + b"]" * 33),
    ("single quotes", b"['a']"),
    ("trailing comma", b"[1,]"),
    ("empty body", b""),
]


def build() -> dict[str, Any]:
    cases = [{"name": name, "value": value, "bytes": b64e(cj(value))} for name, value in VALUES]
    reject = [{"name": n, "error": "NonCanonical", "bytes": b64e(b)} for n, b in REJECTS]
    return {"cases": cases, "reject": reject}
