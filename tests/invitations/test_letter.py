"""The printable invitation letter: code as text and QR, the org root's fingerprint, no origins."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from postbox.crypto import activation, certs
from postbox.crypto.primitives import H, sign_keypair
from postbox.mailbox.invitations.letter import Letter, qr_svg, render_letter

CODE = H(b"test/letter/code", 20)
ORIGIN = "https://postbox.example"
FINGERPRINT = certs.fingerprint(sign_keypair(H(b"test/letter/root"))[0])


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _letter(**changes: object) -> Letter:
    fields: dict[str, object] = {
        "code": CODE,
        "origin": ORIGIN,
        "org_name": "Stadt Nürnberg <Ausländerbehörde> & Co",
        "kind": "citizen",
        "expires": 1_767_225_600_000,
        "fingerprint": FINGERPRINT,
        "language": "de",
    }
    fields.update(changes)
    return Letter(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("language", ["de", "en"])
def test_letter_has_code_qr_and_fingerprint(language: str) -> None:
    letter = _letter(language=language)
    page = render_letter(letter)
    grouped = activation.format_code(CODE)
    assert re.search(r"([0-9A-Z]{4}-){7}[0-9A-Z]{4}", page)
    assert grouped in page
    assert activation.parse_code(grouped) == CODE
    assert FINGERPRINT in page
    assert f"{ORIGIN}/activate#{grouped}" in page
    # the QR code is inline SVG and encodes the activation link
    assert qr_svg(letter.link, "x").split("<path", 1)[1] in page
    parsed = _Collect()
    parsed.feed(page)
    assert "svg" in parsed.tags and "path" in parsed.tags
    assert "2026-01-01 00:00 UTC" in "".join(parsed.text)


def test_letter_loads_nothing_from_anywhere() -> None:
    page = render_letter(_letter())
    parsed = _Collect()
    parsed.feed(page)
    assert not {"script", "link", "img", "iframe", "object", "embed", "a"} & set(parsed.tags)
    for name, value in parsed.attrs:
        assert name not in ("src", "href", "srcset", "action", "xlink:href"), (name, value)
    assert "url(" not in page and "@import" not in page
    # the only URL on the page is the activation link on the server's own origin
    for url in re.findall(r"[a-z]+://[^\s<\"']+", page):
        assert url.startswith(ORIGIN + "/activate#"), url


def test_letter_escapes_names_and_handles_a_missing_root() -> None:
    page = render_letter(_letter(fingerprint=None, kind="admin", language="en"))
    assert "<Ausländerbehörde>" not in page
    assert "&lt;Ausländerbehörde&gt; &amp; Co" in page
    assert "created by its first administrator" in page
    assert FINGERPRINT not in page
