"""Vectors for RFC 9162 Merkle trees: tests/vectors/merkle.json (PROTOCOL.md §10).

One case: 17 leaves derived from a fixed seed (leaf 0 is empty, the others 1 to 64 bytes),
the root of every prefix, the inclusion proof of every leaf in every tree of 1…17 leaves
and the consistency proof of every pair 1 ≤ first ≤ second ≤ 17. The reject list holds
proofs every verifier must refuse with ``BadProof``.

Run ``python tests/vectors/gen_merkle.py`` to rewrite merkle.json (the lead's
``generate.py`` does the same through :func:`build`).
"""

from __future__ import annotations

from typing import Any

from postbox.crypto.encoding import b64d, b64e, u32
from postbox.crypto.errors import BadProof
from postbox.crypto.primitives import H
from postbox.keys.merkle import (
    MemoryTree,
    NodeId,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

SEED = b"vector-seed/merkle/"
SIZES = 17
TOO_BIG = 2**53  # one past the largest size a JSON/JavaScript integer can carry exactly


def vector_leaves() -> list[bytes]:
    """Leaf 0 is empty; leaf i > 0 is H(seed ‖ "leaf/" ‖ u32(i), 1 + 13·i mod 64)."""
    return [b""] + [H(SEED + b"leaf/" + u32(i), 1 + (13 * i) % 64) for i in range(1, SIZES)]


def _b64s(hashes: list[bytes]) -> list[str]:
    return [b64e(h) for h in hashes]


def _flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _inclusion_reject(
    name: str, leaf: bytes, index: object, size: object, path: list[bytes], root: bytes
) -> dict[str, Any]:
    return {
        "name": name,
        "error": "BadProof",
        "kind": "inclusion",
        "leaf_hash": b64e(leaf),
        "index": index,
        "size": size,
        "path": _b64s(path),
        "root": b64e(root),
    }


def _consistency_reject(
    name: str,
    first: object,
    second: object,
    path: list[bytes],
    first_root: bytes,
    second_root: bytes,
) -> dict[str, Any]:
    return {
        "name": name,
        "error": "BadProof",
        "kind": "consistency",
        "first": first,
        "second": second,
        "path": _b64s(path),
        "first_root": b64e(first_root),
        "second_root": b64e(second_root),
    }


def _rejects(tree: MemoryTree) -> list[dict[str, Any]]:
    lh = [tree.leaf_hash(i) for i in range(tree.size)]
    r = [b""] + [tree.root(n) for n in range(1, tree.size + 1)]  # r[n] = root of size n
    inc = tree.inclusion_proof  # inc(index, size)
    con = tree.consistency_proof  # con(first, second)
    p5_13 = inc(5, 13)
    c6_13 = con(6, 13)
    c4_13 = con(4, 13)  # first is a power of two: its root is not in the path
    out = [
        _inclusion_reject("inclusion: index equals size", lh[5], 13, 13, p5_13, r[13]),
        _inclusion_reject("inclusion: index + 1", lh[5], 6, 13, p5_13, r[13]),
        _inclusion_reject("inclusion: index - 1", lh[5], 4, 13, p5_13, r[13]),
        _inclusion_reject("inclusion: index negative", lh[0], -1, 13, inc(0, 13), r[13]),
        # A wrong size is detectable only where it changes the left/right pattern of the
        # path (leaf 5 of 13 and of 14 hash alike); the signed tree head binds the size.
        _inclusion_reject("inclusion: size * 2", lh[5], 5, 26, p5_13, r[13]),
        _inclusion_reject("inclusion: size / 2", lh[5], 5, 6, p5_13, r[13]),
        _inclusion_reject("inclusion: size 0", lh[0], 0, 0, [], r[1]),
        _inclusion_reject("inclusion: size 2^53", lh[5], 5, TOO_BIG, p5_13, r[13]),
        _inclusion_reject("inclusion: size is a string", lh[5], 5, "13", p5_13, r[13]),
        _inclusion_reject("inclusion: index is a fraction", lh[5], 5.5, 13, p5_13, r[13]),
        _inclusion_reject("inclusion: wrong leaf", lh[6], 5, 13, p5_13, r[13]),
        _inclusion_reject("inclusion: wrong root", lh[5], 5, 13, p5_13, r[12]),
        _inclusion_reject("inclusion: truncated path", lh[5], 5, 13, p5_13[:-1], r[13]),
        _inclusion_reject("inclusion: trailing root", lh[5], 5, 13, [*p5_13, r[13]], r[13]),
        _inclusion_reject("inclusion: preceding root", lh[5], 5, 13, [r[13], *p5_13], r[13]),
        _inclusion_reject(
            "inclusion: path element flipped",
            lh[5],
            5,
            13,
            [p5_13[0], _flip(p5_13[1], 0), *p5_13[2:]],
            r[13],
        ),
        _inclusion_reject(
            "inclusion: path element of 31 bytes", lh[5], 5, 13, [p5_13[0][:31], *p5_13[1:]], r[13]
        ),
        _inclusion_reject("inclusion: leaf data instead of leaf hash", b"", 0, 1, [], r[1]),
        _inclusion_reject("inclusion: single leaf, non-empty path", lh[0], 0, 1, [lh[1]], r[1]),
        # An interior node cannot pass for a leaf: the size fixes the path length.
        _inclusion_reject(
            "inclusion: interior node as a leaf",
            node_hash(lh[0], lh[1]),
            0,
            4,
            [tree[NodeId(1, 1)]],
            r[4],
        ),
        _consistency_reject("consistency: first 0", 0, 13, [], r[1], r[13]),
        _consistency_reject("consistency: first > second", 13, 6, c6_13, r[13], r[6]),
        _consistency_reject("consistency: empty path", 6, 13, [], r[6], r[13]),
        _consistency_reject("consistency: equal sizes, different roots", 7, 7, [], r[7], r[6]),
        _consistency_reject("consistency: equal sizes, non-empty path", 7, 7, [r[7]], r[7], r[7]),
        _consistency_reject("consistency: swapped roots", 6, 13, c6_13, r[13], r[6]),
        _consistency_reject("consistency: wrong first root", 6, 13, c6_13, r[5], r[13]),
        _consistency_reject("consistency: wrong second root", 6, 13, c6_13, r[6], r[12]),
        _consistency_reject("consistency: first + 1", 7, 13, c6_13, r[6], r[13]),
        _consistency_reject("consistency: second * 2", 6, 26, c6_13, r[6], r[13]),
        _consistency_reject("consistency: second - 6", 6, 7, c6_13, r[6], r[13]),
        _consistency_reject("consistency: second 2^53", 6, TOO_BIG, c6_13, r[6], r[13]),
        _consistency_reject("consistency: truncated path", 6, 13, c6_13[:-1], r[6], r[13]),
        _consistency_reject("consistency: trailing root", 6, 13, [*c6_13, r[13]], r[6], r[13]),
        _consistency_reject(
            "consistency: power-of-two first with its root prepended",
            4,
            13,
            [r[4], *c4_13],
            r[4],
            r[13],
        ),
        _consistency_reject(
            "consistency: path element flipped",
            6,
            13,
            [*c6_13[:-1], _flip(c6_13[-1], 255)],
            r[6],
            r[13],
        ),
        _consistency_reject("consistency: root of 33 bytes", 6, 13, c6_13, r[6] + b"\x00", r[13]),
    ]
    return out


def check_reject(case: dict[str, Any]) -> None:
    """Raise BadProof as every verifier must for this reject case (b64 decoded here)."""
    path = [b64d(p) for p in case["path"]]
    if case["kind"] == "inclusion":
        verify_inclusion(
            b64d(case["leaf_hash"]), case["index"], case["size"], path, b64d(case["root"])
        )
    else:
        first_root, second_root = b64d(case["first_root"]), b64d(case["second_root"])
        verify_consistency(case["first"], case["second"], path, first_root, second_root)


def build() -> dict[str, Any]:
    leaves = vector_leaves()
    tree = MemoryTree()
    tree.extend(leaves)
    case = {
        "name": "rfc9162 sizes 1..17",
        "leaves": _b64s(leaves),
        "leaf_hashes": _b64s([leaf_hash(d) for d in leaves]),
        "roots": _b64s([tree.root(n) for n in range(1, SIZES + 1)]),
        "inclusion": [
            {"index": i, "size": n, "path": _b64s(tree.inclusion_proof(i, n))}
            for n in range(1, SIZES + 1)
            for i in range(n)
        ],
        "consistency": [
            {"first": m, "second": n, "path": _b64s(tree.consistency_proof(m, n))}
            for n in range(1, SIZES + 1)
            for m in range(1, n + 1)
        ],
    }
    rejects = _rejects(tree)
    for reject in rejects:  # never publish a "reject" case that verifies
        try:
            check_reject(reject)
        except BadProof:
            continue
        raise AssertionError(f"reject case verifies: {reject['name']}")
    return {"cases": [case], "reject": rejects}
