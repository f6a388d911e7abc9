"""Micro benchmark of postbox.keys.merkle on a large tree.

Builds a MemoryTree of --leaves leaves, then times appends (MemoryTree and Frontier),
proof plans (no hashing: what a database layer computes before its query), inclusion and
consistency proof generation at random sizes and indices, and verification. Prints a few
human lines and, last, one JSON line with every figure.

    .venv/bin/python bench/merkle.py            # 1,000,000 leaves
    .venv/bin/python bench/merkle.py --smoke    # 10,000 leaves, seconds
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

from postbox.keys.merkle import (
    Frontier,
    MemoryTree,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.leaves, args.proofs = 10_000, 200
    n, k = args.leaves, args.proofs
    rng = random.Random(args.seed)

    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]

    tree = MemoryTree()
    t_tree = timed(lambda: tree.extend_hashes(hashes))
    frontier_result: list[Frontier] = []
    t_frontier = timed(lambda: frontier_result.append(Frontier.empty().extend(hashes)[0]))
    assert frontier_result[0].root() == tree.root()

    queries = []
    for _ in range(k):
        size = rng.randint(1, n)
        queries.append((rng.randrange(size), size, rng.randint(1, size)))

    def plans() -> None:
        for index, size, first in queries:
            inclusion_plan(index, size)
            consistency_plan(first, size)

    t_plans = timed(plans)

    inclusion: list[tuple[int, int, list[bytes], bytes]] = []
    consistency: list[tuple[int, int, list[bytes], bytes, bytes]] = []

    def gen_inclusion() -> None:
        for index, size, _ in queries:
            inclusion.append((index, size, tree.inclusion_proof(index, size), tree.root(size)))

    def gen_consistency() -> None:
        for _, size, first in queries:
            consistency.append(
                (
                    first,
                    size,
                    tree.consistency_proof(first, size),
                    tree.root(first),
                    tree.root(size),
                )
            )

    t_inc = timed(gen_inclusion)
    t_con = timed(gen_consistency)

    def ver_inclusion() -> None:
        for index, size, path, root in inclusion:
            verify_inclusion(hashes[index], index, size, path, root)

    def ver_consistency() -> None:
        for first, size, path, r1, r2 in consistency:
            verify_consistency(first, size, path, r1, r2)

    t_vinc = timed(ver_inclusion)
    t_vcon = timed(ver_consistency)

    # The node table a database would hold: every perfect node, 32-byte hashes.
    stored_nodes = sum(n >> level for level in range(n.bit_length()))
    result = {
        "bench": "merkle",
        "smoke": args.smoke,
        "leaves": n,
        "proofs": k,
        "memory_tree_appends_per_s": rate(n, t_tree),
        "frontier_appends_per_s": rate(n, t_frontier),
        "plans_per_s": rate(2 * k, t_plans),
        "inclusion_proofs_per_s": rate(k, t_inc),
        "consistency_proofs_per_s": rate(k, t_con),
        "inclusion_verifications_per_s": rate(k, t_vinc),
        "consistency_verifications_per_s": rate(k, t_vcon),
        "mean_inclusion_path": round(sum(len(p) for _, _, p, _ in inclusion) / k, 2),
        "mean_consistency_path": round(sum(len(p) for _, _, p, _, _ in consistency) / k, 2),
        "stored_nodes": stored_nodes,
        "stored_hash_bytes": 32 * stored_nodes,
    }
    print(f"{n:,} leaves, {k:,} random queries")
    for key in sorted(result):
        if key.endswith("_per_s"):
            print(f"  {key}: {result[key]:,}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
