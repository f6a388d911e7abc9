"""Run a Node.js helper script from a test and read its JSON answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tests" / "js" / "tools"


def node() -> str:
    """Path of ``node``; skips the test when Node is missing (but never in CI)."""
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required in CI for the cross-language tests")
        pytest.skip("node is not installed: cross-language tests skipped")
    return path


def run_tool(script: str, *args: str, payload: Any) -> Any:
    """Write ``payload`` to a temporary JSON file, run ``tests/js/tools/<script>`` on it."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f)
        name = f.name
    try:
        proc = subprocess.run(
            [node(), str(TOOLS / script), *args, name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.unlink(name)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout)
