"""Known answers from transparency-dev/merkle (Go), the reference RFC 6962/9162 tree code.

Data copied from https://github.com/transparency-dev/merkle (Apache-2.0), files and the
commits they were read at:
- testonly/constants.go @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1: LeafInputs,
  NodeHashes, RootHashes, CompactTrees (the 8-leaf reference tree);
- proof/verify_test.go @ 02194e9afb6c1d95b5381350007963aa70fff472: inclusionProofs
  (1-based leaf numbers), consistencyProofs, sha256SomeHash, and the corruption probes of
  corruptInclusionProof / corruptConsistencyProof (re-implemented below);
- proof/proof_test.go @ 02a3e2029520f515596d5238c54fb0ac9e19bff4: node ids of proofs
  (TestInclusion, TestConsistency; "rehash(begin, end, ...)" marks the nodes folded into one
  ephemeral node, listed from the lowest level up);
- compact/range_test.go @ 09877c5f596708620ad7073ec17cdf85f38cc247: TestGetRootHashGolden
  (leaf i = bytes [i & 0xff, (i >> 8) & 0xff], roots in standard base64);
- rfc6962/rfc6962_test.go @ 78493b07ef9b552e3379abf9e23d4da26fbe797c: hasher answers.
The same data is in tests/js/merkle.test.js.
"""

from __future__ import annotations

import base64

import pytest

from postbox.crypto.errors import BadProof
from postbox.keys.merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    NodeId,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

NODE_HASHES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# ROOTS[n] is the root of the first n leaves.
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

NH = NODE_HASHES
COMPACT_TREES = [
    [],
    [NH[0][0]],
    [NH[1][0]],
    [NH[1][0], NH[0][2]],
    [NH[2][0]],
    [NH[2][0], NH[0][4]],
    [NH[2][0], NH[1][2]],
    [NH[2][0], NH[1][2], NH[0][6]],
    [NH[3][0]],
]

# (leaf number, 1-based as in the Go file; tree size; path)
INCLUSION_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

# compact/range_test.go TestGetRootHashGolden: (size, root in standard base64).
GOLDEN_ROOTS = [
    (10, "VjWMPSYNtCuCNlF/RLnQy6HcwSk6CIipfxm+hettA+4="),
    (15, "j4SulYmocFuxdeyp12xXCIgK6PekBcxzAIj4zbQzNEI="),
    (16, "c+4Uc6BCMOZf/v3NZK1kqTUJe+bBoFtOhP+P3SayKRE="),
    (100, "dUh9hYH88p0CMoHkdr1wC2szbhcLAXOejWpINIooKUY="),
    (255, "SmdsuKUqiod3RX2jyF2M6JnbdE4QuTwwipfAowI4/i0="),
    (256, "qFI0t/tZ1MdOYgyPpPzHFiZVw86koScXy9q3FU5casA="),
    (1000, "RXrgb8xHd55Y48FbfotJwCbV82Kx22LZfEbmBGAvwlQ="),
    (4095, "cWRFdQhPcjn9WyBXE/r1f04ejxIm5lvg40DEpRBVS0w="),
    (4096, "6uU/phfHg1n/GksYT6TO9aN8EauMCCJRl3dIK0HDs2M="),
    (10000, "VZcav65F9haHVRk3wre2axFoBXRNeUh/1d9d5FQfxIg="),
    (65535, "iPuVYJhP6SEE4gUFp8qbafd2rYv9YTCDYqAxCj8HdLM="),
]


def N(level: int, index: int) -> NodeId:  # mirrors Go's compact.NewNodeID
    return NodeId(level, index)


def go_nodes(ids: list[NodeId], begin: int = 0, end: int = 0) -> tuple[tuple[NodeId, ...], ...]:
    """A Go proof.Nodes value in our ProofPlan form: ids[begin:end] fold into one element.

    Go lists the nodes of its ephemeral node from the lowest level up; a plan element
    lists them left to right, i.e. the other way round.
    """
    if begin >= end:
        return tuple((n,) for n in ids)
    ephemeral = tuple(reversed(ids[begin:end]))
    return (*((n,) for n in ids[:begin]), ephemeral, *((n,) for n in ids[end:]))


# proof/proof_test.go TestInclusion (valid cases): (size, index, expected plan)
GO_INCLUSION_PLANS = [
    (1, 0, go_nodes([])),
    (2, 0, go_nodes([N(0, 1)])),
    (2, 1, go_nodes([N(0, 0)])),
    (3, 1, go_nodes([N(0, 0), N(0, 2)])),
    (7, 0, go_nodes([N(0, 1), N(1, 1), N(0, 6), N(1, 2)], 2, 4)),
    (7, 1, go_nodes([N(0, 0), N(1, 1), N(0, 6), N(1, 2)], 2, 4)),
    (7, 2, go_nodes([N(0, 3), N(1, 0), N(0, 6), N(1, 2)], 2, 4)),
    (7, 3, go_nodes([N(0, 2), N(1, 0), N(0, 6), N(1, 2)], 2, 4)),
    (7, 4, go_nodes([N(0, 5), N(0, 6), N(2, 0)])),
    (7, 5, go_nodes([N(0, 4), N(0, 6), N(2, 0)])),
    (7, 6, go_nodes([N(1, 2), N(2, 0)])),
    (4, 2, go_nodes([N(0, 3), N(1, 0)])),
    (5, 3, go_nodes([N(0, 2), N(1, 0), N(0, 4)])),
    (6, 3, go_nodes([N(0, 2), N(1, 0), N(1, 2)])),
    (6, 4, go_nodes([N(0, 5), N(2, 0)])),
    (15, 10, go_nodes([N(0, 11), N(1, 4), N(0, 14), N(1, 6), N(3, 0)], 2, 4)),
    (31, 24, go_nodes([N(0, 25), N(1, 13), N(0, 30), N(1, 14), N(3, 2), N(4, 0)], 2, 4)),
    (
        95,
        81,
        go_nodes(
            [N(0, 80), N(1, 41), N(2, 21), N(0, 94), N(1, 46), N(2, 22), N(4, 4), N(6, 0)], 3, 6
        ),
    ),
]

# proof/proof_test.go TestConsistency (valid cases): (size1, size2, expected plan)
GO_CONSISTENCY_PLANS = [
    (1, 2, go_nodes([N(0, 1)])),
    (1, 4, go_nodes([N(0, 1), N(1, 1)])),
    (1, 6, go_nodes([N(0, 1), N(1, 1), N(1, 2)])),
    (2, 3, go_nodes([N(0, 2)])),
    (2, 8, go_nodes([N(1, 1), N(2, 1)])),
    (3, 7, go_nodes([N(0, 2), N(0, 3), N(1, 0), N(0, 6), N(1, 2)], 3, 5)),
    (4, 7, go_nodes([N(0, 6), N(1, 2)], 0, 2)),
    (5, 7, go_nodes([N(0, 4), N(0, 5), N(0, 6), N(2, 0)])),
    (6, 7, go_nodes([N(1, 2), N(0, 6), N(2, 0)])),
    (7, 8, go_nodes([N(0, 6), N(0, 7), N(1, 2), N(2, 0)])),
    *((n, n, go_nodes([])) for n in (1, 2, 3, 4, 5, 7, 8)),
    (2, 4, go_nodes([N(1, 1)])),
    (3, 5, go_nodes([N(0, 2), N(0, 3), N(1, 0), N(0, 4)])),
    (3, 6, go_nodes([N(0, 2), N(0, 3), N(1, 0), N(1, 2)])),
    (4, 6, go_nodes([N(1, 2)])),
    (1, 7, go_nodes([N(0, 1), N(1, 1), N(0, 6), N(1, 2)], 2, 4)),
    (10, 15, go_nodes([N(1, 4), N(1, 5), N(0, 14), N(1, 6), N(3, 0)], 2, 4)),
    (24, 31, go_nodes([N(3, 2), N(0, 30), N(1, 14), N(2, 6), N(4, 0)], 1, 4)),
    (
        81,
        95,
        go_nodes(
            [
                N(0, 80),
                N(0, 81),
                N(1, 41),
                N(2, 21),
                N(0, 94),
                N(1, 46),
                N(2, 22),
                N(4, 4),
                N(6, 0),
            ],
            4,
            7,
        ),
    ),
]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    t = MemoryTree()
    t.extend(LEAF_INPUTS)
    return t


def test_hasher_answers() -> None:  # rfc6962/rfc6962_test.go
    assert h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_roots_nodes_and_compact_ranges(tree: MemoryTree) -> None:
    for size, root in enumerate(ROOTS):
        assert tree.root(size) == root
        assert tree.frontier(size).hashes == tuple(COMPACT_TREES[size])
    for level, hashes in enumerate(NODE_HASHES):
        for index, node in enumerate(hashes):
            assert tree[NodeId(level, index)] == node
    frontier = Frontier.empty()
    for size, d in enumerate(LEAF_INPUTS, start=1):
        frontier, _ = frontier.append(leaf_hash(d))
        assert frontier.hashes == tuple(COMPACT_TREES[size])
        assert frontier.root() == ROOTS[size]


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION_PROOFS)
def test_inclusion_proofs(tree: MemoryTree, leaf: int, size: int, path: list[bytes]) -> None:
    index = leaf - 1
    lh = leaf_hash(LEAF_INPUTS[index])
    assert tree.inclusion_proof(index, size) == path
    assert root_from_inclusion(lh, index, size, path) == ROOTS[size]
    verify_inclusion(lh, index, size, path, ROOTS[size])
    for desc, probe in corrupt_inclusion(index, size, path, ROOTS[size], lh):
        with pytest.raises(BadProof):
            verify_inclusion(probe[0], probe[1], probe[2], probe[3], probe[4])  # type: ignore[arg-type]
        assert desc


@pytest.mark.parametrize(("size1", "size2", "path"), CONSISTENCY_PROOFS)
def test_consistency_proofs(tree: MemoryTree, size1: int, size2: int, path: list[bytes]) -> None:
    assert tree.consistency_proof(size1, size2) == path
    verify_consistency(size1, size2, path, ROOTS[size1], ROOTS[size2])
    if not path:
        return
    for desc, probe in corrupt_consistency(size1, size2, ROOTS[size1], ROOTS[size2], path):
        with pytest.raises(BadProof):
            verify_consistency(*probe)  # type: ignore[arg-type]
        assert desc


def test_verify_inclusion_single_entry() -> None:  # TestVerifyInclusionSingleEntry
    lh = leaf_hash(b"data")
    verify_inclusion(lh, 0, 1, [], lh)
    for leaf, root in ((lh, b""), (b"", lh), (b"", b"")):
        with pytest.raises(BadProof):
            verify_inclusion(leaf, 0, 1, [], root)


def test_verify_inclusion_bad_sizes() -> None:  # TestVerifyInclusion probes
    for index, size in ((0, 0), (1, 0), (2, 1)):
        for leaf, root in ((SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)):
            with pytest.raises(BadProof):
                verify_inclusion(leaf, index, size, [], root)


def test_verify_consistency_table() -> None:
    """TestVerifyConsistency, with one deliberate difference: size 0 is refused here.

    PROTOCOL.md §7 defines consistency for 1 ≤ first ≤ second; the Go verifier accepts
    first = 0 (an empty tree is a prefix of everything), we raise BadProof.
    """
    r1, r2 = ROOTS[1], ROOTS[2]
    verify_consistency(1, 1, [], r2, r2)
    bad = [
        (0, 0, [], r1, r2),
        (1, 1, [], r1, r2),
        (0, 0, [], r1, r1),  # accepted by Go
        (0, 1, [], r1, r2),  # accepted by Go
        (1, 0, [], r1, r2),
        (2, 1, [], r1, r2),
        (1, 2, [], r1, r2),
        (0, 0, [], EMPTY_ROOT, r2),
        (1, 1, [], EMPTY_ROOT, r2),
        (0, 0, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
        (0, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
        (1, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT),
    ]
    for first, second, path, a, b in bad:
        with pytest.raises(BadProof):
            verify_consistency(first, second, path, a, b)


@pytest.mark.parametrize(("size", "index", "plan"), GO_INCLUSION_PLANS)
def test_inclusion_plans_match_go(
    size: int, index: int, plan: tuple[tuple[NodeId, ...], ...]
) -> None:
    assert inclusion_plan(index, size).elements == plan


@pytest.mark.parametrize(("size1", "size2", "plan"), GO_CONSISTENCY_PLANS)
def test_consistency_plans_match_go(
    size1: int, size2: int, plan: tuple[tuple[NodeId, ...], ...]
) -> None:
    assert consistency_plan(size1, size2).elements == plan


def test_golden_roots_of_large_trees() -> None:
    t = MemoryTree()
    t.extend(bytes([i & 0xFF, (i >> 8) & 0xFF]) for i in range(GOLDEN_ROOTS[-1][0]))
    for size, root in GOLDEN_ROOTS:
        assert base64.b64encode(t.root(size)).decode() == root


# --- the corruption probes of proof/verify_test.go -----------------------------------------------
Probe = tuple[object, ...]


def corrupt_inclusion(
    index: int, size: int, path: list[bytes], root: bytes, lh: bytes
) -> list[tuple[str, Probe]]:
    probes: list[tuple[str, Probe]] = [
        ("leafIndex - 1", (lh, index - 1, size, path, root)),
        ("leafIndex + 1", (lh, index + 1, size, path, root)),
        ("leafIndex ^ 2", (lh, index ^ 2, size, path, root)),
        ("treeSize * 2", (lh, index, size * 2, path, root)),
        ("treeSize / 2", (lh, index, size // 2, path, root)),
        ("wrong leaf", (b"WrongLeaf", index, size, path, root)),
        ("empty root", (lh, index, size, path, EMPTY_ROOT)),
        ("random root", (lh, index, size, path, SOME_HASH)),
        ("trailing garbage", (lh, index, size, [*path, b""], root)),
        ("trailing root", (lh, index, size, [*path, root], root)),
        ("preceding garbage", (lh, index, size, [b"", *path], root)),
        ("preceding root", (lh, index, size, [root, *path], root)),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", (lh, index, size, wrong, root)))
    if path:
        probes.append(("removed component", (lh, index, size, path[:-1], root)))
    if len(path) > 1:
        probes.append(
            ("inserted component", (lh, index, size, [path[0], SOME_HASH, *path[1:]], root))
        )
    return probes


def corrupt_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, path: list[bytes]
) -> list[tuple[str, Probe]]:
    probes: list[tuple[str, Probe]] = [
        ("size1 - 1", (size1 - 1, size2, path, root1, root2)),
        ("size1 + 1", (size1 + 1, size2, path, root1, root2)),
        ("size1 ^ 2", (size1 ^ 2, size2, path, root1, root2)),
        ("size2 * 2", (size1, size2 * 2, path, root1, root2)),
        ("size2 / 2", (size1, size2 // 2, path, root1, root2)),
        ("wrong root1", (size1, size2, path, b"WrongRoot", root2)),
        ("wrong root2", (size1, size2, path, root1, b"WrongRoot")),
        ("swapped roots", (size1, size2, path, root2, root1)),
        ("empty proof", (size1, size2, [], root1, root2)),
        ("trailing garbage", (size1, size2, [*path, b""], root1, root2)),
        ("trailing root1", (size1, size2, [*path, root1], root1, root2)),
        ("trailing root2", (size1, size2, [*path, root2], root1, root2)),
        ("preceding garbage", (size1, size2, [b"", *path], root1, root2)),
        ("preceding root1", (size1, size2, [root1, *path], root1, root2)),
        ("preceding root2", (size1, size2, [root2, *path], root1, root2)),
        ("preceding proof[0]", (size1, size2, [path[0], *path], root1, root2)),
        ("truncated proof", (size1, size2, path[:-1], root1, root2)),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", (size1, size2, wrong, root1, root2)))
    return probes
