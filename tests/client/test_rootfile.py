"""The encrypted org root key file."""

from __future__ import annotations

import json

import pytest

from postbox.client.errors import UsageError
from postbox.client.rootfile import open_root_file, read_root_header, seal_root_file
from postbox.crypto.errors import DecryptionFailed, WeakPassphrase
from postbox.crypto.primitives import sign_keypair

SEED = bytes(range(32))
GOOD = "Wurzel-Tresor-Kompass-91-Linde"
ORG = "AAAAAAAAAAAAAAAAAAAAAA"


def test_round_trip_and_public_header() -> None:
    data = seal_root_file(SEED, org=ORG, name="Stadt Nürnberg", passphrase=GOOD, ops=2)
    header = read_root_header(data)
    assert header["org"] == ORG and header["name"] == "Stadt Nürnberg"
    assert SEED.hex() not in data.decode() and GOOD not in data.decode()
    root = open_root_file(data, GOOD)
    assert root.seed == SEED and root.pk == sign_keypair(SEED)[0]
    assert "seed" not in repr(root) or SEED.hex() not in repr(root)


def test_wrong_passphrase_and_tampering_fail() -> None:
    data = seal_root_file(SEED, org=ORG, name="X", passphrase=GOOD, ops=2)
    with pytest.raises(DecryptionFailed):
        open_root_file(data, GOOD + "!")
    value = json.loads(data)
    value["name"] = "Y"  # bound as additional data
    with pytest.raises(DecryptionFailed):
        open_root_file(json.dumps(value).encode(), GOOD)
    with pytest.raises(UsageError):
        read_root_header(b"{}")


def test_a_weak_passphrase_is_refused() -> None:
    with pytest.raises(WeakPassphrase):
        seal_root_file(SEED, org=ORG, name="X", passphrase="password1")
