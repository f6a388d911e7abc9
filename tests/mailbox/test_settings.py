"""Settings: precedence of flags, environment and TOML; refusal of unsafe settings; secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from postbox.mailbox.secrets import NAMES, SecretsError, load_secrets
from postbox.mailbox.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_embedded_setup(tmp_path: Path) -> None:
    s = load_settings({}, environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, Path("var"))
    assert s.database_url == "sqlite+aiosqlite:///var/postbox.db"
    assert s.origin == "http://127.0.0.1:8080"
    assert s.secrets_dir == Path("var/secrets")


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = tmp_path / "postbox.toml"
    config.write_text('port = 9001\ndata-dir = "/srv/a"\nhost = "127.0.0.2"\n')
    env = {"POSTBOX_PORT": "9002", "POSTBOX_DATA_DIR": "/srv/b"}
    s = load_settings({"port": "9003"}, environ=env, config=config)
    assert s.port == 9003  # flag
    assert s.data_dir == Path("/srv/b")  # environment
    assert s.host == "127.0.0.2"  # file
    s = load_settings({}, environ={"POSTBOX_TRUSTED_PROXY": "yes", "POSTBOX_HOST": "0.0.0.0",
                                   "POSTBOX_PUBLIC_ORIGIN": "https://postbox.example"})  # fmt: skip
    assert s.trusted_proxy is True
    assert s.origin == "https://postbox.example"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"host": "0.0.0.0"}, "without TLS"),
        ({"host": "10.1.2.3", "trusted_proxy": "yes"}, "not https"),
        ({"port": "0"}, "not a TCP port"),
        ({"tls_cert": "/x.pem"}, "go together"),
        ({"db": "mysql://x"}, "--db must be"),
        ({"public_origin": "https://Example.org/"}, "public-origin"),
        ({"sqlite_synchronous": "OFF"}, "sqlite-synchronous"),
        ({"port": "eighty"}, "port"),
    ],
)
def test_unsafe_or_malformed_settings_are_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(flags, environ={})


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="unknown settings prot"):
        load_settings({}, environ={}, config=config)


def test_describe_never_shows_a_database_password() -> None:
    s = Settings(db="postgresql+asyncpg://app:hunter2@db.example/postbox").validate()
    text = "\n".join(s.describe())
    assert "hunter2" not in text
    assert "app:***@db.example" in text


def test_secrets_are_created_once_private_and_shared(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = load_secrets(folder)
    second = load_secrets(folder)
    assert first == second
    for value in (first.pepper, first.fake_salt_key, first.token_key, first.log_seed):
        assert repr(value) not in repr(first)  # secrets never reach a repr or a log line
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in NAMES:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    os.chmod(folder / "pepper.key", 0o644)
    with pytest.raises(SecretsError, match="readable by others"):
        load_secrets(folder)
