"""Progress bars: drawn on a terminal's standard error, never with ``--json`` or into a pipe;
file names shown without control characters."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from support.client import _pipe
from support.mailworld import MailWorld

from postbox.desk.cli import amain
from postbox.desk.progress import Transfers, printable, progress_wanted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_and_never_with_json() -> None:
    assert progress_wanted(Terminal(), as_json=False) is True
    assert progress_wanted(Terminal(), as_json=True) is False
    assert progress_wanted(io.StringIO(), as_json=False) is False
    closed = io.StringIO()
    closed.close()
    assert progress_wanted(closed, as_json=False) is False


def test_a_disabled_bar_still_counts() -> None:
    with Transfers(io.StringIO(), enabled=False) as t:
        bar = t.bar("upload", "a.pdf", 10)
        bar(4, 10)
        bar.advance(3)
        assert (bar.done, bar.total) == (7, 10)
        bar.finish()
        assert bar.done == 10
    assert not t.enabled


def test_an_enabled_bar_draws_on_the_stream() -> None:
    err = Terminal()
    with Transfers(err, enabled=True) as t:
        bar = t.bar("download", "Bescheid\x1b[2J\u202e.pdf", 1000)
        bar(500, 1000)
        bar(1000)
    drawn = err.getvalue()
    assert "download Bescheid" in drawn and "<U+202E>.pdf" in drawn
    assert "\x1b[2J" not in drawn  # the name's escape sequence was removed


def test_printable_keeps_text_and_lines() -> None:
    assert printable("Grüße\tund\nmehr\x07", multiline=True) == "Grüße\tund\nmehr"
    assert printable("a\nb\tc") == "abc"
    assert printable("\u2066x\u2069") == "<U+2066>x<U+2069>"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_send_shows_upload_bars_on_a_terminal(mail_world: MailWorld, tmp_path: Path) -> None:
    w = mail_world
    body = tmp_path / "b.txt"
    body.write_text("Hallo\n", "utf-8")
    att = tmp_path / "scan.pdf"
    att.write_bytes(b"%PDF" * 50_000)
    for as_json in (False, True):
        out, err = Terminal(), Terminal()
        fd = _pipe([w.citizen.passphrase])
        assert fd is not None
        argv = [
            "send", "--to", w.team, "--subject", "s", "--body-file", str(body),
            "--attach", str(att), "--state-dir", str(w.citizen.state_dir),
            "--passphrase-fd", str(fd),
        ]  # fmt: skip
        try:
            code = await amain([*argv, "--json"] if as_json else argv, stdout=out, stderr=err)
        finally:
            os.close(fd)
        assert code == 0, err.getvalue()
        if as_json:
            assert "upload" not in err.getvalue()
            assert out.getvalue().count("\n") == 1 and out.getvalue().startswith("{")
        else:
            assert "upload scan.pdf" in err.getvalue()
            assert "Submission receipt verified" in out.getvalue()
