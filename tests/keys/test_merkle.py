"""RFC 9162 Merkle trees: agreement with a naive reference, plans, frontier, tampering."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postbox.crypto.errors import BadProof, CryptoError
from postbox.keys.merkle import (
    EMPTY_ROOT,
    HASH_BYTES,
    MAX_TREE_SIZE,
    Frontier,
    MemoryTree,
    NodeId,
    ProofPlan,
    consistency_plan,
    consistency_proof_length,
    fold,
    inclusion_plan,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    range_nodes,
    root_from_inclusion,
    root_from_nodes,
    root_nodes,
    verify_consistency,
    verify_inclusion,
)


# --- a naive reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as written ------------------------
def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaves[0])
    k = split(n)
    return sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, leaves, True)


def data(i: int) -> bytes:
    return b"leaf %d" % i if i % 5 else b""


MAX_REF = 64
LEAVES = [data(i) for i in range(MAX_REF)]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    t = MemoryTree()
    t.extend(LEAVES)
    return t


# --- hashing -------------------------------------------------------------------------------------
def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == sha256(b"\x01" + a + b)
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)
    assert sha256(b"") == EMPTY_ROOT
    assert len(leaf_hash(b"")) == HASH_BYTES


def test_fold_is_a_right_fold() -> None:
    a, b, c = (leaf_hash(bytes([i])) for i in range(3))
    assert fold([a]) == a
    assert fold([a, b, c]) == node_hash(a, node_hash(b, c))
    with pytest.raises(ValueError):
        fold([])


# --- agreement with the reference for every size, index and pair up to 64 ------------------------
@pytest.mark.parametrize("size", range(1, MAX_REF + 1))
def test_roots_and_proofs_agree_with_reference(tree: MemoryTree, size: int) -> None:
    leaves = LEAVES[:size]
    root = ref_mth(leaves)
    assert tree.root(size) == root
    assert Frontier.empty().extend(leaf_hash(d) for d in leaves)[0].root() == root
    for index in range(size):
        path = tree.inclusion_proof(index, size)
        assert path == ref_path(index, leaves)
        assert len(path) == inclusion_proof_length(index, size)
        verify_inclusion(leaf_hash(leaves[index]), index, size, path, root)
        assert root_from_inclusion(leaf_hash(leaves[index]), index, size, path) == root
    for first in range(1, size + 1):
        path = tree.consistency_proof(first, size)
        assert path == ref_proof(first, leaves)
        assert len(path) == consistency_proof_length(first, size)
        verify_consistency(first, size, path, ref_mth(LEAVES[:first]), root)


def test_empty_tree_root() -> None:
    t = MemoryTree()
    assert t.root() == EMPTY_ROOT == ref_mth([])
    assert Frontier.empty().root() == EMPTY_ROOT
    assert root_nodes(0) == ()


def test_equal_sizes_need_an_empty_path_and_equal_roots(tree: MemoryTree) -> None:
    for n in (1, 2, 7, 8):
        assert tree.consistency_proof(n, n) == []
        verify_consistency(n, n, [], tree.root(n), tree.root(n))
        with pytest.raises(BadProof):
            verify_consistency(n, n, [], tree.root(n), tree.root(n + 1))
        with pytest.raises(BadProof):
            verify_consistency(n, n, [tree.root(n)], tree.root(n), tree.root(n))


# --- plans: the storage interface ----------------------------------------------------------------
def covered(nodes: Sequence[NodeId]) -> tuple[int, int]:
    """The range a left-to-right list of adjacent nodes covers (asserting adjacency)."""
    for left, right in itertools.pairwise(nodes):
        assert left.end == right.begin
        assert left.level > right.level  # strictly decreasing: fold gives the RFC hash
    return nodes[0].begin, nodes[-1].end


def check_range_nodes(begin: int, end: int) -> None:
    nodes = range_nodes(begin, end)
    pos = begin
    for node in nodes:
        assert node.begin == pos
        pos = node.end
    assert pos == end
    assert len(nodes) <= 2 * max(1, end.bit_length())


@given(st.integers(0, MAX_TREE_SIZE), st.integers(0, MAX_TREE_SIZE))
def test_range_nodes_cover_exactly(a: int, b: int) -> None:
    check_range_nodes(min(a, b), max(a, b))


@given(st.integers(1, MAX_TREE_SIZE), st.data())
def test_inclusion_plan_structure_for_huge_trees(size: int, draw: st.DataObject) -> None:
    index = draw.draw(st.integers(0, size - 1))
    plan = inclusion_plan(index, size)
    assert len(plan.elements) == inclusion_proof_length(index, size)
    assert len(plan.nodes) <= 2 * size.bit_length()
    assert sum(len(e) > 1 for e in plan.elements) <= 1  # at most one ephemeral node
    # The leaf and the path elements tile [0, size) and climb: each covers the block next
    # to everything below it.
    lo, hi = index, index + 1
    for element in plan.elements:
        a, b = covered(element)
        assert b <= size
        assert b == lo or a == hi
        lo, hi = min(lo, a), max(hi, b)
    assert (lo, hi) == (0, size)


@given(st.integers(1, MAX_TREE_SIZE), st.data())
def test_consistency_plan_structure_for_huge_trees(second: int, draw: st.DataObject) -> None:
    first = draw.draw(st.integers(1, second))
    plan = consistency_plan(first, second)
    assert len(plan.elements) == consistency_proof_length(first, second)
    assert len(plan.nodes) <= 2 * second.bit_length()
    assert sum(len(e) > 1 for e in plan.elements) <= 1
    if first == second:
        assert plan.elements == ()
        return
    ranges = sorted(covered(e) for e in plan.elements)
    if first & (first - 1) == 0:  # the verifier knows [0, first) already
        ranges.insert(0, (0, first))
    pos = 0
    for a, b in ranges:
        assert a == pos
        pos = b
    assert pos == second


def test_plans_assembled_from_a_dict_match_the_memory_tree(tree: MemoryTree) -> None:
    """What the database layer does: store the nodes an appender creates, fetch plans."""
    store: dict[NodeId, bytes] = {}
    frontier = Frontier.empty()
    for i, d in enumerate(LEAVES):
        frontier = Frontier.load(i, store)  # read only the O(log n) right-edge rows
        frontier, created = frontier.append(leaf_hash(d))
        store.update(created)
        assert frontier.root() == tree.root(i + 1) == root_from_nodes(i + 1, store)
    assert len(store) == 2 * len(LEAVES) - 1  # 64 is a power of two: every node complete
    for size in range(1, len(LEAVES) + 1):
        for index in range(size):
            plan = inclusion_plan(index, size)
            fetched = {n: store[n] for n in plan.nodes}
            assert plan.assemble(fetched) == tree.inclusion_proof(index, size)
        for first in range(1, size + 1):
            plan = consistency_plan(first, size)
            fetched = {n: store[n] for n in plan.nodes}
            assert plan.assemble(fetched) == tree.consistency_proof(first, size)


def test_frontier_extend_creates_each_perfect_node_once(tree: MemoryTree) -> None:
    frontier, created = Frontier.empty().extend(leaf_hash(d) for d in LEAVES[:37])
    ids = [node for node, _ in created]
    assert len(ids) == len(set(ids))
    for node, h in created:
        assert tree[node] == h
    assert frontier == tree.frontier(37)
    assert frontier.nodes == root_nodes(37) == (NodeId(5, 0), NodeId(2, 8), NodeId(0, 36))
    # Extending in pieces gives the same result as at once.
    f1, c1 = Frontier.empty().extend(leaf_hash(d) for d in LEAVES[:20])
    f2, c2 = f1.extend(leaf_hash(d) for d in LEAVES[20:37])
    assert f2 == frontier
    assert c1 + c2 == created


def test_plan_examples() -> None:
    # RFC 9162 §2.1.5 style tree of 7 leaves: the proof for leaf 0 is b, h, hash(i, j).
    plan = inclusion_plan(0, 7)
    assert plan.elements == (
        (NodeId(0, 1),),
        (NodeId(1, 1),),
        (NodeId(1, 2), NodeId(0, 6)),
    )
    assert plan.nodes == (NodeId(0, 1), NodeId(1, 1), NodeId(1, 2), NodeId(0, 6))
    assert consistency_plan(4, 4) == ProofPlan(())
    assert consistency_plan(3, 7).elements == (
        (NodeId(0, 2),),
        (NodeId(0, 3),),
        (NodeId(1, 0),),
        (NodeId(1, 2), NodeId(0, 6)),
    )


def test_node_id_helpers() -> None:
    n = NodeId(2, 3)
    assert (n.begin, n.end) == (12, 16)
    assert n.parent() == NodeId(3, 1)
    assert n.sibling() == NodeId(2, 2)
    assert n.children() == (NodeId(1, 6), NodeId(1, 7))
    with pytest.raises(ValueError):
        NodeId(0, 5).children()


# --- generation refuses impossible requests ------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.inclusion_proof(5, 5),
        lambda t: t.inclusion_proof(-1, 5),
        lambda t: t.inclusion_proof(0, 0),
        lambda t: t.inclusion_proof(0, MAX_REF + 1),
        lambda t: t.consistency_proof(0, 5),
        lambda t: t.consistency_proof(6, 5),
        lambda t: t.consistency_proof(1, MAX_REF + 1),
        lambda t: t.root(MAX_REF + 1),
        lambda t: t.root(True),
        lambda t: t.leaf_hash(MAX_REF),
        lambda t: inclusion_plan(0, MAX_TREE_SIZE + 1),
        lambda t: consistency_plan(1, 2.0),  # type: ignore[arg-type]
        lambda t: range_nodes(5, 4),
        lambda t: t.append_hash(b"short"),
        lambda t: Frontier(3, (EMPTY_ROOT,)),
        lambda t: Frontier(1, (b"short",)),
        lambda t: Frontier.empty().append(b"x" * 31),
    ],
)
def test_generation_rejects_bad_arguments(
    tree: MemoryTree, call: Callable[[MemoryTree], object]
) -> None:
    with pytest.raises(ValueError):
        call(tree)


def test_missing_stored_node_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        inclusion_plan(3, 8).assemble({})
    with pytest.raises(KeyError):
        MemoryTree()[NodeId(0, 0)]
    with pytest.raises(ValueError):
        root_from_nodes(1, {NodeId(0, 0): b"short"})


# --- tampering -----------------------------------------------------------------------------------
TAMPER_SIZES = [*range(1, 18), 31, 32, 33]


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def inclusion_fails(leaf: object, index: object, size: object, path: object, root: object) -> None:
    with pytest.raises(BadProof) as info:
        verify_inclusion(leaf, index, size, path, root)  # type: ignore[arg-type]
    assert isinstance(info.value, CryptoError)


def consistency_fails(first: object, second: object, path: object, r1: object, r2: object) -> None:
    with pytest.raises(BadProof):
        verify_consistency(first, second, path, r1, r2)  # type: ignore[arg-type]


def same_shape(index: int, size: int, other: int) -> bool:
    """Whether PATH(index, D[other]) is computed exactly like PATH(index, D[size]).

    RFC 9162 verification only sees the left/right pattern of the path, so a path for
    leaf 0 of 3 leaves also "verifies" as leaf 0 of 4 leaves against the same root. That
    is harmless because the signed tree head binds the size to the root; the tests claim a
    wrong size only where the pattern differs.
    """
    if not 0 <= index < other <= MAX_TREE_SIZE:
        return False
    if inclusion_proof_length(index, size) != inclusion_proof_length(index, other):
        return False
    leaf = leaf_hash(b"probe")
    path = [leaf_hash(bytes([i])) for i in range(inclusion_proof_length(index, size))]
    root = root_from_inclusion(leaf, index, size, path)
    return root_from_inclusion(leaf, index, other, path) == root


@pytest.mark.parametrize("size", TAMPER_SIZES)
def test_inclusion_tampering(tree: MemoryTree, size: int) -> None:
    root = tree.root(size)
    for index in range(size):
        leaf = tree.leaf_hash(index)
        path = tree.inclusion_proof(index, size)
        for i, element in enumerate(path):  # every bit of every path element
            for bit in range(HASH_BYTES * 8):
                bad = [*path[:i], flip(element, bit), *path[i + 1 :]]
                inclusion_fails(leaf, index, size, bad, root)
        for bit in (0, 7, 128, 255):
            inclusion_fails(flip(leaf, bit), index, size, path, root)
            inclusion_fails(leaf, index, size, path, flip(root, bit))
        for other in range(size + 2):  # every wrong index, and two out of range
            if other != index:
                inclusion_fails(leaf, other, size, path, root)
        for other in {0, 1, size - 1, size + 1, 2 * size, size // 2, MAX_TREE_SIZE + 1}:
            if other != size and not same_shape(index, size, other):
                inclusion_fails(leaf, index, other, path, root)
        inclusion_fails(leaf, index, size, [*path, root], root)  # extended
        inclusion_fails(leaf, index, size, [root, *path], root)  # prepended
        inclusion_fails(leaf, index, size, [*path, b""], root)
        if path:
            inclusion_fails(leaf, index, size, path[:-1], root)  # truncated
            inclusion_fails(leaf, index, size, path[1:], root)
            if len(path) > 1:
                inclusion_fails(leaf, index, size, path[::-1], root)
            inclusion_fails(leaf, index, size, [path[0][:31], *path[1:]], root)
        inclusion_fails(leaf, index, size, path, tree.root(size - 1 if size > 1 else 2))


OTHER_TREE = MemoryTree()
OTHER_TREE.extend(b"other %d" % i for i in range(MAX_REF))


def same_consistency_shape(first: int, second: int, first2: int, second2: int) -> bool:
    """Whether a proof between first and second passes as one between first2 and second2
    for unrelated data too (the same left/right pattern; see :func:`same_shape`)."""
    if not 1 <= first < second <= MAX_REF:
        return False
    path = OTHER_TREE.consistency_proof(first, second)
    r1, r2 = OTHER_TREE.root(first), OTHER_TREE.root(second)
    try:
        verify_consistency(first2, second2, path, r1, r2)
    except BadProof:
        return False
    return True


@pytest.mark.parametrize("second", TAMPER_SIZES)
def test_consistency_tampering(tree: MemoryTree, second: int) -> None:
    r2 = tree.root(second)
    for first in range(1, second):
        r1 = tree.root(first)
        path = tree.consistency_proof(first, second)
        for i, element in enumerate(path):
            for bit in range(HASH_BYTES * 8):
                bad = [*path[:i], flip(element, bit), *path[i + 1 :]]
                consistency_fails(first, second, bad, r1, r2)
        for bit in (0, 255):
            consistency_fails(first, second, path, flip(r1, bit), r2)
            consistency_fails(first, second, path, r1, flip(r2, bit))
        consistency_fails(first, second, path, r2, r1)  # swapped
        for other in {0, first - 1, first + 1, first ^ 2, second + 1}:
            if other != first and not same_consistency_shape(first, second, other, second):
                consistency_fails(other, second, path, r1, r2)
        for other in {0, first, second - 1, second + 1, 2 * second, second // 2, 2**53}:
            if other != second and not same_consistency_shape(first, second, first, other):
                consistency_fails(first, other, path, r1, r2)
        consistency_fails(first, second, [], r1, r2)
        consistency_fails(first, second, path[:-1], r1, r2)
        consistency_fails(first, second, [*path, r1], r1, r2)
        consistency_fails(first, second, [*path, r2], r1, r2)
        consistency_fails(first, second, [r1, *path], r1, r2)
        consistency_fails(first, second, [r2, *path], r1, r2)
        consistency_fails(first, second, [path[0], *path], r1, r2)
        consistency_fails(first, second, [b"", *path], r1, r2)
    consistency_fails(second + 1, second, [], r2, r2)  # time travel


def test_type_confusion_is_a_bad_proof(tree: MemoryTree) -> None:
    leaf, root, path = tree.leaf_hash(3), tree.root(8), tree.inclusion_proof(3, 8)
    verify_inclusion(leaf, 3, 8, tuple(path), root)  # any list or tuple is fine
    for bad_int in (True, 3.0, "3", None, -1):
        inclusion_fails(leaf, bad_int, 8, path, root)
        inclusion_fails(leaf, 3, bad_int, path, root)
    inclusion_fails(bytearray(leaf), 3, 8, path, root)
    inclusion_fails(leaf, 3, 8, b"".join(path), root)
    inclusion_fails(leaf, 3, 8, "".join(p.hex() for p in path), root)
    inclusion_fails(leaf, 3, 8, [p.hex() for p in path], root)
    inclusion_fails(leaf, 3, 8, path, root.hex())
    r5 = tree.root(5)
    c = tree.consistency_proof(5, 8)
    verify_consistency(5, 8, c, r5, root)
    consistency_fails(True, 8, c, r5, root)
    consistency_fails(5, 8.0, c, r5, root)
    consistency_fails(5, 8, c, r5, None)
    consistency_fails(5, 8, iter(c), r5, root)


# --- hypothesis ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=300), st.data())
def test_random_trees_prove_and_verify(leaves: list[bytes], draw: st.DataObject) -> None:
    t = MemoryTree()
    t.extend(leaves)
    size = draw.draw(st.integers(1, len(leaves)))
    index = draw.draw(st.integers(0, size - 1))
    first = draw.draw(st.integers(1, size))
    root = t.root(size)
    assert root == ref_mth(leaves[:size])
    path = t.inclusion_proof(index, size)
    verify_inclusion(leaf_hash(leaves[index]), index, size, path, root)
    cpath = t.consistency_proof(first, size)
    verify_consistency(first, size, cpath, t.root(first), root)
    # One random bit of one random element flipped never verifies.
    if path:
        i = draw.draw(st.integers(0, len(path) - 1))
        bit = draw.draw(st.integers(0, 255))
        path[i] = flip(path[i], bit)
        inclusion_fails(leaf_hash(leaves[index]), index, size, path, root)
    if cpath:
        i = draw.draw(st.integers(0, len(cpath) - 1))
        cpath[i] = flip(cpath[i], draw.draw(st.integers(0, 255)))
        consistency_fails(first, size, cpath, t.root(first), root)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 2**20),
    st.data(),
)
def test_random_proofs_against_random_claims_fail(size: int, draw: st.DataObject) -> None:
    """Random hashes of the right shape (length, sizes) are refused, not crashed on."""
    index = draw.draw(st.integers(0, size - 1))
    n = inclusion_proof_length(index, size)
    hashes = st.binary(min_size=HASH_BYTES, max_size=HASH_BYTES)
    path = draw.draw(st.lists(hashes, min_size=n, max_size=n))
    leaf, root = draw.draw(hashes), draw.draw(hashes)
    if not (size == 1 and leaf == root):
        inclusion_fails(leaf, index, size, path, root)
    first = draw.draw(st.integers(1, size))
    m = consistency_proof_length(first, size)
    cpath = draw.draw(st.lists(hashes, min_size=m, max_size=m))
    r1, r2 = draw.draw(hashes), draw.draw(hashes)
    if first == size and r1 == r2:
        return
    consistency_fails(first, size, cpath, r1, r2)


# --- a large tree --------------------------------------------------------------------------------
def level_by_level_root(hashes: list[bytes]) -> bytes:
    """An independent O(n) root: pair up each level, carry an odd last node upwards."""
    level = hashes
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


@pytest.mark.slow
def test_million_leaves() -> None:
    n = 1_000_000
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    t = MemoryTree()
    t.extend_hashes(hashes)
    assert t.size == n
    root = t.root()
    assert root == level_by_level_root(hashes)
    for size in (n, n - 1, 2**19, 2**19 + 1, 777_777):
        r = t.root(size)
        assert t.frontier(size).root() == r
        for index in (0, 1, size // 3, size - 2, size - 1):
            path = t.inclusion_proof(index, size)
            assert len(path) <= 40
            verify_inclusion(hashes[index], index, size, path, r)
        for first in (1, 2, 3, 2**18, size // 2 + 1, size - 1, size):
            verify_consistency(first, size, t.consistency_proof(first, size), t.root(first), r)
    # An appender that only reads the frontier rows arrives at the same next root.
    frontier, created = t.frontier().append(leaf_hash(b"one more"))
    t.append(b"one more")
    assert frontier.root() == t.root()
    assert all(t[node] == h for node, h in created)
