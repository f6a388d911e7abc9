#!/usr/bin/env python3
"""Regenerate (or, with --check, verify) every tests/vectors/<file>.json.

Each ``gen_<file>.py`` beside this script exposes ``build() -> dict``, the whole file
object of PROTOCOL.md §10, made from fixed seeds. Randomized outputs (sealed boxes,
secretstream headers) are kept from the committed file when everything deterministic
around them is unchanged, so regenerating is byte-stable.

    python tests/vectors/generate.py           # write the files
    python tests/vectors/generate.py --check   # exit 1 if a file would change
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(p.stem.removeprefix("gen_") for p in HERE.glob("gen_*.py"))


def render(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def build(name: str) -> str:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"gen_{name}")
    return render(module.build())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("only", nargs="*", help="file names (default: all)")
    args = parser.parse_args(argv)
    changed = []
    for name in args.only or names():
        text = build(name)
        path = HERE / f"{name}.json"
        old = path.read_text("utf-8") if path.exists() else None
        if old != text:
            changed.append(name)
            if not args.check:
                path.write_text(text, "utf-8")
        print(f"{name}.json: {'changed' if old != text else 'unchanged'}")
    if args.check and changed:
        print("would change: " + ", ".join(changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
