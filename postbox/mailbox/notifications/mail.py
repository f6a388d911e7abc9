"""Rendering one notification: a multipart (text + HTML) e-mail from jinja2 templates.

Templates live in ``templates/<lang>/`` (``subject.txt``, ``body.txt``, ``body.html``; the
HTML pages extend ``templates/base.html``, which sets ``lang`` and ``dir``). A language is
available when its folder exists; anything else falls back to German. Right-to-left
languages (:data:`RTL`) get ``dir="rtl"``. HTML is autoescaped; text is not (it is text).

What a mail can say is fixed here: the sending organisation's *notification name* (a
neutral name the organisation chose, "Stadt Nürnberg" rather than the immigration office)
and a deep link to the web client by the message's opaque ids. Nothing else about the
message exists on the server in readable form, and nothing else is passed to templates.
"""

from __future__ import annotations

import email.utils
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Final
from urllib.parse import quote

import jinja2

TEMPLATES: Final = Path(__file__).parent / "templates"
FALLBACK: Final = "de"
#: languages written right to left (their templates come with the translations)
RTL: Final = frozenset({"ar", "fa", "he", "ur"})


@dataclass(frozen=True)
class Notice:
    """Everything a notification mail is made of."""

    mail_id: str  # "<…@host>", recorded before the first attempt
    to: str
    sender: str  # the From address
    language: str  # the recipient's; falls back to German
    org_name: str | None  # the sending organisation's notification name, if any
    link: str
    date: int  # Unix ms


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(disabled_extensions=("txt",), default=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@cache
def languages() -> frozenset[str]:
    return frozenset(p.name for p in TEMPLATES.iterdir() if (p / "subject.txt").is_file())


def language_for(wanted: str) -> str:
    """The template language for an account's language tag ("de-AT" → "de")."""
    tag = wanted.lower().replace("_", "-")
    for candidate in (tag, tag.split("-", 1)[0]):
        if candidate in languages():
            return candidate
    return FALLBACK


def new_mail_id(host: str) -> str:
    """An opaque, unique Message-ID (RFC 5322 msg-id) at the server's host."""
    return f"<{secrets.token_hex(16)}@{host}>"


def deep_link(origin: str, from_id: str, message_id: str) -> str:
    """The web client's route to a message; it grants nothing without a login."""
    return f"{origin}/#/m/{quote(from_id, safe='')}/{quote(message_id, safe='')}"


def compose(notice: Notice) -> EmailMessage:
    """The mail (raises ``ValueError`` for an address a header cannot hold)."""
    lang = language_for(notice.language)
    env = _environment()
    values = {
        "lang": lang,
        "dir": "rtl" if lang in RTL else "ltr",
        "sender": notice.org_name,
        "link": notice.link,
    }
    subject = env.get_template(f"{lang}/subject.txt").render(values).strip()
    text = env.get_template(f"{lang}/body.txt").render(values)
    html = env.get_template(f"{lang}/body.html").render(values, subject=subject)
    msg = EmailMessage()
    msg["Message-ID"] = notice.mail_id
    msg["Date"] = email.utils.format_datetime(datetime.fromtimestamp(notice.date / 1000, UTC))
    msg["From"] = notice.sender
    msg["To"] = notice.to
    msg["Subject"] = subject
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    # after the parts exist: making the message multipart moves Content-* headers into them
    msg["Content-Language"] = lang
    return msg
