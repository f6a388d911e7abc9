"""The desk's own small settings: which server and login name to use by default.

``desk.json`` in the state folder (``--state-dir``, else the XDG config folder), mode 0600.
``login`` and ``activate`` remember the server and login name they used, so that later
commands need neither ``--server`` nor ``--login``. Flags always win.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from postbox.client.errors import StateError
from postbox.client.state import config_dir, write_private_file

FILE_NAME: Final = "desk.json"


@dataclass
class DeskConfig:
    server: str | None = None
    login: str | None = None


def state_root(state_dir: str | Path | None) -> Path:
    return Path(state_dir) if state_dir else config_dir()


def load_config(root: Path) -> DeskConfig:
    path = root / FILE_NAME
    try:
        value = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return DeskConfig()
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: {exc}") from exc
    if not isinstance(value, dict):
        raise StateError(f"{path}: expected an object")
    server, login = value.get("server"), value.get("login")
    return DeskConfig(
        server if isinstance(server, str) else None, login if isinstance(login, str) else None
    )


def save_config(root: Path, config: DeskConfig) -> None:
    data = json.dumps({"server": config.server, "login": config.login}, indent=1) + "\n"
    write_private_file(root / FILE_NAME, data.encode("utf-8"))
