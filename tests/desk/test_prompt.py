"""Passphrases from descriptors and from the terminal."""

from __future__ import annotations

import os

import pytest

from postbox.client.errors import UsageError
from postbox.desk.prompt import Passphrases


def _pipe(text: str) -> int:
    r, w = os.pipe()
    os.write(w, text.encode())
    os.close(w)
    return r


def test_lines_from_one_descriptor_are_read_in_turn() -> None:
    fd = _pipe("erste Zeile\r\nzweite Zeile\n")
    try:
        p = Passphrases()
        assert p.read("?", fd) == "erste Zeile"
        assert p.read("?", fd) == "zweite Zeile"
        with pytest.raises(UsageError, match="no passphrase left"):
            p.read("?", fd)
    finally:
        os.close(fd)


def test_terminal_prompt_confirms_new_passphrases() -> None:
    answers = iter(["a b c d", "a b c d", "x", "y"])
    p = Passphrases(ask=lambda prompt: next(answers))
    assert p.read("New: ", None, confirm=True) == "a b c d"
    with pytest.raises(UsageError, match="differ"):
        p.read("New: ", None, confirm=True)


def test_closed_descriptor_and_empty_passphrase() -> None:
    with pytest.raises(UsageError):
        Passphrases().read("?", 987)
    fd = _pipe("\n")
    try:
        with pytest.raises(UsageError, match="empty"):
            Passphrases().read("?", fd)
    finally:
        os.close(fd)
