"""The key bundle (PROTOCOL.md §4): passphrase → Argon2id → kek + auth key, and the
encrypted ``private_keys`` object the server keeps for the user.

Derivation::

    out  = argon2id(UTF-8(NFKC(passphrase)), salt(16), ops, mem (bytes), 64)
    kek  = out[0:32]                    # wraps private_keys
    auth = Ed25519 from seed out[32:64] # its public half is all the server stores

Clients refuse ``ops`` outside [2, 10] and ``mem`` outside [64 MiB, 1 GiB]
(:class:`UnsupportedParameters`); the defaults are ops 3, mem 64 MiB.

Bundle::

    {"v":1,"kind":"pass"|"recovery","gen":n,"salt":b64|null,"ops":int|null,"mem":int|null,
     "nonce":b64,"ct":b64}
    ct  = XChaCha20-Poly1305(kek, nonce, cj(private_keys), aad)
    aad = "postbox/v1/bundle" ‖ 0x00 ‖ kind ‖ 0x00 ‖ u32(gen) ‖ account (16 raw bytes)

``salt``/``ops``/``mem`` are set for ``pass`` and ``null`` for ``recovery`` (its kek comes
from the recovery key, see :mod:`postbox.crypto.recovery`). ``private_keys.gen`` always
equals ``bundle.gen``.

Generations (a decision PROTOCOL.md leaves open; docs/protocol.md repeats it):

* ``gen`` counts the writes of *one stored bundle*: the pass bundle and the recovery bundle
  have independent counters, because the server stores them separately with
  compare-and-swap on ``gen``, and the recovery kek is only available while the user holds
  the recovery key. Every write of a bundle uses ``gen = stored gen + 1`` (first write:
  :data:`FIRST_GEN`); ``private_keys.gen`` is set to the same value, so the counter is
  bound twice (AAD and plaintext).
* Rollback protection is per kind: a client remembers the highest ``gen`` it has seen for
  each kind and passes it as ``min_gen`` (:class:`StaleGeneration`). Comparing a pass gen
  with a recovery gen means nothing.
* Weakness: the pass bundle changes whenever keys change (new encryption key, team key,
  tree head), but the recovery bundle can only be rewritten by someone holding the
  recovery key. A recovery bundle therefore goes stale after a key rotation; recovering
  from it restores the identity seed (which certifies new keys) but not encryption or team
  keys created later, and it brings back an older ``log``/``chain``. Clients should, after
  any key change, ask the user to enter the recovery key once (to reseal the recovery
  bundle at its gen + 1) or to create a new one. A fresh browser has no remembered
  ``min_gen``, so a rollback to an older bundle of the same kind is only detected by
  clients that kept state.
* After a recovery, the new pass bundle is written at the *server's* pass gen + 1 (pass
  ``gen=`` to :func:`rewrap_bundle`), not at the recovery bundle's gen + 1.

Sealing under a new passphrase (:func:`seal_pass_bundle`, :func:`rewrap_bundle`) first
applies the passphrase rules of :mod:`postbox.crypto.passphrase` unless told not to.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, cast, get_args

import nacl.exceptions
import nacl.pwhash

from postbox.crypto import domain, shapes
from postbox.crypto.encoding import (
    ID_BYTES,
    KEY_BYTES,
    NONCE_BYTES,
    SALT_BYTES,
    b64d,
    b64e,
    cj,
    parse_canonical,
    u32,
)
from postbox.crypto.errors import (
    EncodingError,
    KeyIdMismatch,
    MalformedObject,
    StaleGeneration,
    UnsupportedParameters,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.passphrase import check_new_passphrase
from postbox.crypto.primitives import (
    SEED_BYTES,
    aead_decrypt,
    aead_encrypt,
    box_keypair,
    random_bytes,
    sign_keypair,
)

# --- parameters --------------------------------------------------------------------------
MIB: Final = 1024 * 1024
DEFAULT_OPS: Final = 3
DEFAULT_MEM: Final = 64 * MIB
MIN_OPS: Final = 2
MAX_OPS: Final = 10
MIN_MEM: Final = 64 * MIB
MAX_MEM: Final = 1024 * MIB
DERIVED_BYTES: Final = 64  # kek ‖ auth seed
AEAD_TAG_BYTES: Final = 16

Kind = Literal["pass", "recovery"]
KINDS: Final = get_args(Kind)
FIRST_GEN: Final = 1
MAX_GEN: Final = 2**32 - 1  # gen enters the AAD as u32
MAX_KEYS: Final = 4096  # per list inside private_keys


@dataclass(frozen=True)
class DerivedKeys:
    """What a passphrase (or a recovery key) yields: the kek and the login auth key."""

    kek: bytes = field(repr=False)
    auth_seed: bytes = field(repr=False)
    auth_pk: bytes


class PrivateKeys(TypedDict):
    v: int
    gen: int
    identity: list[dict[str, Any]]
    encrypt: list[dict[str, Any]]
    teams: list[dict[str, Any]]
    log: dict[str, Any] | None
    chain: dict[str, Any] | None


class Bundle(TypedDict):
    v: int
    kind: Kind
    gen: int
    salt: str | None
    ops: int | None
    mem: int | None
    nonce: str
    ct: str


# --- shapes ------------------------------------------------------------------------------
_KEY32 = shapes.b64(KEY_BYTES)
_GEN = shapes.integer(0, MAX_GEN)

IDENTITY_ENTRY_SHAPE = shapes.obj({"kid": shapes.KID, "seed": shapes.b64(SEED_BYTES)})
ENCRYPT_ENTRY_SHAPE = shapes.obj(
    {"kid": shapes.KID, "sk": _KEY32, "retired": shapes.nullable(shapes.TIME)}
)
TEAM_ENTRY_SHAPE = shapes.obj({"team": shapes.ID, "kid": shapes.KID, "sk": _KEY32})
LOG_SHAPE = shapes.obj({"size": shapes.COUNT, "root": _KEY32, "ts": shapes.TIME})
CHAIN_SHAPE = shapes.obj({"seq": shapes.COUNT, "hash": _KEY32})
PRIVATE_KEYS_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "gen": _GEN,
        "identity": shapes.array(IDENTITY_ENTRY_SHAPE, MAX_KEYS),
        "encrypt": shapes.array(ENCRYPT_ENTRY_SHAPE, MAX_KEYS),
        "teams": shapes.array(TEAM_ENTRY_SHAPE, MAX_KEYS),
        "log": shapes.nullable(LOG_SHAPE),
        "chain": shapes.nullable(CHAIN_SHAPE),
    }
)
BUNDLE_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "kind": shapes.enum(*KINDS),
        "gen": _GEN,
        "salt": shapes.nullable(shapes.b64(SALT_BYTES)),
        "ops": shapes.nullable(shapes.integer()),
        "mem": shapes.nullable(shapes.integer()),
        "nonce": shapes.b64(NONCE_BYTES),
        "ct": shapes.b64(None),
    }
)


# --- derivation --------------------------------------------------------------------------
def check_params(ops: object, mem: object) -> None:
    """Refuse Argon2id parameters outside 2 ≤ ops ≤ 10, 64 MiB ≤ mem ≤ 1 GiB."""
    for value in (ops, mem):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnsupportedParameters("ops and mem must be integers")
    if not MIN_OPS <= cast(int, ops) <= MAX_OPS:
        raise UnsupportedParameters(f"ops must be in [{MIN_OPS}, {MAX_OPS}]")
    if not MIN_MEM <= cast(int, mem) <= MAX_MEM:
        raise UnsupportedParameters(f"mem must be in [{MIN_MEM}, {MAX_MEM}] bytes")


def normalize_passphrase(passphrase: str) -> bytes:
    """UTF-8 of NFKC(passphrase): the Argon2id input. Lone surrogates → EncodingError."""
    if not isinstance(passphrase, str):
        raise TypeError("passphrase must be a str")
    try:
        return unicodedata.normalize("NFKC", passphrase).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodingError("passphrase contains a lone surrogate") from exc


def keys_from_output(out: bytes) -> DerivedKeys:
    """Split 64 derived bytes into kek (0:32) and the auth key seeded by 32:64."""
    if len(out) != DERIVED_BYTES:
        raise ValueError("derived output must be 64 bytes")
    seed = out[KEY_BYTES:]
    pk, _ = sign_keypair(seed)
    return DerivedKeys(kek=out[:KEY_BYTES], auth_seed=seed, auth_pk=pk)


def derive_pass_keys(
    passphrase: str, salt: bytes, ops: int = DEFAULT_OPS, mem: int = DEFAULT_MEM
) -> DerivedKeys:
    """Argon2id(NFKC(passphrase), salt, ops, mem, 64) → kek and auth key.

    Parameters are checked first (:class:`UnsupportedParameters`), the salt must be 16
    bytes (:class:`EncodingError`). Slow by design: ~0.1 s at the defaults.
    """
    check_params(ops, mem)
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise EncodingError("salt must be 16 bytes")
    data = normalize_passphrase(passphrase)
    try:
        out = nacl.pwhash.argon2id.kdf(DERIVED_BYTES, data, salt, opslimit=ops, memlimit=mem)
    except nacl.exceptions.CryptoError as exc:  # pragma: no cover - out of memory
        raise UnsupportedParameters("Argon2id failed with these parameters") from exc
    return keys_from_output(bytes(out))


# --- private_keys ------------------------------------------------------------------------
@dataclass(frozen=True)
class SignKey:
    kid: str
    pk: bytes
    seed: bytes = field(repr=False)


@dataclass(frozen=True)
class BoxKey:
    kid: str
    pk: bytes
    sk: bytes = field(repr=False)
    retired: int | None = None


@dataclass(frozen=True)
class TeamKey:
    team: str
    kid: str
    pk: bytes
    sk: bytes = field(repr=False)


def build_private_keys(
    *,
    gen: int,
    identity: Sequence[bytes],
    encrypt: Sequence[tuple[bytes, int | None]],
    teams: Sequence[tuple[str, bytes]] = (),
    log: Mapping[str, Any] | None = None,
    chain: Mapping[str, Any] | None = None,
) -> PrivateKeys:
    """Build a checked ``private_keys`` object; kids are derived from the keys.

    ``identity`` are Ed25519 seeds and ``encrypt`` (X25519 sk, retired ms or None) pairs,
    oldest first (the last identity is the current one; exactly one encryption key has
    ``retired`` None). ``teams`` are (team id, X25519 sk) pairs; ``log`` is
    ``{"size","root","ts"}`` and ``chain`` ``{"seq","hash"}``.
    """
    value: PrivateKeys = {
        "v": 1,
        "gen": gen,
        "identity": [
            {"kid": derive_kid("sign", sign_keypair(seed)[0]), "seed": b64e(seed)}
            for seed in identity
        ],
        "encrypt": [
            {"kid": derive_kid("encrypt", box_keypair(sk)[0]), "sk": b64e(sk), "retired": r}
            for sk, r in encrypt
        ],
        "teams": [
            {"team": team, "kid": derive_kid("encrypt", box_keypair(sk)[0]), "sk": b64e(sk)}
            for team, sk in teams
        ],
        "log": dict(log) if log is not None else None,
        "chain": dict(chain) if chain is not None else None,
    }
    return check_private_keys(value)


def check_private_keys(value: Any) -> PrivateKeys:
    """Validate the closed shape and recompute every kid from its key.

    :class:`MalformedObject` for a shape error, no identity key, not exactly one current
    encryption key or a duplicate kid; :class:`KeyIdMismatch` when a kid is not derived
    from the public key recomputed from its seed / secret key.
    """
    shapes.check(PRIVATE_KEYS_SHAPE, value, "private_keys")
    pks = cast(PrivateKeys, value)
    if not pks["identity"]:
        raise MalformedObject("private_keys.identity: no identity key")
    if sum(1 for e in pks["encrypt"] if e["retired"] is None) != 1:
        raise MalformedObject("private_keys.encrypt: need exactly one current key")
    for what, entries, use, secret in (
        ("identity", pks["identity"], "sign", "seed"),
        ("encrypt", pks["encrypt"], "encrypt", "sk"),
        ("teams", pks["teams"], "encrypt", "sk"),
    ):
        kids: set[str] = set()
        for i, entry in enumerate(entries):
            raw = b64d(entry[secret], KEY_BYTES)
            pk = sign_keypair(raw)[0] if use == "sign" else box_keypair(raw)[0]
            if derive_kid("sign" if use == "sign" else "encrypt", pk) != entry["kid"]:
                raise KeyIdMismatch(f"private_keys.{what}[{i}]: kid is not derived from the key")
            key = entry["kid"] if what != "teams" else entry["team"] + "/" + entry["kid"]
            if key in kids:
                raise MalformedObject(f"private_keys.{what}[{i}]: duplicate kid")
            kids.add(key)
    return pks


def with_gen(private_keys: PrivateKeys, gen: int) -> PrivateKeys:
    """A copy of ``private_keys`` with ``gen`` replaced (before sealing at a new gen)."""
    copy = cast(PrivateKeys, dict(private_keys))
    copy["gen"] = gen
    return copy


def identity_keys(private_keys: PrivateKeys) -> list[SignKey]:
    """Identity keys, oldest first; the last is the current one."""
    out = []
    for e in private_keys["identity"]:
        seed = b64d(e["seed"], SEED_BYTES)
        out.append(SignKey(kid=e["kid"], pk=sign_keypair(seed)[0], seed=seed))
    return out


def encryption_keys(private_keys: PrivateKeys) -> list[BoxKey]:
    """Own encryption keys, oldest first, with their retirement time (None = current)."""
    out = []
    for e in private_keys["encrypt"]:
        pk, sk = box_keypair(b64d(e["sk"], KEY_BYTES))
        out.append(BoxKey(kid=e["kid"], pk=pk, sk=sk, retired=e["retired"]))
    return out


def team_keys(private_keys: PrivateKeys) -> list[TeamKey]:
    out = []
    for e in private_keys["teams"]:
        pk, sk = box_keypair(b64d(e["sk"], KEY_BYTES))
        out.append(TeamKey(team=e["team"], kid=e["kid"], pk=pk, sk=sk))
    return out


def current_identity(private_keys: PrivateKeys) -> SignKey:
    return identity_keys(private_keys)[-1]


def current_encryption(private_keys: PrivateKeys) -> BoxKey:
    return next(k for k in encryption_keys(private_keys) if k.retired is None)


# --- bundle seal / open ------------------------------------------------------------------
def bundle_aad(kind: str, gen: int, account: str) -> bytes:
    """``"postbox/v1/bundle" ‖ 0x00 ‖ kind ‖ 0x00 ‖ u32(gen) ‖ account`` (raw 16 bytes)."""
    if kind not in KINDS:
        raise MalformedObject("bundle.kind: expected pass or recovery")
    return (
        domain.BUNDLE
        + b"\x00"
        + kind.encode("ascii")
        + b"\x00"
        + u32(gen)
        + b64d(account, ID_BYTES)
    )


def check_bundle(bundle: Any) -> Bundle:
    """Shape of a bundle, nulls matching its kind, Argon2id parameters in range."""
    shapes.check(BUNDLE_SHAPE, bundle, "bundle")
    b = cast(Bundle, bundle)
    params = (b["salt"], b["ops"], b["mem"])
    if b["kind"] == "pass":
        if any(p is None for p in params):
            raise MalformedObject("bundle: a pass bundle needs salt, ops and mem")
        check_params(b["ops"], b["mem"])
    elif any(p is not None for p in params):
        raise MalformedObject("bundle: a recovery bundle has null salt, ops and mem")
    return b


def seal_bundle(
    private_keys: PrivateKeys,
    key: bytes,
    account: str,
    *,
    kind: Kind,
    salt: bytes | None = None,
    ops: int | None = None,
    mem: int | None = None,
    nonce: bytes | None = None,
) -> Bundle:
    """Encrypt ``private_keys`` under ``key`` (kek) at ``gen = private_keys["gen"]``.

    For ``kind="pass"`` give the ``salt``, ``ops`` and ``mem`` the kek was derived with;
    for ``"recovery"`` leave them None. ``nonce`` (24 bytes) defaults to fresh randomness.
    """
    check_private_keys(private_keys)
    gen = private_keys["gen"]
    bundle: Bundle = {
        "v": 1,
        "kind": kind,
        "gen": gen,
        "salt": b64e(salt) if salt is not None else None,
        "ops": ops,
        "mem": mem,
        "nonce": b64e(nonce if nonce is not None else random_bytes(NONCE_BYTES)),
        "ct": "",
    }
    n = b64d(bundle["nonce"], NONCE_BYTES)
    ct = aead_encrypt(key, n, cj(private_keys), bundle_aad(kind, gen, account))
    bundle["ct"] = b64e(ct)
    return check_bundle(bundle)


def open_bundle(
    bundle: Any, key: bytes, account: str, *, min_gen: int | None = None
) -> PrivateKeys:
    """Decrypt and check a bundle; return its ``private_keys``.

    Order: shape and parameters (:class:`MalformedObject`, :class:`UnsupportedParameters`),
    ``gen < min_gen`` (:class:`StaleGeneration`), AEAD (:class:`DecryptionFailed`: wrong
    key, account, kind or gen), canonical plaintext (:class:`NonCanonical`), the
    ``private_keys`` shape and kids (:class:`MalformedObject`, :class:`KeyIdMismatch`),
    ``private_keys.gen == bundle.gen`` (:class:`MalformedObject`).
    """
    b = check_bundle(bundle)
    if min_gen is not None and b["gen"] < min_gen:
        raise StaleGeneration(f"bundle gen {b['gen']} is older than {min_gen}")
    nonce = b64d(b["nonce"], NONCE_BYTES)
    plaintext = aead_decrypt(key, nonce, b64d(b["ct"]), bundle_aad(b["kind"], b["gen"], account))
    pks = check_private_keys(parse_canonical(plaintext))
    if pks["gen"] != b["gen"]:
        raise MalformedObject("private_keys.gen differs from bundle.gen")
    return pks


def seal_pass_bundle(
    private_keys: PrivateKeys,
    passphrase: str,
    account: str,
    *,
    salt: bytes | None = None,
    nonce: bytes | None = None,
    ops: int = DEFAULT_OPS,
    mem: int = DEFAULT_MEM,
    check_passphrase: bool = True,
) -> tuple[Bundle, DerivedKeys]:
    """Derive from a (new) passphrase with a fresh salt and seal a pass bundle.

    Returns the bundle and the derived keys (``auth_pk`` goes to the server). With
    ``check_passphrase`` the passphrase must pass :func:`check_new_passphrase`.
    """
    if check_passphrase:
        check_new_passphrase(passphrase)
    salt = salt if salt is not None else random_bytes(SALT_BYTES)
    keys = derive_pass_keys(passphrase, salt, ops, mem)
    bundle = seal_bundle(
        private_keys, keys.kek, account, kind="pass", salt=salt, ops=ops, mem=mem, nonce=nonce
    )
    return bundle, keys


def pass_keys_for(bundle: Any, passphrase: str) -> DerivedKeys:
    """Derive the keys for a pass bundle from its own salt and parameters (checked first)."""
    b = check_bundle(bundle)
    if b["kind"] != "pass":
        raise MalformedObject("bundle.kind: expected pass")
    salt, ops, mem = cast(tuple[str, int, int], (b["salt"], b["ops"], b["mem"]))
    return derive_pass_keys(passphrase, b64d(salt, SALT_BYTES), ops, mem)


def open_pass_bundle(
    bundle: Any, passphrase: str, account: str, *, min_gen: int | None = None
) -> tuple[PrivateKeys, DerivedKeys]:
    """:func:`pass_keys_for` then :func:`open_bundle`; returns the keys too.

    At login the client has already derived the keys from the challenge's salt and
    parameters; it then calls :func:`open_bundle` with that kek directly instead (a bundle
    whose salt differs from the challenge's simply fails to open). Parameters come from the
    server: within the accepted range it can still make a client spend up to 1 GiB and ten
    passes, which low-memory browsers may not survive.
    """
    b = check_bundle(bundle)
    if min_gen is not None and b["gen"] < min_gen:
        raise StaleGeneration(f"bundle gen {b['gen']} is older than {min_gen}")
    keys = pass_keys_for(b, passphrase)
    return open_bundle(b, keys.kek, account, min_gen=min_gen), keys


def rewrap_bundle(
    bundle: Any,
    key: bytes,
    account: str,
    new_passphrase: str,
    *,
    gen: int | None = None,
    min_gen: int | None = None,
    salt: bytes | None = None,
    nonce: bytes | None = None,
    ops: int = DEFAULT_OPS,
    mem: int = DEFAULT_MEM,
    check_passphrase: bool = True,
) -> tuple[Bundle, PrivateKeys, DerivedKeys]:
    """Open ``bundle`` with ``key`` and seal its keys as a pass bundle for a new passphrase.

    Used for a passphrase change (old pass bundle and kek), for re-keying at login to the
    current defaults (same passphrase, ``check_passphrase=False``), and after a recovery
    (recovery bundle and recovery kek; then give ``gen`` = the server's pass gen + 1).
    The new bundle gets a fresh salt, the given (default) parameters and
    ``gen`` (default: ``bundle.gen + 1``); ``private_keys.gen`` is updated to match.
    Returns (new bundle, its private_keys, new derived keys).
    """
    if check_passphrase:
        check_new_passphrase(new_passphrase)
    old = open_bundle(bundle, key, account, min_gen=min_gen)
    new_gen = old["gen"] + 1 if gen is None else gen
    if old["gen"] >= new_gen and cast(Bundle, bundle)["kind"] == "pass":
        raise ValueError("the new gen must be higher than the old pass bundle's")
    if not 0 <= new_gen <= MAX_GEN:
        raise ValueError("gen out of range")
    pks = with_gen(old, new_gen)
    new_bundle, keys = seal_pass_bundle(
        pks,
        new_passphrase,
        account,
        salt=salt,
        nonce=nonce,
        ops=ops,
        mem=mem,
        check_passphrase=False,
    )
    return new_bundle, pks, keys


def needs_rekey(bundle: Any) -> bool:
    """True when a pass bundle's parameters differ from the current defaults."""
    b = check_bundle(bundle)
    return b["kind"] == "pass" and (b["ops"], b["mem"]) != (DEFAULT_OPS, DEFAULT_MEM)
