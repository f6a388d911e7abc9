"""Regenerating tests/vectors/*.json from their fixed seeds gives the committed files."""

from __future__ import annotations

from pathlib import Path

import generate
import pytest

HERE = Path(generate.__file__).parent


@pytest.mark.parametrize("name", generate.names())
def test_regenerating_gives_the_committed_file(name: str) -> None:
    committed = (HERE / f"{name}.json").read_text("utf-8")
    assert generate.build(name) == committed, f"run `make vectors` and review {name}.json"


def test_every_vector_file_has_a_generator() -> None:
    files = sorted(p.stem for p in HERE.glob("*.json"))
    assert files == generate.names()
