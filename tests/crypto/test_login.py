"""Login names, origins, login signatures and fake salts (PROTOCOL.md §2, §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postbox.crypto import domain
from postbox.crypto import login as L
from postbox.crypto.errors import BadSignature, EncodingError, InvalidKey, MalformedObject
from postbox.crypto.primitives import H, sign_keypair

SEED = H(b"test/login/auth")
PK = sign_keypair(SEED)[0]
CHALLENGE = H(b"test/login/challenge")
ORIGIN = "https://postbox.example"


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("anna@example.org", "anna@example.org"),
        ("Anna@Example.ORG", "Anna@example.org"),
        ("  anna@example.org \t\r\n", "anna@example.org"),
        ("Ju\u0308rgen@STRASSE.de", "Jürgen@strasse.de"),
        ("x@Ju\u0308RGEN.de", "x@jürgen.de"),
        ("ayşe@İZMİR.example", "ayşe@i\u0307zmi\u0307r.example"),
        ("a@b@C.D", "a@b@c.d"),
        ("Chosen Name", "Chosen Name"),
        # final sigma is context-dependent, the same in Python and JavaScript
        ("ΟΔΟΣ@ΟΔΟΣ.GR", "ΟΔΟΣ@οδοσ.gr"),
        ("x@ΟΔΟΣ", "x@οδος"),
    ],
)
def test_normalize_login(typed: str, normalized: str) -> None:
    assert L.normalize_login(typed) == normalized
    assert L.normalize_login(normalized) == normalized


@pytest.mark.parametrize(
    "bad", ["", "   ", "a\x00b", "a\nb@c.d", "a\x7fb", "a\ud800", "x" * 255, "ä" * 128]
)
def test_bad_login_names(bad: str) -> None:
    with pytest.raises(MalformedObject):
        L.normalize_login(bad)


def test_login_limit_is_in_bytes() -> None:
    assert L.normalize_login("ä" * 127) == "ä" * 127


@pytest.mark.parametrize(
    "origin",
    [
        "https://postbox.example",
        "http://localhost:8080",
        "https://xn--mnchen-3ya.example:8443",
        "http://127.0.0.1:8000",
        "http://[::1]:8080",
        "https://a",
        "https://postbox.example:65535",
    ],
)
def test_good_origins(origin: str) -> None:
    assert L.check_origin(origin) == origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://postbox.example/",
        "https://Postbox.example",
        "https://postbox.example:443",
        "http://postbox.example:80",
        "https://postbox.example:0",
        "https://postbox.example:65536",
        "https://postbox.example:0443",
        "https://user@postbox.example",
        "https://postbox.example#x",
        "null",
        "file://",
        "https://münchen.example",
        "https://" + "a" * 64 + ".example",
        "https://" + ".".join(["a" * 60] * 5),
        "https://-a.example",
        "https://postbox.example\n",
    ],
)
def test_bad_origins(origin: str) -> None:
    with pytest.raises(MalformedObject):
        L.check_origin(origin)


def test_message_layout() -> None:
    msg = L.login_message(CHALLENGE, ORIGIN, "Anna@Example.org", "pass")
    assert msg == (
        b"postbox/v1/login"
        + CHALLENGE
        + len(ORIGIN).to_bytes(4, "big")
        + ORIGIN.encode()
        + b"Anna@example.org"
    )
    rec = L.login_message(CHALLENGE, ORIGIN, "Anna@Example.org", "recovery")
    assert rec == domain.RECOVERY_LOGIN + msg[len(domain.LOGIN) :]


def test_message_input_checks() -> None:
    with pytest.raises(EncodingError):
        L.login_message(CHALLENGE[:31], ORIGIN, "a", "pass")
    with pytest.raises(MalformedObject):
        L.login_message(CHALLENGE, ORIGIN, "a", "password")  # type: ignore[arg-type]
    with pytest.raises(MalformedObject):
        L.login_message(CHALLENGE, ORIGIN + "/", "a", "pass")


def test_sign_and_verify() -> None:
    sig = L.sign_login(SEED, CHALLENGE, ORIGIN, "anna@Example.org", "pass")
    # the server normalises the name it received; any equivalent form verifies
    L.verify_login(PK, sig, CHALLENGE, ORIGIN, "  anna@EXAMPLE.ORG", "pass")
    for args in [
        (PK, sig, CHALLENGE, ORIGIN, "anna@example.org", "recovery"),
        (PK, sig, CHALLENGE, "https://phish.example", "anna@example.org", "pass"),
        (PK, sig, CHALLENGE, ORIGIN, "Anna@example.org", "pass"),
        (PK, sig, H(b"other"), ORIGIN, "anna@example.org", "pass"),
        (sign_keypair(H(b"x"))[0], sig, CHALLENGE, ORIGIN, "anna@example.org", "pass"),
        (PK, sig[:-1] + bytes([sig[-1] ^ 1]), CHALLENGE, ORIGIN, "anna@example.org", "pass"),
        (PK, sig[:63], CHALLENGE, ORIGIN, "anna@example.org", "pass"),
    ]:
        with pytest.raises(BadSignature):
            L.verify_login(*args)  # type: ignore[arg-type]


def test_fake_salt_is_pure_and_normalised() -> None:
    k_fake = H(b"test/login/k_fake")
    salt = L.fake_salt(k_fake, "anna@example.org")
    assert len(salt) == 16
    assert salt == H(b"anna@example.org", 16, key=k_fake)
    assert L.fake_salt(k_fake, " anna@EXAMPLE.org") == salt
    assert L.fake_salt(k_fake, "Anna@example.org") != salt
    assert L.fake_salt(H(b"other"), "anna@example.org") != salt
    with pytest.raises(InvalidKey):
        L.fake_salt(bytes(16), "anna@example.org")


@given(st.text(min_size=1, max_size=60))
def test_normalisation_is_idempotent(text: str) -> None:
    try:
        once = L.normalize_login(text)
    except MalformedObject:
        return
    assert L.normalize_login(once) == once
