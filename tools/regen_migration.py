"""Regenerate the newest migration, ``0002_mailbox_tables.py``, from ``schema.py``.

While the mailbox tables are unreleased they live in one migration that is rebuilt from the
schema module (autogenerate against a database at 0001), then formatted and moved into
place atomically, so concurrent test runs never see a half-written file. A developer
tool: review the result. Once 0002 has shipped, new changes get a new revision instead.

    .venv/bin/python tools/regen_migration.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "postbox" / "mailbox" / "db" / "migrations"
NAME = "0002_mailbox_tables.py"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scripts = Path(tmp) / "migrations"
        shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
        (scripts / "versions" / NAME).unlink(missing_ok=True)
        cfg = Config()
        cfg.set_main_option("script_location", str(scripts))
        engine = create_engine(f"sqlite:///{Path(tmp) / 'm.db'}")
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            command.revision(cfg, message="mailbox tables", autogenerate=True, rev_id="0002")
        engine.dispose()
        made = scripts / "versions" / NAME
        ruff = str(Path(sys.executable).parent / "ruff")
        subprocess.run([ruff, "check", "--fix", "-q", str(made)], check=False)
        subprocess.run([ruff, "format", "-q", str(made)], check=True)
        staged = MIGRATIONS / "versions" / (NAME + ".new")
        shutil.copyfile(made, staged)
        os.replace(staged, MIGRATIONS / "versions" / NAME)
    print(f"wrote {MIGRATIONS / 'versions' / NAME}")


if __name__ == "__main__":
    main()
