"""envelope.json: sealed messages from fixed seeds (PROTOCOL.md §5, §10).

Everything but the sealed boxes is deterministic given the inputs (mk, nonce, seeds);
``crypto_box_seal`` uses a fresh ephemeral key, so ``wire.keys[].sealed`` is a randomized
output that implementations open with ``recipient_sk`` rather than rebuild. The generator
keeps the previously committed sealed values when the deterministic parts are unchanged,
so regenerating is byte-stable.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from postbox.crypto import certs, domain, envelope
from postbox.crypto.attachment import blob_length
from postbox.crypto.encoding import b64d, b64e, cj, u32
from postbox.crypto.kid import derive_kid
from postbox.crypto.padding import pad
from postbox.crypto.primitives import (
    H,
    aead_encrypt,
    box_keypair,
    seal,
    sign,
    sign_keypair,
)

NOW = 1_767_225_600_000
YEAR = 365 * 24 * 3600 * 1000
HERE = Path(__file__).parent


def _seed(label: str, n: int = 32) -> bytes:
    return hashlib.blake2b(("vector-seed/envelope/" + label).encode(), digest_size=n).digest()


def _id(label: str) -> str:
    return b64e(_seed("id/" + label, 16))


class _Party:
    def __init__(self, label: str, kind: certs.Kind, org: str | None) -> None:
        self.id = _id(label)
        self.kind = kind
        self.org = org
        self.sign_seed = _seed("sign/" + label)
        self.sign_pk, _ = sign_keypair(self.sign_seed)
        self.enc_sk = _seed("enc/" + label)
        self.enc_pk, _ = box_keypair(self.enc_sk)
        self.identity = (
            None
            if kind == "team"  # teams have no signing key
            else certs.make_cert(
                subject=self.id,
                kind=kind,
                org=org,
                use="sign",
                pk=self.sign_pk,
                created=NOW - YEAR // 2,
            )
        )
        self.enc = certs.make_cert(
            subject=self.id,
            kind=kind,
            org=org,
            use="encrypt",
            pk=self.enc_pk,
            created=NOW - YEAR // 2,
            expires=NOW + YEAR,
        )


ORG = _id("org")
CITIZEN = _Party("citizen", "citizen", None)
CASEWORKER = _Party("caseworker", "caseworker", ORG)
TEAM = _Party("team", "team", ORG)
TEAM2 = _Party("team-2", "team", ORG)
OTHER = _Party("other-citizen", "citizen", None)

# The procedure an application's form belongs to, so that form.digest can be checked.
PROCEDURE: certs.Procedure = {
    "v": 1,
    "org": ORG,
    "id": _id("procedure"),
    "version": 3,
    "schema": {
        "type": "object",
        "required": ["surname", "children", "consent"],
        "properties": {
            "surname": {"type": "string", "maxLength": 200},
            "children": {"type": "string", "pattern": "^[0-9]{1,2}$"},
            "residence": {"type": "object", "properties": {"city": {"type": "string"}}},
            "consent": {"type": "boolean", "const": True},
        },
    },
    "labels": {"de": {"surname": "Familienname"}, "en": {"surname": "Surname"}},
    "documents": [{"name": "passport", "required": True, "max_size": 10 * 1024 * 1024}],
}


def _content(subject: str, body: str, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "subject": subject,
        "body": body,
        "format": "text",
        "form": None,
        "attachments": [],
        "in_reply_to": None,
        "sth": {"size": 42, "root": b64e(_seed("sth-root"))},
    }
    c.update(extra)
    return c


def _case(
    name: str,
    sender: _Party,
    from_: _Party,
    to: list[_Party],
    kind: envelope.Kind,
    content: dict[str, Any],
    blobs: list[dict[str, Any]],
    reader: _Party,
    thread: str | None = None,
    case: str | None = None,
) -> dict[str, Any]:
    mk = _seed(name + "/mk")
    nonce = _seed(name + "/nonce", 24)
    recipients = {p.id: p.enc for p in [*to, from_]}
    sealed = envelope.seal_message(
        content=content,
        message_id=_id(name + "/message"),
        kind=kind,
        from_=from_.id,
        signer=sender.id,
        signer_seed=sender.sign_seed,
        to=[p.id for p in to],
        recipients=recipients,
        thread=thread,
        case=case,
        created=NOW,
        blobs=blobs,
        mk=mk,
        nonce=nonce,
    )
    return {
        "name": name,
        "signer_seed": b64e(sender.sign_seed),
        "signer_identity_pk": b64e(sender.sign_pk),
        "signer_identity_cert": sender.identity,
        "sender_team_org": from_.org if from_.kind == "team" else None,
        "recipient_mailbox": reader.id,
        "recipient_pk": b64e(reader.enc_pk),
        "recipient_sk": b64e(reader.enc_sk),
        "recipient_cert": reader.enc,
        "recipients": [recipients[m] for m in sorted(recipients)],
        "mk": b64e(mk),
        "nonce": b64e(nonce),
        "content": content,
        "padded_length": len(b64d(sealed.wire["ct"])) - 16,
        "header": sealed.wire["header"],
        "wire": sealed.wire,
        "digest": b64e(sealed.digest),
    }


def _blob(label: str, size: int) -> dict[str, Any]:
    return {"id": _id("blob/" + label), "size": size, "hash": b64e(_seed("blob-hash/" + label))}


def _attachment(label: str, name: str, type_: str, size: int) -> dict[str, Any]:
    return {
        "blob": _id("blob/" + label),
        "name": name,
        "type": type_,
        "size": size,
        "key": b64e(_seed("file-key/" + label)),
    }


def _resign(case: dict[str, Any], wire: dict[str, Any], padded: bytes | None = None) -> None:
    """Re-encrypt ``padded`` (if given) and re-sign, so only the intended check fails."""
    header = wire["header"]
    if padded is not None:
        ct = aead_encrypt(b64d(case["mk"]), b64d(case["nonce"]), padded, cj(header))
        wire["ct"] = b64e(ct)
    h = cj(header)
    digest = H(domain.MESSAGE + u32(len(h)) + h + b64d(wire["nonce"]) + b64d(wire["ct"]), 64)
    wire["signature"] = b64e(sign(b64d(case["signer_seed"]), digest))


def _reject(
    name: str,
    error: str,
    base: dict[str, Any],
    wire: Any = None,
    body: bytes | None = None,
    **over: Any,
) -> dict[str, Any]:
    r = {
        k: base[k]
        for k in (
            "signer_identity_cert",
            "sender_team_org",
            "recipient_mailbox",
            "recipient_pk",
            "recipient_sk",
        )
    }
    r.update(name=name, error=error)
    if body is not None:
        r["body"] = b64e(body)
    else:
        r["wire"] = wire
    r.update(over)
    return r


def _rejects(base: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    w = base["wire"]

    out.append(
        _reject("not-a-recipient", "NotARecipient", base, w, recipient_mailbox=_id("stranger"))
    )
    out.append(
        _reject("body-not-canonical", "NonCanonical", base, body=cj(w).replace(b"{", b"{ ", 1))
    )
    x = copy.deepcopy(w)
    x["header"]["rcpt"].reverse()
    x["keys"].reverse()
    out.append(_reject("rcpt-not-sorted", "MalformedEnvelope", base, x))
    x = copy.deepcopy(w)
    x["header"]["v"] = 2
    out.append(_reject("unknown-version", "MalformedEnvelope", base, x))
    x = copy.deepcopy(w)
    x["header"]["extra"] = True
    out.append(_reject("unknown-member", "MalformedEnvelope", base, x))
    # key substitution: the recipient's rcpt kid names a key it does not hold
    x = copy.deepcopy(w)
    idx = [r["mailbox"] for r in x["header"]["rcpt"]].index(base["recipient_mailbox"])
    evil_pk, _ = box_keypair(_seed("evil"))
    evil_kid = derive_kid("encrypt", evil_pk)
    x["header"]["rcpt"][idx]["kid"] = evil_kid
    x["keys"][idx] = {
        "mailbox": base["recipient_mailbox"],
        "kid": evil_kid,
        "sealed": b64e(seal(b64d(base["mk"]), evil_pk)),
    }
    _resign(base, x)
    out.append(_reject("key-substitution", "KeySubstitution", base, x))
    x = copy.deepcopy(w)
    sig = bytearray(b64d(x["signature"]))
    sig[5] ^= 1
    x["signature"] = b64e(bytes(sig))
    out.append(_reject("bad-signature", "BadSignature", base, x))
    x = copy.deepcopy(w)
    ct = bytearray(b64d(x["ct"]))
    ct[0] ^= 1
    x["ct"] = b64e(bytes(ct))
    out.append(_reject("ct-changed-signature-fails", "BadSignature", base, x))
    x = copy.deepcopy(w)
    x["ct"] = b64e(bytes(ct))
    _resign(base, x)
    out.append(_reject("ct-changed-and-resigned", "DecryptionFailed", base, x))
    x = copy.deepcopy(w)
    x["keys"][idx]["sealed"] = b64e(seal(_seed("another-mk"), b64d(base["recipient_pk"])))
    out.append(_reject("commitment-mismatch", "KeyCommitmentMismatch", base, x))
    x = copy.deepcopy(w)
    sealed = bytearray(b64d(x["keys"][idx]["sealed"]))
    sealed[40] ^= 1
    x["keys"][idx]["sealed"] = b64e(bytes(sealed))
    out.append(_reject("sealed-key-tampered", "DecryptionFailed", base, x))
    content = cj(base["content"])
    x = copy.deepcopy(w)
    _resign(base, x, content + b"\x80" + bytes(300))  # wrong padded length
    out.append(_reject("bad-padding-length", "BadPadding", base, x))
    x = copy.deepcopy(w)
    _resign(base, x, content + bytes(256))  # no marker
    out.append(_reject("bad-padding-marker", "BadPadding", base, x))
    x = copy.deepcopy(w)
    spaced = content.replace(b"{", b"{ ", 1)
    _resign(base, x, spaced + b"\x80" + bytes(256 - len(spaced) - 1))
    out.append(_reject("content-not-canonical", "NonCanonical", base, x))
    x = copy.deepcopy(w)
    extra = cj({**base["content"], "extra": 1})
    _resign(base, x, extra + b"\x80" + bytes(max(256, len(extra) + 1) - len(extra) - 1))
    out.append(_reject("content-unknown-member", "MalformedObject", base, x))
    return out


BLOB_SIZE_RULE = (
    "project choice: a blob's stated size is checked against the file size in the manifest "
    "when the envelope is opened (PROTOCOL.md §5 and §6 require the length check before any "
    "attachment plaintext is released; an implementation may instead make it at download)"
)


def _more_rejects(base: dict[str, Any], with_blobs: dict[str, Any]) -> list[dict[str, Any]]:
    """Sender-certificate rules and the blob length rule."""
    out = []
    signed_for_other = envelope.seal_message(
        content=base["content"], message_id=_id("signer-not-from"), kind="message",
        from_=OTHER.id, signer=CITIZEN.id, signer_seed=CITIZEN.sign_seed, to=[TEAM.id],
        recipients={OTHER.id: OTHER.enc, TEAM.id: TEAM.enc}, thread=None, case=None,
        created=NOW, mk=_seed("signer-not-from/mk"), nonce=_seed("signer-not-from/nonce", 24),
    )  # fmt: skip
    out.append(_reject("signer-is-not-from", "CertificateInvalid", base, signed_for_other.wire))
    out.append(_reject("sender-certificate-of-another-account", "CertificateInvalid", base,
                       base["wire"], signer_identity_cert=CASEWORKER.identity))  # fmt: skip
    early = envelope.seal_message(
        content=base["content"], message_id=_id("early"), kind="message", from_=CITIZEN.id,
        signer=CITIZEN.id, signer_seed=CITIZEN.sign_seed, to=[TEAM.id],
        recipients={CITIZEN.id: CITIZEN.enc, TEAM.id: TEAM.enc}, thread=None, case=None,
        created=NOW - YEAR, mk=_seed("early/mk"), nonce=_seed("early/nonce", 24),
    )  # fmt: skip
    out.append(_reject("created-before-the-sender-certificate", "CertificateExpired", base,
                       early.wire))  # fmt: skip
    x = copy.deepcopy(with_blobs["wire"])
    x["header"]["blobs"][0]["size"] += 17
    _resign(with_blobs, x, pad(cj(with_blobs["content"])))
    out.append(_reject("blob-size-does-not-match-the-file-size", "MalformedEnvelope",
                       with_blobs, x, rule=BLOB_SIZE_RULE))  # fmt: skip
    return out


def build() -> dict[str, Any]:
    form = {
        "procedure": _id("procedure"),
        "version": 3,
        "digest": b64e(certs.form_digest(PROCEDURE)),
        "data": {
            "surname": "Yılmaz",
            "children": "2",
            "residence": {"city": "Nürnberg"},
            "consent": True,
        },
    }
    cases = [
        _case(
            "citizen-to-team",
            CITIZEN,
            CITIZEN,
            [TEAM],
            "message",
            _content("Termin", "Guten Tag, ich brauche einen Termin."),
            [],
            TEAM,
        ),
        _case(
            "citizen-sent-copy", CITIZEN, CITIZEN, [TEAM], "message", _content("", ""), [], CITIZEN
        ),
        _case(
            "application-with-form-and-attachments",
            CITIZEN,
            CITIZEN,
            [TEAM],
            "application",
            _content(
                "Antrag",
                "مرحبا — Привіт — 你好 — 🙂",
                form=form,
                attachments=[
                    _attachment("a", "Reisepass.pdf", "application/pdf", 123456),
                    _attachment("b", "Мельдебестätigung.jpg", "image/jpeg", 0),
                ],
            ),
            [_blob("a", blob_length(123456)), _blob("b", blob_length(0))],
            TEAM,
            thread=_id("thread"),
            case=_id("case"),
        ),
        _case(
            "decision-from-team",
            CASEWORKER,
            TEAM,
            [CITIZEN],
            "decision",
            _content("Bescheid", "Ihr Antrag wurde bewilligt.\n\u202eBidi\u202c\ttab"),
            [],
            CITIZEN,
            thread=_id("thread"),
            case=_id("case"),
        ),
        _case(
            "team-to-two-mailboxes",
            CASEWORKER,
            TEAM,
            [CITIZEN, TEAM2],
            "info_request",
            _content("Rückfrage", "x" * 5000),
            [],
            TEAM2,
            thread=_id("thread"),
        ),
    ]
    cases[2]["procedure"] = PROCEDURE
    previous = _previous()
    for c in cases:
        old = previous.get(c["name"])
        if old is not None and _deterministic(old) == _deterministic(c):
            c["wire"]["keys"] = old["wire"]["keys"]
    rejects = _rejects(cases[0]) + _more_rejects(cases[0], cases[2])
    old_rejects = {r["name"]: r for r in _previous_rejects()}
    for r in rejects:
        old = old_rejects.get(r["name"])
        if (
            old is not None
            and "wire" in r
            and "wire" in old
            and _deterministic({"wire": old["wire"]}) == _deterministic({"wire": r["wire"]})
        ):
            r["wire"] = old["wire"]
    # A reject that follows a project rule rather than PROTOCOL.md goes in a list of its own,
    # so that "reject" holds only what every conforming implementation must refuse.
    return {
        "cases": cases,
        "reject": [r for r in rejects if "rule" not in r],
        "project_reject": [r for r in rejects if "rule" in r],
    }


def _deterministic(case: dict[str, Any]) -> Any:
    c = copy.deepcopy(case)
    for k in c["wire"]["keys"]:
        k.pop("sealed", None)
    return c


def _load() -> dict[str, Any]:
    path = HERE / "envelope.json"
    if not path.exists():
        return {"cases": [], "reject": []}
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def _previous() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in _load()["cases"]}


def _previous_rejects() -> list[dict[str, Any]]:
    data = _load()
    rejects: list[dict[str, Any]] = data["reject"] + data.get("project_reject", [])
    return rejects
