"""Attachments through the real send path (both databases): a citizen's application with
an attachment reaches the team, whose members can download it; nobody else can, the
sender cannot withdraw it, and it never expires while its message exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mailworld import MailWorld

from postbox.client.attachments import download
from postbox.client.errors import ConflictError, NotFoundError
from postbox.client.inbox import OpenedMessage
from postbox.crypto.primitives import random_bytes
from postbox.mailbox.appkeys import BLOB_GC, CLOCK


async def test_a_sent_attachment_reaches_the_team_and_nobody_else(
    mail_world: MailWorld, tmp_path: Path
) -> None:
    w = mail_world
    citizen, cw2 = w.citizen, w.caseworker2
    data = random_bytes(300_000)
    doc = tmp_path / "Meldebescheinigung.pdf"
    doc.write_bytes(data)
    sent = await citizen.client.messages.send(
        citizen.keyring,
        to=[w.team],
        subject="Unterlagen",
        body="Anbei die Meldebescheinigung.",
        attachments=[doc],
    )
    (ref,) = sent.attachments
    assert sent.header["blobs"] == [ref.header_entry()]

    # a team member who did not write anything opens it and saves the attachment
    opened = await cw2.client.inbox.open(cw2.keyring, w.team, sent.from_, sent.id)
    assert isinstance(opened, OpenedMessage)
    out = tmp_path / "desk"
    saved = await cw2.client.inbox.save_attachment(opened, 0, out)
    assert saved == out / "Meldebescheinigung.pdf" and saved.read_bytes() == data
    again = await cw2.client.inbox.save_attachment(opened, 0, out)
    assert again.name == "Meldebescheinigung (1).pdf"

    # another citizen knows the blob id from nowhere, but even with it: not found
    with pytest.raises(NotFoundError) as missing:
        await download(
            w.citizen2.client.session,
            ref.blob,
            ref.key,
            ref.blob_size,
            ref.hash,
            tmp_path / "stolen.pdf",
        )
    assert missing.value.code == "blob-not-found"

    # the sender cannot take it back while the message exists
    with pytest.raises(ConflictError) as in_use:
        await citizen.client.session.call("DELETE", f"/api/v1/uploads/{ref.blob}")
    assert in_use.value.code == "blob-in-use"
    # and the collector leaves a referenced blob alone
    app = w.live.app
    report = await app[BLOB_GC].run_once()
    assert report.expired == 0
    state = await citizen.client.session.call("GET", f"/api/v1/uploads/{ref.blob}")
    assert state["state"] == "complete" and state["expires"] is None
    assert app[CLOCK]() > 0
