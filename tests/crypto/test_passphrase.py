"""Passphrase rules at creation, strength estimate, generated passphrases (PROTOCOL.md §4)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postbox.crypto import passphrase as P
from postbox.crypto.errors import WeakPassphrase

GOOD = "Mein Hund heißt Bello und frisst Äpfel"


# --- rules at creation -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("passphrase", "reason"),
    [
        ("", "empty"),
        ("ein langer sicherer Satz \U0001f600 mit Emoji", "non_bmp"),
        ("ein langer sicherer Satz \ud800 mit Surrogat", "surrogate"),
        ("ein langer sicherer Satz \ue000 privat genutzt", "private_use"),
        ("ein langer sicherer Satz \u0378 nicht vergeben", "unassigned"),
        ("ein langer sicherer Satz \u0007 mit Klingel", "control"),
        ("ein langer sicherer Satz\nmit Zeilenumbruch", "control"),
        ("x" * 600 + "y" * 600, "too_long"),
        ("Sommer2024!", "too_weak"),
        ("password", "too_weak"),
        ("P@$$w0rd!", "too_weak"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "too_weak"),
        ("abcdefghijklmnopqrstuvwxyz", "too_weak"),
        ("passwortpasswortpasswort", "too_weak"),
        ("ｐａｓｓｗｏｒｄ", "too_weak"),
    ],
)
def test_new_passphrase_is_refused_with_a_reason(passphrase: str, reason: str) -> None:
    assert P.passphrase_problem(passphrase) == reason
    with pytest.raises(WeakPassphrase) as info:
        P.check_new_passphrase(passphrase)
    assert str(info.value) == reason
    assert reason in P.REASONS


def test_first_bad_code_point_from_the_left_decides() -> None:
    assert P.passphrase_problem("a\ue000b\U0001f600" + GOOD) == "private_use"
    assert P.passphrase_problem("\u0007\ue000" + GOOD) == "control"


@pytest.mark.parametrize(
    "passphrase",
    [
        GOOD,
        "correct horse battery staple",
        "Işık İstanbul'da; şeker, ğ ve ı",
        "كلمة السر لا تنسى أبدا يا صديقي",
        "Їжак і ґанок: є ще їжа",
        "ｐａｓｓ\u3000ｗｏｒｔ\u3000ＡＢＣ１２３\u3000ｘｙｚ",
    ],
)
def test_good_passphrases_in_many_scripts_pass(passphrase: str) -> None:
    assert P.passphrase_problem(passphrase) is None
    P.check_new_passphrase(passphrase)


# --- strength estimate -----------------------------------------------------------------
# The same table is in tests/js/passphrase.test.js: the estimate is identical in both languages.
STRENGTH = [
    ("", 0),
    ("a", 4),
    ("aa", 4),
    ("abc", 9),
    ("password", 10),
    ("P@ssw0rd", 10),
    ("Sommer2024!", 42),
    ("passwordpassword", 20),
    ("1234567890qwertz", 25),
    ("correct horse battery staple", 149),
    ("Tr0ub4dor&3", 71),
    ("Größenwahnsinn", 84),
    ("ｐａｓｓ ｗｏｒｔ", 46),
    ("Їжак ґанок єнот", 90),
    ("كلمة مرور طويلة جدا", 108),
    ("şifreşifre", 20),
    ("abcabcabcabc", 18),
    ("zyxwvutsrq", 9),
    ("000g-40r4-0m30-e209-185g-r38e", 162),
]


@pytest.mark.parametrize(("passphrase", "bits"), STRENGTH)
def test_strength_estimate_table(passphrase: str, bits: int) -> None:
    assert P.passphrase_strength(passphrase) == bits


def test_strength_sees_through_case_and_leet() -> None:
    assert P.passphrase_strength("PASSWORD") == P.passphrase_strength("password")
    assert P.passphrase_strength("p4$$w0rd") <= 12


@given(st.text(max_size=40))
@settings(max_examples=200)
def test_strength_is_total_and_non_negative(text: str) -> None:
    assert P.passphrase_strength(text) >= 0
    assert P.passphrase_problem(text) in (*P.REASONS, None)


# --- generated passphrases -------------------------------------------------------------
def test_generated_passphrase_shape_and_rules() -> None:
    fixed = P.generate_passphrase(entropy=bytes(range(15)))
    assert fixed == "000g-40r4-0m30-e209-185g-r38e"
    for _ in range(20):
        p = P.generate_passphrase()
        assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}", p)
        assert P.passphrase_problem(p) is None


def test_generated_passphrase_entropy_checks() -> None:
    with pytest.raises(ValueError, match="15 bytes"):
        P.generate_passphrase(entropy=bytes(14))
    with pytest.raises(ValueError, match="fails the rules"):
        P.generate_passphrase(entropy=bytes(15))  # "0000-0000-…" is all repeats
