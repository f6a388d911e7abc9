"""The client side of the key-transparency log (PROTOCOL.md §7): tree heads and proofs.

The client side is four modules, each pure functions over already-fetched responses (no I/O):

* this one, **tree heads**: signing, verifying and advancing the log's signed tree head, the
  inclusion and consistency responses, and the recipient's fork check :func:`compare_heads`;
* :mod:`postbox.crypto.logevents`, **events and chains**: the leaf format, per-subject hash
  chains and the check of ``GET /api/v1/keys/{subject}``;
* :mod:`postbox.crypto.keystate`, **replay**: a verified chain → the subject's key state
  (the replay rules are documented there);
* :mod:`postbox.crypto.monitor`, **monitoring**: the owner's self-check and the auditor.

**Tree heads.** ``sth = {"v","size","root","ts"}`` signed by the log key over
``"postbox/v1/sth" ‖ cj(sth)`` and served as ``{"sth","sig","log_key"}`` where ``log_key``
is the b64 log public key, which must equal the *pinned* one. :func:`verify_tree_head`
checks the signature and the age (not older than 24 h, not more than 5 min in the future,
relative to a caller-given ``now``); :func:`advance` moves the stored head forward
(smaller or older → :class:`StaleTreeHead`; same size, other root → :class:`ForkDetected`;
bigger → an RFC 9162 consistency proof, whose failure is a :class:`ForkDetected`).
:func:`compare_heads` is the recipient's fork check of a message's ``sth``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, TypedDict, cast

from postbox.crypto import domain, shapes
from postbox.crypto.encoding import KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj, parse_canonical
from postbox.crypto.errors import (
    BadProof,
    ForkDetected,
    KeyIdMismatch,
    MalformedObject,
    StaleTreeHead,
)
from postbox.crypto.primitives import check_sign_pk, equal, sign, sign_keypair, verify
from postbox.keys import merkle

HASH_BYTES: Final = merkle.HASH_BYTES
#: clients reject tree heads older than this (PROTOCOL.md §7)
MAX_STH_AGE_MS: Final = 24 * 3600 * 1000
#: ... and heads dated further than this in the future (the ±5 min of message ``created``)
MAX_CLOCK_SKEW_MS: Final = 5 * 60 * 1000
#: a proof path is at most one hash per tree level
MAX_PATH: Final = 64

ForkCheck = Literal["consistent", "need_proof", "advance"]


class TreeHead(TypedDict):
    v: int
    size: int
    root: str
    ts: int


class ServedTreeHead(TypedDict):
    sth: TreeHead
    sig: str
    log_key: str


# --- shapes ------------------------------------------------------------------------------
V1 = shapes.const(1)
SIG = shapes.b64(SIGNATURE_BYTES)
HASH = shapes.b64(HASH_BYTES)
TREE_HEAD_SHAPE = shapes.obj({"v": V1, "size": shapes.integer(1), "root": HASH, "ts": shapes.TIME})
SERVED_TREE_HEAD_SHAPE = shapes.obj(
    {"sth": TREE_HEAD_SHAPE, "sig": SIG, "log_key": shapes.b64(KEY_BYTES)}
)
PATH_SHAPE = shapes.array(HASH, MAX_PATH)
CONSISTENCY_RESPONSE_SHAPE = shapes.obj(
    {"first": shapes.integer(1), "second": shapes.integer(1), "path": PATH_SHAPE}
)
INCLUSION_RESPONSE_SHAPE = shapes.obj(
    {
        "index": shapes.COUNT,
        "size": shapes.integer(1),
        "leaf": shapes.b64(None),
        "path": PATH_SHAPE,
    }
)


def wire(value: Any) -> Any:
    """A response as given: parsed (canonical JSON only) if bytes, else as is."""
    if isinstance(value, bytes | bytearray | memoryview):
        return parse_canonical(bytes(value))
    return value


def check_hash(value: bytes, what: str) -> bytes:
    """``value`` if it is a ``HASH_BYTES`` hash, else :class:`MalformedObject`."""
    if not isinstance(value, bytes) or len(value) != HASH_BYTES:
        raise MalformedObject(f"{what} must be {HASH_BYTES} bytes")
    return value


def decode_path(path: Any) -> list[bytes]:
    """A proof path from its wire form (a list of b64 hashes)."""
    shapes.check(PATH_SHAPE, path, "path")
    return [b64d(p, HASH_BYTES) for p in path]


# --- tree heads --------------------------------------------------------------------------
def make_tree_head(*, size: int, root: bytes, ts: int) -> TreeHead:
    sth: TreeHead = {"v": 1, "size": size, "root": b64e(check_hash(root, "root")), "ts": ts}
    shapes.check(TREE_HEAD_SHAPE, sth, "sth")
    return sth


def sign_tree_head(sth: TreeHead, log_seed: bytes) -> ServedTreeHead:
    """The log's side: the served form ``{"sth","sig","log_key"}``."""
    shapes.check(TREE_HEAD_SHAPE, sth, "sth")
    pk, _ = sign_keypair(log_seed)
    return {"sth": sth, "sig": b64e(sign(log_seed, domain.STH + cj(sth))), "log_key": b64e(pk)}


def verify_head_sig(sth: TreeHead, sig: str, log_pk: bytes) -> None:
    """The log's signature over ``sth`` (no freshness check). Raises :class:`BadSignature`."""
    check_sign_pk(log_pk)
    verify(log_pk, domain.STH + cj(sth), b64d(sig, SIGNATURE_BYTES))


def check_fresh(sth: TreeHead, *, now: int, max_age_ms: int = MAX_STH_AGE_MS) -> None:
    """Reject a head older than ``max_age_ms`` or dated more than 5 min after ``now``."""
    if sth["ts"] < now - max_age_ms:
        raise StaleTreeHead("tree head is older than 24 hours")
    if sth["ts"] > now + MAX_CLOCK_SKEW_MS:
        raise StaleTreeHead("tree head is dated in the future")


def verify_tree_head(
    served: Any, log_pk: bytes, *, now: int, max_age_ms: int = MAX_STH_AGE_MS
) -> TreeHead:
    """Verify ``GET /api/v1/transparency/sth`` under the pinned log key and check its age.

    A ``log_key`` other than the pinned key raises :class:`KeyIdMismatch` (the response
    names another key), a bad signature :class:`BadSignature`.
    """
    s = wire(served)
    shapes.check(SERVED_TREE_HEAD_SHAPE, s, "served tree head")
    st = cast(ServedTreeHead, s)
    if not equal(b64d(st["log_key"], KEY_BYTES), log_pk):
        raise KeyIdMismatch("tree head from another log key than the pinned one")
    verify_head_sig(st["sth"], st["sig"], log_pk)
    check_fresh(st["sth"], now=now, max_age_ms=max_age_ms)
    return st["sth"]


def advance(last: TreeHead | None, new: TreeHead, proof: Sequence[bytes] | None = None) -> TreeHead:
    """The head to store after verifying ``new`` (already signature- and age-checked).

    ``proof`` is the consistency proof from ``last.size`` to ``new.size``, needed when the
    tree grew. Smaller or older than ``last`` → :class:`StaleTreeHead`; same size with
    another root, or a consistency proof that fails → :class:`ForkDetected`.
    """
    shapes.check(TREE_HEAD_SHAPE, new, "sth")
    if last is None:
        return new
    shapes.check(TREE_HEAD_SHAPE, last, "last sth")
    if new["size"] < last["size"]:
        raise StaleTreeHead("tree head smaller than the last one stored")
    new_root, last_root = b64d(new["root"], HASH_BYTES), b64d(last["root"], HASH_BYTES)
    if new["size"] == last["size"] and not equal(new_root, last_root):
        raise ForkDetected("two tree heads of the same size with different roots")
    if new["ts"] < last["ts"]:
        raise StaleTreeHead("tree head older than the last one stored")
    if new["size"] > last["size"]:
        if proof is None:
            raise BadProof("a consistency proof is needed to advance the tree head")
        try:
            merkle.verify_consistency(last["size"], new["size"], proof, last_root, new_root)
        except BadProof as exc:
            raise ForkDetected("new tree head is not an extension of the stored one") from exc
    return new


def verify_sth(
    served: Any,
    log_pk: bytes,
    *,
    now: int,
    last: TreeHead | None = None,
    proof: Sequence[bytes] | None = None,
    max_age_ms: int = MAX_STH_AGE_MS,
) -> TreeHead:
    """:func:`verify_tree_head` then :func:`advance`: the new head to store."""
    return advance(last, verify_tree_head(served, log_pk, now=now, max_age_ms=max_age_ms), proof)


def consistency_path(response: Any, first: int, second: int) -> list[bytes]:
    """The path of ``…/consistency?first=&second=`` after checking it answers that question."""
    r = wire(response)
    shapes.check(CONSISTENCY_RESPONSE_SHAPE, r, "consistency response")
    if r["first"] != first or r["second"] != second:
        raise BadProof("consistency proof for other tree sizes")
    return decode_path(r["path"])


def verify_inclusion_response(response: Any, sth: TreeHead) -> bytes:
    """Check ``…/inclusion?index=&size=`` against a verified head; return the leaf bytes."""
    r = wire(response)
    shapes.check(INCLUSION_RESPONSE_SHAPE, r, "inclusion response")
    if r["size"] != sth["size"]:
        raise BadProof("inclusion proof for another tree size")
    leaf = b64d(r["leaf"])
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf), r["index"], r["size"], decode_path(r["path"]),
        b64d(sth["root"], HASH_BYTES),
    )  # fmt: skip
    return leaf


def compare_heads(
    message_sth: Mapping[str, Any], own: TreeHead, proof: Sequence[bytes] | None = None
) -> ForkCheck:
    """The recipient's fork check of a message's ``sth`` (n, root) against its own verified
    head (m, root_m), PROTOCOL.md §7.

    * n > m: returns ``"advance"`` — first advance to a verified head of size ≥ n, then
      call again;
    * n = m: equal roots → ``"consistent"``, else :class:`ForkDetected`;
    * n < m: without ``proof`` returns ``"need_proof"`` (fetch ``consistency?first=n&second=m``),
      with it ``"consistent"`` or :class:`ForkDetected`.
    """
    ref = {"size": message_sth.get("size"), "root": message_sth.get("root")}
    shapes.check(shapes.obj({"size": shapes.integer(1), "root": HASH}), ref, "message sth")
    shapes.check(TREE_HEAD_SHAPE, own, "own sth")
    n, m = cast(int, ref["size"]), own["size"]
    root_n, root_m = b64d(ref["root"], HASH_BYTES), b64d(own["root"], HASH_BYTES)
    if n > m:
        return "advance"
    if n == m:
        if not equal(root_n, root_m):
            raise ForkDetected("the sender saw another tree of the same size")
        return "consistent"
    if proof is None:
        return "need_proof"
    try:
        merkle.verify_consistency(n, m, proof, root_n, root_m)
    except BadProof as exc:
        raise ForkDetected("the sender's tree head is not a prefix of ours") from exc
    return "consistent"
