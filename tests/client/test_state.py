"""The local state file: XDG location, permissions, atomic writes, round trips, no secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from postbox.client.errors import StateError
from postbox.client.state import ClientState, StateStore, Tokens, config_dir

ORIGIN = "https://postbox.example"
STH = {"v": 1, "size": 3, "root": "A" * 43, "ts": 1_767_225_600_000}


def test_config_dir_follows_xdg() -> None:
    assert config_dir({"XDG_CONFIG_HOME": "/x/conf", "HOME": "/home/u"}) == Path("/x/conf/postbox")
    # relative values are invalid by the spec and ignored
    assert config_dir({"XDG_CONFIG_HOME": "conf", "HOME": "/home/u"}) == Path(
        "/home/u/.config/postbox"
    )
    assert config_dir({"HOME": "/home/u"}) == Path("/home/u/.config/postbox")


def test_a_missing_state_is_fresh(tmp_path: Path) -> None:
    state = StateStore(tmp_path).load(ORIGIN, "anna@example.org")
    assert state == ClientState(origin=ORIGIN, login="anna@example.org")


def test_round_trip_with_private_modes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "cfg")
    state = ClientState(origin=ORIGIN, login="anna@example.org")
    state.log_pk = state.receipt_pk = "A" * 43
    state.account, state.kind = "B" * 22, "citizen"
    state.tokens = Tokens(access="header.payload.sig", refresh="r" * 43, expires=5, session="s")
    state.sth = STH  # type: ignore[assignment]
    state.gens = {"pass": 2, "recovery": 1}
    state.chains = {"B" * 22: {"seq": 1, "hash": "A" * 43}}
    state.identities = {"B" * 22: "D" * 22}
    path = store.save(state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent, store.root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    loaded = store.load(ORIGIN, "anna@example.org")
    assert loaded.to_json() == state.to_json()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert "header.payload.sig" not in repr(loaded.tokens)


def test_one_file_per_server_and_login(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    paths = {
        store.path_for(ORIGIN, "anna@example.org"),
        store.path_for(ORIGIN, "Anna@example.org"),
        store.path_for(ORIGIN, None),
        store.path_for("https://other.example", "anna@example.org"),
        store.path_for(ORIGIN, "../../etc/passwd"),
    }
    assert len(paths) == 5
    for p in paths:
        assert p.is_relative_to(tmp_path / "state")
        assert ".." not in p.parts


def test_a_readable_state_file_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    path = store.save(ClientState(origin=ORIGIN, login=None))
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="chmod 600"):
        store.load(ORIGIN, None)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.update(v=2),
        lambda v: v.update(sth={"v": 1, "size": 0, "root": "x", "ts": 1}),
        lambda v: v.update(log_pk="not b64!"),
        lambda v: v.update(chains={"x": {"seq": -1, "hash": "A"}}),
        lambda v: v.update(origin="https://elsewhere.example"),
    ],
)
def test_malformed_state_is_refused(tmp_path: Path, mutate: object) -> None:
    store = StateStore(tmp_path)
    path = store.save(ClientState(origin=ORIGIN, login=None))
    value = json.loads(path.read_text())
    mutate(value)  # type: ignore[operator]
    path.write_text(json.dumps(value))
    with pytest.raises(StateError):
        store.load(ORIGIN, None)
