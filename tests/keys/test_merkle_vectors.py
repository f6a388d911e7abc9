"""tests/vectors/merkle.json: rebuilt exactly, every proof verified, every reject refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from postbox.crypto.encoding import b64d, b64e
from postbox.crypto.errors import BadProof
from postbox.keys.merkle import (
    MemoryTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[1] / "vectors" / "merkle.json"
FILE: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = FILE["cases"]
REJECTS: list[dict[str, Any]] = FILE["reject"]


def test_covers_sizes_1_to_17_every_index_and_pair() -> None:
    (case,) = CASES
    assert len(case["leaves"]) == len(case["roots"]) == 17
    assert case["leaves"][0] == ""  # an empty leaf
    assert {(p["index"], p["size"]) for p in case["inclusion"]} == {
        (i, n) for n in range(1, 18) for i in range(n)
    }
    assert {(p["first"], p["second"]) for p in case["consistency"]} == {
        (m, n) for n in range(1, 18) for m in range(1, n + 1)
    }
    assert all(r["error"] == "BadProof" for r in REJECTS)
    assert len({r["name"] for r in REJECTS}) == len(REJECTS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_case_rebuilds_and_verifies(case: dict[str, Any]) -> None:
    leaves = [b64d(x) for x in case["leaves"]]
    assert [b64e(leaf_hash(d)) for d in leaves] == case["leaf_hashes"]
    tree = MemoryTree()
    tree.extend(leaves)
    roots = [b64d(r, 32) for r in case["roots"]]
    assert [tree.root(n) for n in range(1, len(leaves) + 1)] == roots
    for p in case["inclusion"]:
        index, size = p["index"], p["size"]
        path = [b64d(x, 32) for x in p["path"]]
        assert tree.inclusion_proof(index, size) == path
        verify_inclusion(leaf_hash(leaves[index]), index, size, path, roots[size - 1])
    for p in case["consistency"]:
        first, second = p["first"], p["second"]
        path = [b64d(x, 32) for x in p["path"]]
        assert tree.consistency_proof(first, second) == path
        verify_consistency(first, second, path, roots[first - 1], roots[second - 1])


def run_reject(case: dict[str, Any]) -> None:
    path = [b64d(x) for x in case["path"]]
    if case["kind"] == "inclusion":
        leaf, root = b64d(case["leaf_hash"]), b64d(case["root"])
        verify_inclusion(leaf, case["index"], case["size"], path, root)
    else:
        r1, r2 = b64d(case["first_root"]), b64d(case["second_root"])
        verify_consistency(case["first"], case["second"], path, r1, r2)


@pytest.mark.parametrize("case", REJECTS, ids=lambda c: c["name"])
def test_reject(case: dict[str, Any]) -> None:
    with pytest.raises(BadProof) as info:
        run_reject(case)
    assert type(info.value).__name__ == case["error"]
