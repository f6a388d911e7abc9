"""The printable invitation letter: the activation code as text and as a QR code.

One self-contained HTML page (inline CSS, the QR code as inline SVG made with ``segno``),
loading nothing from anywhere, so it can be printed at the counter or saved as a file. It
shows the code in 8 groups of 4, a link ``<origin>/activate#<code>`` (the code travels in
the fragment, which browsers never send to a server), the organisation's name, and the
fingerprint of its org root key: the activating client shows the same fingerprint, and a
person who compares the two knows that nobody swapped the organisation's key.

The letter holds a live secret. Callers write it only where the operator asked (a file
given on the command line, created with mode 0600) and never log it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import segno

from postbox.crypto import activation

_KIND_LABELS: Final = {
    "de": {
        "citizen": "Ihr Zugang zum Postfach",
        "caseworker": "Ihr Zugang als Sachbearbeiterin oder Sachbearbeiter",
        "connector": "Zugang für einen Konnektor",
        "admin": "Ihr Zugang als Administratorin oder Administrator",
    },
    "en": {
        "citizen": "Your access to the postbox",
        "caseworker": "Your caseworker access",
        "connector": "Access for a connector",
        "admin": "Your administrator access",
    },
}

_TEXT: Final = {
    "de": {
        "lang": "de",
        "title": "Aktivierungscode",
        "code": "Ihr Aktivierungscode",
        "scan": "Scannen Sie den QR-Code oder öffnen Sie diese Adresse:",
        "qr": "QR-Code mit dem Aktivierungslink",
        "expires": "Gültig bis",
        "once": "Der Code gilt nur einmal. Geben Sie ihn an niemanden weiter.",
        "fingerprint": "Fingerabdruck des Organisationsschlüssels",
        "compare": "Vergleichen Sie ihn mit der Anzeige bei der Aktivierung. "
        "Weichen die Zeichen ab, brechen Sie ab und melden Sie sich bei uns.",
        "no_root": "Der Organisationsschlüssel wird bei der Einrichtung durch die erste "
        "Administratorin oder den ersten Administrator erzeugt.",
    },
    "en": {
        "lang": "en",
        "title": "Activation code",
        "code": "Your activation code",
        "scan": "Scan the QR code or open this address:",
        "qr": "QR code with the activation link",
        "expires": "Valid until",
        "once": "The code works once. Do not pass it on.",
        "fingerprint": "Fingerprint of the organisation key",
        "compare": "Compare it with what your device shows during activation. "
        "If any character differs, stop and contact us.",
        "no_root": "The organisation key is created by its first administrator during set-up.",
    },
}

_STYLE: Final = """
body { font-family: sans-serif; margin: 2cm; color: #000; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 0.2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 0.4em; }
.org { font-size: 1.1em; margin: 0 0 1.5em; }
.code, .fingerprint { font-family: monospace; font-size: 1.5em; letter-spacing: 0.08em;
  word-spacing: 0.3em; }
.fingerprint { font-size: 1.2em; }
.qr svg { width: 5cm; height: 5cm; shape-rendering: crispEdges; }
.link { font-family: monospace; word-break: break-all; }
.note { font-size: 0.9em; }
@media print { body { margin: 1.5cm; } }
"""


@dataclass(frozen=True)
class Letter:
    """Everything printed on one invitation letter."""

    code: bytes
    origin: str  # e.g. https://postbox.example (no trailing slash)
    org_name: str
    kind: str
    expires: int  # ms
    fingerprint: str | None  # the org root's fingerprint, None before it exists
    language: str = "de"

    @property
    def grouped_code(self) -> str:
        return activation.format_code(self.code)

    @property
    def link(self) -> str:
        return f"{self.origin}/activate#{self.grouped_code}"


def qr_svg(text: str, title: str = "QR code") -> str:
    """An inline ``<svg>`` QR code of ``text`` (error correction M), sized by CSS (viewBox)."""
    qr = segno.make(text, error="m")
    return str(qr.svg_inline(omitsize=True, svgclass="qr-code", title=title))


def render_letter(letter: Letter) -> str:
    """The letter as one HTML page with nothing loaded from outside."""
    t = _TEXT.get(letter.language, _TEXT["en"])
    kinds = _KIND_LABELS.get(letter.language, _KIND_LABELS["en"])
    e = html.escape
    expires = datetime.fromtimestamp(letter.expires / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    if letter.fingerprint is not None:
        fingerprint = (
            f'<p class="fingerprint">{e(letter.fingerprint)}</p>\n'
            f'<p class="note">{e(t["compare"])}</p>'
        )
    else:
        fingerprint = f'<p class="note">{e(t["no_root"])}</p>'
    return f"""<!doctype html>
<html lang="{e(t["lang"])}">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>{e(t["title"])}: {e(letter.org_name)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{e(kinds.get(letter.kind, t["title"]))}</h1>
<p class="org">{e(letter.org_name)}</p>
<h2>{e(t["code"])}</h2>
<p class="code">{e(letter.grouped_code)}</p>
<p>{e(t["scan"])}</p>
<div class="qr">{qr_svg(letter.link, t["qr"])}</div>
<p class="link">{e(letter.link)}</p>
<p>{e(t["expires"])}: {e(expires)}</p>
<p class="note">{e(t["once"])}</p>
<h2>{e(t["fingerprint"])}</h2>
{fingerprint}
</body>
</html>
"""
