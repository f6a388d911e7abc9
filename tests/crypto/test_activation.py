"""Activation codes and their MAC (PROTOCOL.md §9)."""

from __future__ import annotations

import re

import pytest
from support.world import World

from postbox.crypto import activation as A
from postbox.crypto import crockford, domain
from postbox.crypto.encoding import cj
from postbox.crypto.errors import BadRecoveryKey, BadSignature, CertificateInvalid
from postbox.crypto.primitives import H

CODE = H(b"test/activation/code", 20)


def test_printed_form_and_parse() -> None:
    text = A.format_code(CODE)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){7}", text)
    for typed in (text, text.lower(), text.replace("-", ""), " " + text.replace("-", " ") + " "):
        assert A.parse_code(typed) == CODE
    for bad in ("", text[:-1], text + "0", "U" + text[1:], text + "-" + text[:4]):
        with pytest.raises(BadRecoveryKey):
            A.parse_code(bad)


def test_generate() -> None:
    assert A.generate_code(code=CODE) == CODE
    assert len(A.generate_code()) == 20
    with pytest.raises(BadRecoveryKey):
        A.generate_code(code=bytes(16))


def test_act_auth() -> None:
    auth = A.act_auth(CODE)
    assert auth == H(domain.ACT_AUTH, key=CODE)
    A.check_act_auth(auth, auth)
    with pytest.raises(BadSignature):
        A.check_act_auth(auth, A.act_auth(H(b"other", 20)))
    with pytest.raises(BadSignature):
        A.check_act_auth(auth, auth[:16])


def test_act_mac(world: World) -> None:
    cert = world.citizen.identity
    assert cert is not None
    mac = A.act_mac(CODE, cert)
    assert mac == H(cj(cert), 32, key=H(domain.ACT_MAC, key=CODE))
    assert mac != A.act_auth(CODE)
    A.verify_act_mac(CODE, cert, mac)
    other = world.other_citizen.identity
    assert other is not None
    for code, c, m in [
        (H(b"other", 20), cert, mac),
        (CODE, other, mac),
        (CODE, cert, mac[:-1] + bytes([mac[-1] ^ 1])),
        (CODE, cert, mac[:16]),
    ]:
        with pytest.raises(BadSignature):
            A.verify_act_mac(code, c, m)


def test_act_mac_covers_identity_certificates_only(world: World) -> None:
    with pytest.raises(CertificateInvalid):
        A.act_mac(CODE, world.citizen.enc)


def test_code_and_recovery_key_lengths_differ() -> None:
    # 32 symbols vs 36: a recovery key typed into the activation form is refused, not misread
    text = A.format_code(CODE)
    assert len(crockford.normalize(text)) == A.CODE_SYMBOLS
