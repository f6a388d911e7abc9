"""RFC 9162 §2.1 Merkle trees for the key-transparency log (PROTOCOL.md §7).

Hashing and shape are exactly RFC 9162 §2.1.1: ``leaf = SHA-256(0x00 ‖ data)``,
``node = SHA-256(0x01 ‖ left ‖ right)``, and a list of n > 1 leaves is split at k, the
largest power of two smaller than n. Inclusion proofs follow §2.1.3, consistency proofs
§2.1.4 (for 1 ≤ first ≤ second; first == second is the empty proof between equal roots).

The module has three parts.

**Planning (pure, no hashing).** Every hash a proof or a root needs is the hash of a
*perfect* subtree: ``NodeId(level, index)`` covers the ``2**level`` leaves
``[index << level, (index + 1) << level)``. A perfect node never changes once its last
leaf is appended, so it can be stored once and used for every later tree size. The
right edge of a tree is not perfect, but it is the right fold of at most log2(n) perfect
nodes (the binary decomposition of its size). :func:`inclusion_plan` and
:func:`consistency_plan` return a :class:`ProofPlan`: for each path element, the perfect
nodes whose fold is that element. A database layer fetches ``plan.nodes`` (O(log n) rows)
and calls ``plan.assemble(rows)``. :func:`root_nodes` does the same for a root.

**Appending.** :class:`Frontier` is the compact range ``[0, size)``: the hashes of
``root_nodes(size)``, at most one per set bit of the size. Appending a leaf to it needs
nothing else, returns the new frontier and the perfect nodes that became complete (the
leaf itself plus ~1 more on average) to store, and gives the new root. :class:`MemoryTree`
keeps every perfect node in memory (32 bytes each, about 2 per leaf) and answers roots
and proofs for any size up to its own in O(log n); it serves tests, tools and caches.

**Verification.** :func:`verify_inclusion` and :func:`verify_consistency` run the
algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, after checking that every
integer is in range and that the path has exactly the length the sizes imply. Every
failure raises :class:`~postbox.crypto.errors.BadProof`; comparisons are constant time.

**From a database** (a sketch; the store owns the SQL): one table of perfect nodes keyed
by ``(level, index)`` with a 32-byte hash (level 0 may instead come from the leaf table).

- append, in the one writer's transaction that inserts the leaves::

      frontier = Frontier.load(size, await store.nodes(root_nodes(size)))   # <= 53 rows
      frontier, created = frontier.extend(leaf_hash(leaf) for leaf in new_leaves)
      await store.insert_nodes(created)            # about 2 rows per leaf
      root = frontier.root()                       # sign the new tree head over this

- prove, for any signed size n (its nodes are immutable, so no lock is needed)::

      plan = inclusion_plan(index, n)              # or consistency_plan(m, n)
      path = plan.assemble(await store.nodes(plan.nodes))   # <= 2 * 53 rows, one query

``store.nodes`` returns a ``dict[NodeId, bytes]``; a missing row raises ``KeyError``.

Sizes and indices are limited to 2**53 - 1 so that they survive JSON and JavaScript.
Proof *generation* with impossible arguments (index ≥ size, first > second, a size
beyond the stored tree) is a caller bug or a bad request and raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from postbox.crypto.encoding import MAX_SAFE_INTEGER
from postbox.crypto.errors import BadProof

HASH_BYTES: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
MAX_TREE_SIZE: Final = MAX_SAFE_INTEGER
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH({}) = HASH() (RFC 9162 §2.1.1). The log is never empty (leaf 0 is the server key)."""


# --- hashing -------------------------------------------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 ‖ data)``: the hash of one leaf."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``: the hash of an interior node.

    Lengths are not checked here (this is the hot loop); every public entry point checks
    the hashes it is given.
    """
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a right-edge range from the hashes of its perfect nodes, left to right.

    ``fold([a, b, c]) = node(a, node(b, c))``: for a range whose perfect decomposition is
    strictly decreasing in size (every range a plan or a frontier produces), this is
    exactly its RFC 9162 tree hash.
    """
    if not hashes:
        raise ValueError("fold of no hashes")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# --- node addressing -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """A perfect subtree: ``2**level`` leaves starting at leaf ``index << level``.

    ``NodeId(0, i)`` is the leaf hash of leaf ``i``. A database stores these as rows
    keyed by ``(level, index)``.
    """

    level: int
    index: int

    @property
    def begin(self) -> int:
        """First leaf covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf covered."""
        return (self.index + 1) << self.level

    def parent(self) -> NodeId:
        return NodeId(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeId:
        return NodeId(self.level, self.index ^ 1)

    def children(self) -> tuple[NodeId, NodeId]:
        if self.level == 0:
            raise ValueError("a leaf has no children")
        return NodeId(self.level - 1, self.index << 1), NodeId(
            self.level - 1, (self.index << 1) | 1
        )


class NodeReader(Protocol):
    """Anything that returns the hash of a stored perfect node (a dict, a MemoryTree)."""

    def __getitem__(self, node: NodeId, /) -> bytes: ...


def _check_count(n: object, what: str, minimum: int = 0) -> int:
    if type(n) is not int or not minimum <= n <= MAX_TREE_SIZE:
        raise ValueError(f"{what} must be an integer in [{minimum}, 2**53-1]")
    return n


def range_nodes(begin: int, end: int) -> tuple[NodeId, ...]:
    """The fewest perfect nodes covering leaves ``[begin, end)``, left to right."""
    _check_count(begin, "begin")
    _check_count(end, "end")
    if begin > end:
        raise ValueError("begin > end")
    nodes: list[NodeId] = []
    while begin < end:
        # The biggest block that is aligned at `begin` and still fits before `end`.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeId(level, begin >> level))
        begin += 1 << level
    return tuple(nodes)


def root_nodes(size: int) -> tuple[NodeId, ...]:
    """The perfect nodes whose fold is the root of the first ``size`` leaves.

    One node per set bit of ``size``, biggest first; also the frontier of that size.
    """
    return range_nodes(0, size)


def root_from_nodes(size: int, hashes: NodeReader) -> bytes:
    """The root of the first ``size`` leaves from stored perfect nodes."""
    nodes = root_nodes(size)
    if not nodes:
        return EMPTY_ROOT
    return fold([_fetch(hashes, node) for node in nodes])


def _fetch(hashes: NodeReader, node: NodeId) -> bytes:
    h = hashes[node]  # a missing node is a storage bug: KeyError propagates
    if not isinstance(h, bytes) or len(h) != HASH_BYTES:
        raise ValueError(f"stored hash of {node} is not {HASH_BYTES} bytes")
    return h


# --- proof plans ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which stored hashes a proof needs and how to combine them.

    ``elements[i]`` lists the perfect nodes (left to right) whose :func:`fold` is path
    element ``i``. All elements are single nodes except at most one, the incomplete
    subtree on the right edge of the tree.
    """

    elements: tuple[tuple[NodeId, ...], ...]

    @property
    def nodes(self) -> tuple[NodeId, ...]:
        """Every node to fetch, each once, in path order."""
        seen: dict[NodeId, None] = {}
        for element in self.elements:
            for node in element:
                seen[node] = None
        return tuple(seen)

    def assemble(self, hashes: NodeReader) -> list[bytes]:
        """The proof path from the fetched hashes (a mapping ``NodeId -> hash``)."""
        return [fold([_fetch(hashes, node) for node in element]) for element in self.elements]


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n ≤ 2k (n ≥ 2): the split point of RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def _plan(ranges: list[tuple[int, int]]) -> ProofPlan:
    # The loops below walk from the root down, i.e. they collect the path top-down.
    return ProofPlan(tuple(range_nodes(a, b) for a, b in reversed(ranges)))


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The plan of PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf-side element first.

    The recursion of the RFC, unrolled: at each subtree ``[begin, end)`` split at k, the
    path records the half the leaf is not in and descends into the other.
    """
    _check_count(size, "size", 1)
    _check_count(index, "index")
    if index >= size:
        raise ValueError("index must be smaller than size")
    ranges: list[tuple[int, int]] = []
    begin, end = 0, size
    while end - begin > 1:
        mid = begin + _largest_power_of_two_below(end - begin)
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((begin, mid))
            begin = mid
    return _plan(ranges)


def consistency_plan(first: int, second: int) -> ProofPlan:
    """The plan of PROOF(first, D[second]) (RFC 9162 §2.1.4.1); empty when first == second.

    SUBPROOF(m, D[n], b) unrolled: while m < n, split n at k; if m ≤ k record D[k:n] and
    descend left (keeping b), else record D[0:k] and descend right with m - k and b false.
    When m == n the subtree hash itself is recorded unless b is still true.
    """
    _check_count(second, "second", 1)
    _check_count(first, "first", 1)
    if first > second:
        raise ValueError("first must not exceed second")
    ranges: list[tuple[int, int]] = []
    begin, end, m, complete = 0, second, first, True
    while end - begin != m:
        mid = begin + _largest_power_of_two_below(end - begin)
        if m <= mid - begin:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((begin, mid))
            m -= mid - begin
            begin = mid
            complete = False
    if not complete:
        ranges.append((begin, end))
    return _plan(ranges)


# --- exact path lengths (used by the verifiers) ------------------------------------------------
def inclusion_proof_length(index: int, size: int) -> int:
    """The number of hashes in PATH(index, D[size]) (requires 0 ≤ index < size)."""
    inner = (index ^ (size - 1)).bit_length()  # levels below the point where the paths fork
    return inner + (index >> inner).bit_count()  # plus one per perfect node on the left


def consistency_proof_length(first: int, second: int) -> int:
    """The number of hashes in PROOF(first, D[second]) (requires 1 ≤ first ≤ second)."""
    if first == second:
        return 0
    shift = (first & -first).bit_length() - 1  # the biggest perfect subtree ending at first
    # Up from that subtree the proof is an inclusion path of leaf first-1 ...
    length = inclusion_proof_length(first - 1, second) - shift
    # ... plus the subtree's own hash, unless it is the whole first tree (the verifier has it).
    return length if first == 1 << shift else length + 1


# --- appending -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Frontier:
    """The compact range ``[0, size)``: the hashes of ``root_nodes(size)``, biggest first.

    This is all an appender needs: read these ≤ 53 rows, :meth:`extend` with the new leaf
    hashes, store the returned nodes and the new frontier's root is the new tree head.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_count(self.size, "size")
        if len(self.hashes) != self.size.bit_count():
            raise ValueError("a frontier has one hash per set bit of its size")
        for h in self.hashes:
            if not isinstance(h, bytes) or len(h) != HASH_BYTES:
                raise ValueError(f"frontier hashes must be {HASH_BYTES} bytes")

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, ())

    @classmethod
    def load(cls, size: int, hashes: NodeReader) -> Frontier:
        """The frontier of ``size`` from stored perfect nodes."""
        return cls(size, tuple(_fetch(hashes, node) for node in root_nodes(size)))

    @property
    def nodes(self) -> tuple[NodeId, ...]:
        return root_nodes(self.size)

    def root(self) -> bytes:
        return fold(self.hashes) if self.hashes else EMPTY_ROOT

    def extend(self, leaf_hashes: Iterable[bytes]) -> tuple[Frontier, list[tuple[NodeId, bytes]]]:
        """Append leaves (by their leaf hashes).

        Returns the new frontier and every perfect node completed on the way, leaves
        included, in creation order: the rows to store. Amortised two nodes per leaf.
        """
        stack = list(self.hashes)
        size = self.size
        created: list[tuple[NodeId, bytes]] = []
        for h in leaf_hashes:
            if not isinstance(h, bytes) or len(h) != HASH_BYTES:
                raise ValueError(f"leaf hashes must be {HASH_BYTES} bytes")
            if size >= MAX_TREE_SIZE:
                raise ValueError("tree is full")
            created.append((NodeId(0, size), h))
            level, index = 0, size
            while index & 1:  # the right-most frontier node is this node's left sibling
                h = node_hash(stack.pop(), h)
                level, index = level + 1, index >> 1
                created.append((NodeId(level, index), h))
            stack.append(h)
            size += 1
        return Frontier(size, tuple(stack)), created

    def append(self, leaf_hash_: bytes) -> tuple[Frontier, list[tuple[NodeId, bytes]]]:
        return self.extend((leaf_hash_,))


class MemoryTree:
    """An append-only tree holding every perfect node in memory.

    Level ``l`` is one ``bytearray`` of the concatenated hashes of nodes ``(l, 0)``,
    ``(l, 1)``, …: 32 bytes per node, about 64 bytes per leaf in all. Appending is
    amortised O(1); roots and proofs for any size up to :attr:`size` are O(log n).
    It is a :class:`NodeReader`, so plans can be assembled from it directly.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, node: NodeId, /) -> bytes:
        level, index = node.level, node.index
        if not 0 <= level < len(self._levels) or index < 0:
            raise KeyError(node)
        start = index * HASH_BYTES
        h = bytes(self._levels[level][start : start + HASH_BYTES])
        if len(h) != HASH_BYTES:
            raise KeyError(node)
        return h

    def append(self, data: bytes) -> int:
        """Append one leaf by its data; returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, h: bytes) -> int:
        """Append one leaf by its leaf hash; returns its index."""
        if not isinstance(h, bytes) or len(h) != HASH_BYTES:
            raise ValueError(f"leaf hashes must be {HASH_BYTES} bytes")
        if self._size >= MAX_TREE_SIZE:
            raise ValueError("tree is full")
        levels = self._levels
        index = self._size
        levels[0] += h
        level, i = 0, index
        while i & 1:
            left = levels[level][(i - 1) * HASH_BYTES : i * HASH_BYTES]
            h = node_hash(bytes(left), h)
            level, i = level + 1, i >> 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += h
        self._size = index + 1
        return index

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaves by their data."""
        for data in leaves:
            self.append(data)

    def extend_hashes(self, hashes: Iterable[bytes]) -> None:
        """Append many leaves by their leaf hashes."""
        for h in hashes:
            self.append_hash(h)

    def _size_arg(self, size: int | None, minimum: int) -> int:
        if size is None:
            size = self._size
        _check_count(size, "size", minimum)
        if size > self._size:
            raise ValueError("size exceeds the tree")
        return size

    def leaf_hash(self, index: int) -> bytes:
        if type(index) is not int or not 0 <= index < self._size:
            raise ValueError("no such leaf")
        return self[NodeId(0, index)]

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all)."""
        return root_from_nodes(self._size_arg(size, 0), self)

    def frontier(self, size: int | None = None) -> Frontier:
        return Frontier.load(self._size_arg(size, 0), self)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_plan(index, self._size_arg(size, 1)).assemble(self)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        return consistency_plan(first, self._size_arg(second, 1)).assemble(self)


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ----------------------------------------------
def _int(n: object, what: str, minimum: int) -> int:
    if type(n) is not int or not minimum <= n <= MAX_TREE_SIZE:
        raise BadProof(f"{what} out of range")
    return n


def _hash(h: object, what: str) -> bytes:
    if not isinstance(h, bytes) or len(h) != HASH_BYTES:
        raise BadProof(f"{what} is not a {HASH_BYTES}-byte hash")
    return h


def _path(path: Sequence[bytes], length: int) -> list[bytes]:
    if not isinstance(path, list | tuple) or len(path) != length:
        raise BadProof("proof has the wrong length")
    return [_hash(p, "proof element") for p in path]


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes:
    """The root that ``path`` proves leaf ``index`` (with this leaf hash) to be under.

    RFC 9162 §2.1.3.2 steps 1 to 4 and the ``sn == 0`` half of step 5. Raises BadProof.
    """
    size = _int(size, "size", 1)
    index = _int(index, "index", 0)
    if index >= size:  # step 1
        raise BadProof("index must be smaller than size")
    r = _hash(leaf_hash, "leaf hash")  # step 3
    proof = _path(path, inclusion_proof_length(index, size))
    fn, sn = index, size - 1  # step 2
    for p in proof:  # step 4
        if sn == 0:
            raise BadProof("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 5, first half
        raise BadProof("proof too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` of the tree of ``size`` with ``root`` has ``leaf_hash``."""
    root = _hash(root, "root")
    computed = root_from_inclusion(leaf_hash, index, size, path)
    if not hmac.compare_digest(computed, root):  # step 5, second half
        raise BadProof("inclusion proof does not match the root")


def verify_consistency(
    first: int, second: int, path: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Check that the tree of ``first`` leaves with ``first_root`` is a prefix of the tree
    of ``second`` leaves with ``second_root`` (RFC 9162 §2.1.4.2; 1 ≤ first ≤ second).

    ``first == second`` needs an empty path and equal roots.
    """
    second = _int(second, "second", 1)
    first = _int(first, "first", 1)
    if first > second:
        raise BadProof("first must not exceed second")
    first_root = _hash(first_root, "first root")
    second_root = _hash(second_root, "second root")
    proof = _path(path, consistency_proof_length(first, second))
    if first == second:
        if not hmac.compare_digest(first_root, second_root):
            raise BadProof("trees of equal size with different roots")
        return
    if first & (first - 1) == 0:  # step 2: first is an exact power of two
        proof.insert(0, first_root)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]  # step 5
    for c in proof[1:]:  # step 6
        if sn == 0:
            raise BadProof("proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # step 7; both comparisons always run
    ok_first = hmac.compare_digest(fr, first_root)
    ok_second = hmac.compare_digest(sr, second_root)
    if not (ok_first and ok_second and sn == 0):
        raise BadProof("consistency proof does not match the roots")
