"""The message envelope (PROTOCOL.md §5): seal, server-side checks, and open.

A message is one AEAD ciphertext under a fresh 32-byte message key ``mk``, whose AAD is
the canonical header the server may see; ``mk`` is sealed to each recipient mailbox's
current encryption key and to the sender's own mailbox, and the sender's identity key
signs ``H("postbox/v1/message" ‖ u32(len(cj(header))) ‖ cj(header) ‖ nonce ‖ ct, 64)``.
The header carries a key commitment ``H(key=mk, "postbox/v1/commit")`` so that one
ciphertext cannot open to two plaintexts under two keys.

:func:`open_message` runs every recipient check of §5 in the order the protocol lists
them and returns plaintext only when all of them passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NotRequired, Required, TypedDict, Unpack, cast, get_args

from postbox.crypto import domain, shapes
from postbox.crypto.attachment import MAX_FILE_NAME_BYTES, blob_length, check_file_name
from postbox.crypto.certs import Cert, Revocation, SignedCert, cert_pk, check_valid_at
from postbox.crypto.certs import verify_rotation as _verify_rotation
from postbox.crypto.encoding import (
    DIGEST_BYTES,
    KEY_BYTES,
    NONCE_BYTES,
    SEALED_KEY_BYTES,
    SIGNATURE_BYTES,
    b64d,
    b64e,
    cj,
    parse_canonical,
    u32,
)
from postbox.crypto.errors import (
    CertificateInvalid,
    CryptoError,
    IdentityChanged,
    InvalidKey,
    KeyCommitmentMismatch,
    KeySubstitution,
    MalformedEnvelope,
    MalformedObject,
    NotARecipient,
)
from postbox.crypto.kid import derive_kid
from postbox.crypto.padding import MAX_CONTENT, MAX_FILE, pad, padded_length, unpad
from postbox.crypto.primitives import (
    H,
    aead_decrypt,
    aead_encrypt,
    box_keypair,
    equal,
    random_bytes,
    seal,
    seal_open,
    sign,
    sign_keypair,
    verify,
)

Kind = Literal["message", "application", "info_request", "decision", "withdrawal", "fitconnect"]
KINDS: Final = get_args(Kind)
MAX_RECIPIENTS: Final = 100
MAX_ATTACHMENTS: Final = 100
MAX_SUBJECT_BYTES: Final = 1000
MAX_TYPE_BYTES: Final = 255

AEAD_TAG_BYTES: Final = 16
#: ciphertext of the largest padded content
MAX_CT_BYTES: Final = padded_length(MAX_CONTENT) + AEAD_TAG_BYTES

# "from" is a Python keyword, hence the functional TypedDict syntax.
Header = TypedDict(
    "Header",
    {
        "v": int,
        "id": str,
        "kind": Kind,
        "from": str,
        "signer": str,
        "sender_kid": str,
        "to": list[str],
        "rcpt": list[dict[str, str]],
        "thread": str | None,
        "case": str | None,
        "created": int,
        "blobs": list[dict[str, Any]],
        "commit": str,
    },
)


class Wire(TypedDict):
    header: Header
    nonce: str
    ct: str
    keys: list[dict[str, str]]
    signature: str


class TreeHead(TypedDict):
    size: int
    root: str


class Content(TypedDict):
    subject: str
    body: str
    format: Literal["text"]
    form: dict[str, Any] | None
    attachments: list[dict[str, Any]]
    in_reply_to: str | None
    sth: TreeHead


# --- shapes --------------------------------------------------------------------------------
_BLOB_SHAPE = shapes.obj(
    {"id": shapes.ID, "size": shapes.integer(1, 2**32), "hash": shapes.b64(KEY_BYTES)}
)
HEADER_SHAPE = shapes.obj(
    {
        "v": shapes.const(1),
        "id": shapes.ID,
        "kind": shapes.enum(*KINDS),
        "from": shapes.ID,
        "signer": shapes.ID,
        "sender_kid": shapes.KID,
        "to": shapes.array(shapes.ID, MAX_RECIPIENTS),
        "rcpt": shapes.array(
            shapes.obj({"mailbox": shapes.ID, "kid": shapes.KID}), MAX_RECIPIENTS + 1
        ),
        "thread": shapes.nullable(shapes.ID),
        "case": shapes.nullable(shapes.ID),
        "created": shapes.TIME,
        "blobs": shapes.array(_BLOB_SHAPE, MAX_ATTACHMENTS),
        "commit": shapes.b64(KEY_BYTES),
    }
)
WIRE_SHAPE = shapes.obj(
    {
        "header": HEADER_SHAPE,
        "nonce": shapes.b64(NONCE_BYTES),
        "ct": shapes.b64(None),
        "keys": shapes.array(
            shapes.obj(
                {
                    "mailbox": shapes.ID,
                    "kid": shapes.KID,
                    "sealed": shapes.b64(SEALED_KEY_BYTES),
                }
            ),
            MAX_RECIPIENTS + 1,
        ),
        "signature": shapes.b64(SIGNATURE_BYTES),
    }
)
_FORM_SHAPE = shapes.obj(
    {
        "procedure": shapes.ID,
        "version": shapes.integer(1),
        "digest": shapes.b64(DIGEST_BYTES),
        "data": shapes.free_object,
    }
)
_ATTACHMENT_SHAPE = shapes.obj(
    {
        "blob": shapes.ID,
        "name": shapes.string(MAX_FILE_NAME_BYTES),
        "type": shapes.string(MAX_TYPE_BYTES),
        "size": shapes.integer(0, MAX_FILE),
        "key": shapes.b64(KEY_BYTES),
    }
)
CONTENT_SHAPE = shapes.obj(
    {
        "subject": shapes.string(MAX_SUBJECT_BYTES),
        "body": shapes.string(),
        "format": shapes.const("text"),
        "form": shapes.nullable(_FORM_SHAPE),
        "attachments": shapes.array(_ATTACHMENT_SHAPE, MAX_ATTACHMENTS),
        "in_reply_to": shapes.nullable(shapes.ID),
        # a verified tree head always has at least leaf 0, the server key
        "sth": shapes.obj({"size": shapes.integer(1), "root": shapes.b64(KEY_BYTES)}),
    }
)


def _reject_numbers(node: Any, path: str) -> None:
    """Form data carries numbers as strings (PROTOCOL.md §5): no JSON number anywhere."""
    if isinstance(node, bool) or node is None or isinstance(node, str):
        return
    if isinstance(node, int):
        raise MalformedObject(f"{path}: form numbers are strings")
    if isinstance(node, dict):
        for k, v in node.items():
            _reject_numbers(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _reject_numbers(v, f"{path}[{i}]")


def check_content(content: Any) -> Content:
    """Validate decrypted (or to-be-sealed) content."""
    shapes.check(CONTENT_SHAPE, content, "content")
    c = cast(Content, content)
    if c["form"] is not None:
        _reject_numbers(c["form"]["data"], "content.form.data")
    for i, a in enumerate(c["attachments"]):
        try:
            check_file_name(a["name"])
        except MalformedObject as exc:
            raise MalformedObject(f"content.attachments[{i}].name: {exc}") from exc
        if not a["type"].isascii():
            raise MalformedObject(f"content.attachments[{i}].type: must be ASCII")
    return c


def _check_attachments_match_blobs(c: Content, blobs: Sequence[Mapping[str, Any]]) -> None:
    """The manifest follows ``header.blobs`` in order, and each blob has the length that
    the file's stated size gives (PROTOCOL.md §6): a wrong length is caught before any
    byte of the blob is fetched."""
    if [a["blob"] for a in c["attachments"]] != [b["id"] for b in blobs]:
        raise MalformedEnvelope("attachments must follow header.blobs in order")
    for a, b in zip(c["attachments"], blobs, strict=True):
        if b["size"] != blob_length(a["size"]):
            raise MalformedEnvelope("a blob's size does not match its file's size")


def _check_header_rules(h: Header) -> None:
    to = h["to"]
    if not to:
        raise MalformedEnvelope("no recipients")
    if len(set(to)) != len(to):
        raise MalformedEnvelope("a mailbox appears twice in to")
    expected = sorted(set(to) | {h["from"]})
    if [r["mailbox"] for r in h["rcpt"]] != expected:
        raise MalformedEnvelope("rcpt must list to + from once each, sorted")
    ids = [b["id"] for b in h["blobs"]]
    if len(set(ids)) != len(ids):
        raise MalformedEnvelope("a blob appears twice")
    if h["kind"] in ("decision", "withdrawal") and h["case"] is None:
        raise MalformedEnvelope(f"a {h['kind']} belongs to a case")


def check_wire(wire: Any) -> Wire:
    """Structural checks every party runs: closed shapes, rcpt/keys consistency, sizes."""
    try:
        shapes.check(WIRE_SHAPE, wire, "envelope")
    except MalformedObject as exc:
        raise MalformedEnvelope(str(exc)) from exc
    w = cast(Wire, wire)
    _check_header_rules(w["header"])
    rcpt = w["header"]["rcpt"]
    if [(k["mailbox"], k["kid"]) for k in w["keys"]] != [(r["mailbox"], r["kid"]) for r in rcpt]:
        raise MalformedEnvelope("keys must match rcpt in order and values")
    ct = b64d(w["ct"])
    if len(ct) < 256 + AEAD_TAG_BYTES or len(ct) > MAX_CT_BYTES:
        raise MalformedEnvelope("ciphertext length impossible for padded content")
    return w


def parse_wire(body: bytes) -> Wire:
    """Parse an envelope from the wire: canonical JSON, then :func:`check_wire`."""
    return check_wire(parse_canonical(body))


def message_digest(header: Header, nonce: bytes, ct: bytes) -> bytes:
    return _digest(cj(header), nonce, ct)


def _digest(header_bytes: bytes, nonce: bytes, ct: bytes) -> bytes:
    h = header_bytes
    return H(domain.MESSAGE + u32(len(h)) + h + nonce + ct, DIGEST_BYTES)


def wire_digest(wire: Wire) -> bytes:
    return message_digest(wire["header"], b64d(wire["nonce"], NONCE_BYTES), b64d(wire["ct"]))


def key_commitment(mk: bytes) -> bytes:
    return H(domain.COMMIT, KEY_BYTES, key=mk)


# --- sealing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sealed:
    """A sealed message: the wire object, its canonical bytes and its digest."""

    wire: Wire
    body: bytes
    digest: bytes


def seal_message(
    *,
    content: Mapping[str, Any],
    message_id: str,
    kind: Kind,
    from_: str,
    signer: str,
    signer_seed: bytes,
    to: Sequence[str],
    recipients: Mapping[str, Cert],
    thread: str | None,
    case: str | None,
    created: int,
    blobs: Sequence[Mapping[str, Any]] = (),
    mk: bytes | None = None,
    nonce: bytes | None = None,
) -> Sealed:
    """Seal ``content`` to every mailbox of ``to`` and to ``from_``.

    ``recipients`` maps every mailbox of ``to`` + ``from_`` to its current (verified)
    encryption certificate (a team's certificate for a team mailbox). ``blobs`` are the
    header entries ``{"id","size","hash"}`` in the order of ``content["attachments"]``.
    """
    c = check_content(dict(content))
    _check_attachments_match_blobs(c, blobs)
    mk = random_bytes(KEY_BYTES) if mk is None else mk
    nonce = random_bytes(NONCE_BYTES) if nonce is None else nonce
    if len(mk) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise InvalidKey("mk or nonce has the wrong size")
    signer_pk, _ = sign_keypair(signer_seed)
    mailboxes = sorted(set(to) | {from_})
    rcpt: list[dict[str, str]] = []
    keys: list[dict[str, str]] = []
    for mailbox in mailboxes:
        cert = recipients.get(mailbox)
        if cert is None:
            raise MalformedEnvelope("no encryption certificate for a recipient")
        if cert["subject"] != mailbox or cert["use"] != "encrypt":
            raise CertificateInvalid("certificate is not the mailbox's encryption key")
        rcpt.append({"mailbox": mailbox, "kid": cert["kid"]})
        keys.append(
            {"mailbox": mailbox, "kid": cert["kid"], "sealed": b64e(seal(mk, cert_pk(cert)))}
        )
    header: Header = {
        "v": 1,
        "id": message_id,
        "kind": kind,
        "from": from_,
        "signer": signer,
        "sender_kid": derive_kid("sign", signer_pk),
        "to": list(to),
        "rcpt": rcpt,
        "thread": thread,
        "case": case,
        "created": created,
        "blobs": [dict(b) for b in blobs],
        "commit": b64e(key_commitment(mk)),
    }
    try:
        shapes.check(HEADER_SHAPE, header, "header")
    except MalformedObject as exc:
        raise MalformedEnvelope(str(exc)) from exc
    _check_header_rules(header)
    header_bytes = cj(header)  # the AAD and the signed digest use the same bytes
    ct = aead_encrypt(mk, nonce, pad(cj(c)), header_bytes)
    digest = _digest(header_bytes, nonce, ct)
    wire: Wire = {
        "header": header,
        "nonce": b64e(nonce),
        "ct": b64e(ct),
        "keys": keys,
        "signature": b64e(sign(signer_seed, digest)),
    }
    return Sealed(wire=wire, body=cj(wire), digest=digest)


# --- server side -------------------------------------------------------------------------
def verify_signature(wire: Wire, signer_identity: Cert) -> bytes:
    """Verify the envelope signature under the signer's identity; return the digest.

    The server calls this (after :func:`parse_wire`) with the signer's current identity
    certificate from its directory; recipients call it through :func:`open_message`.
    """
    return _verify_signature(wire, signer_identity, cj(wire["header"]), b64d(wire["ct"]))


def _verify_signature(wire: Wire, signer_identity: Cert, header_bytes: bytes, ct: bytes) -> bytes:
    header = wire["header"]
    if (
        signer_identity["use"] != "sign"
        or signer_identity["subject"] != header["signer"]
        or signer_identity["kid"] != header["sender_kid"]
    ):
        raise CertificateInvalid("sender_kid is not the signer's identity key")
    digest = _digest(header_bytes, b64d(wire["nonce"], NONCE_BYTES), ct)
    verify(cert_pk(signer_identity), digest, b64d(wire["signature"], SIGNATURE_BYTES))
    return digest


# --- opening -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Attachment:
    """One attachment of an opened message: what is needed to fetch and decrypt it.

    Decrypt with ``AttachmentDecryptor(key, blob_size, blob_hash, file_size=size)``
    (``postbox.crypto.attachment_stream``), which checks length, framing and hash.
    """

    blob: str
    name: str
    type: str
    size: int
    key: bytes
    blob_size: int
    blob_hash: bytes


@dataclass(frozen=True)
class Opened:
    """A message that passed every check of PROTOCOL.md §5."""

    header: Header
    content: Content
    digest: bytes
    sender: Cert
    from_team: bool
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True)
class _Decrypted:
    header: Header
    content: Content
    digest: bytes
    sender: Cert
    from_team: bool


SthCheck = Callable[[int, bytes], None]
AsyncSthCheck = Callable[[int, bytes], Awaitable[None]]


def _open_until_sth(
    wire: Any,
    *,
    mailbox: str,
    keys: Mapping[str, tuple[bytes, bytes]],
    sender: Cert,
    sender_signed: SignedCert | None = None,
    pinned: Cert | None = None,
    revocations: Iterable[Revocation] = (),
    sender_team_org: str | None = None,
) -> _Decrypted:
    w = parse_wire(bytes(wire)) if isinstance(wire, bytes | bytearray) else check_wire(wire)
    header = w["header"]

    # 1. addressed to us
    if mailbox not in header["to"] and mailbox != header["from"]:
        raise NotARecipient("this mailbox is not a recipient of the message")

    # 2. exactly one rcpt entry, the same kid in keys, a key we hold for this mailbox
    entries = [r for r in header["rcpt"] if r["mailbox"] == mailbox]
    sealed_entries = [k for k in w["keys"] if k["mailbox"] == mailbox]
    if len(entries) != 1 or len(sealed_entries) != 1:
        raise KeySubstitution("not exactly one rcpt entry for this mailbox")
    kid = entries[0]["kid"]
    if sealed_entries[0]["kid"] != kid or kid not in keys:
        raise KeySubstitution("message sealed to a key this mailbox does not hold")
    my_pk, my_sk = keys[kid]
    if derive_kid("encrypt", my_pk) != kid or not equal(box_keypair(my_sk)[0], my_pk):
        raise KeySubstitution("held key does not match its kid")

    # 3. the sender certificate: subject = signer, verified by the caller, valid at created
    if sender["use"] != "sign" or sender["subject"] != header["signer"]:
        raise CertificateInvalid("sender certificate is not the signer's identity")
    if sender["kid"] != header["sender_kid"]:
        raise CertificateInvalid("sender_kid is not the given identity certificate")
    check_valid_at(sender, header["created"], revocations)

    # 4. signer = from, unless from is a team owned by the signer's organisation
    from_team = sender_team_org is not None
    if from_team:
        if sender["org"] is None or sender["org"] != sender_team_org:
            raise CertificateInvalid("signer does not belong to the team's organisation")
        if sender["kind"] not in ("caseworker", "connector"):
            raise CertificateInvalid("only caseworkers and connectors write for a team")
    elif header["signer"] != header["from"]:
        raise CertificateInvalid("signer differs from the sending mailbox")
    if header["kind"] == "decision" and (not from_team or sender["kind"] != "caseworker"):
        raise CertificateInvalid("a decision is signed by a caseworker writing for a team")
    if header["kind"] == "withdrawal" and (from_team or sender["kind"] != "citizen"):
        raise CertificateInvalid("a withdrawal is signed by the case's citizen")

    # 5. a change of the pinned identity must be linked to it
    if pinned is not None and pinned["kid"] != sender["kid"]:
        if pinned["subject"] != sender["subject"]:
            raise IdentityChanged("pinned identity belongs to another account")
        if sender_signed is None or sender_signed["cert"] != sender:
            raise IdentityChanged("signer identity changed and no link was given")
        try:
            _verify_rotation(sender_signed, pinned)
        except CryptoError as exc:
            raise IdentityChanged("signer identity changed without a valid link") from exc

    # 6. the signature
    header_bytes = cj(header)  # used as the signed header and as the AAD
    ct = b64d(w["ct"])
    digest = _verify_signature(w, sender, header_bytes, ct)

    # 7. the key commitment over the unsealed mk
    mk = seal_open(b64d(sealed_entries[0]["sealed"], SEALED_KEY_BYTES), my_pk, my_sk)
    if len(mk) != KEY_BYTES or not equal(key_commitment(mk), b64d(header["commit"], KEY_BYTES)):
        raise KeyCommitmentMismatch("message key does not match the commitment")

    # 8. AEAD
    padded = aead_decrypt(mk, b64d(w["nonce"], NONCE_BYTES), ct, header_bytes)

    # 9. padding and canonical content
    content = check_content(parse_canonical(unpad(padded)))
    _check_attachments_match_blobs(content, header["blobs"])
    return _Decrypted(header, content, digest, sender, from_team)


def _finish(d: _Decrypted) -> Opened:
    attachments = tuple(
        Attachment(
            blob=a["blob"],
            name=a["name"],
            type=a["type"],
            size=a["size"],
            key=b64d(a["key"], KEY_BYTES),
            blob_size=b["size"],
            blob_hash=b64d(b["hash"], KEY_BYTES),
        )
        for a, b in zip(d.content["attachments"], d.header["blobs"], strict=True)
    )
    return Opened(d.header, d.content, d.digest, d.sender, d.from_team, attachments)


class Recipient(TypedDict):
    """Who opens a message, and what they know about its sender (see :func:`open_message`)."""

    mailbox: Required[str]
    keys: Required[Mapping[str, tuple[bytes, bytes]]]
    sender: Required[Cert]
    sender_signed: NotRequired[SignedCert | None]
    pinned: NotRequired[Cert | None]
    revocations: NotRequired[Iterable[Revocation]]
    sender_team_org: NotRequired[str | None]


def open_message(
    wire: bytes | Mapping[str, Any], *, sth_check: SthCheck, **recipient: Unpack[Recipient]
) -> Opened:
    """Open a message for ``mailbox``, running every recipient check of §5 in order.

    * ``keys``: kid → (pk, sk) of the certified encryption keys this mailbox holds
      (current and retired; for a team, the keys obtained through verified team wraps).
    * ``sender``: the signer's identity certificate, already verified against the
      directory and log (``postbox.crypto.keystate``); ``revocations`` those known
      for it; ``sender_signed`` the served form, needed when it differs from ``pinned``.
    * ``sender_team_org``: when ``from`` is a team mailbox, the org owning it (from the
      team's verified certificate); ``None`` when ``from`` is a personal mailbox.
    * ``sth_check(size, root)``: compares the sender's tree head with the caller's own
      verified view and raises :class:`~postbox.crypto.errors.ForkDetected` on a fork.

    Attachments are verified later, by length, hash and framing, when they are fetched
    (``postbox.crypto.attachment``); :class:`Opened` carries what that needs.
    """
    d = _open_until_sth(wire, **recipient)
    # 10. the sender's tree head against our own view (fork alarm)
    sth_check(d.content["sth"]["size"], b64d(d.content["sth"]["root"], KEY_BYTES))
    return _finish(d)


async def open_message_async(
    wire: bytes | Mapping[str, Any], *, sth_check: AsyncSthCheck, **recipient: Unpack[Recipient]
) -> Opened:
    """:func:`open_message` with an asynchronous tree-head check (it may fetch a proof)."""
    d = _open_until_sth(wire, **recipient)
    await sth_check(d.content["sth"]["size"], b64d(d.content["sth"]["root"], KEY_BYTES))
    return _finish(d)
