"""Fetching and verifying keys from the directory and the transparency log (PROTOCOL.md §7).

Nothing the server says about keys is used before it is verified here:

1. **Tree heads** are signed by the pinned log key and fresh; each new head must be
   consistent with the last one stored in the state file: the client *demands* a
   consistency proof from the stored size to the new one (``…/consistency``) and refuses a
   fork (:class:`~postbox.crypto.errors.ForkDetected`). A head smaller than the stored one
   must be a prefix of it (a proof the other way round); the stored head never moves back.
2. **Chains** (``GET /api/v1/keys/{subject}``): every event's inclusion proof against the
   head, an unbroken chain from ``seq`` 0, and — if the client saw this subject before —
   the event it saw last must still be there unchanged (a rewritten history is a fork).
3. **Replay** into key state with the crypto core: certificate signatures, org
   certification against the *pinned* org root (trust on first use, or a fingerprint from
   paper), team keys and memberships against the org's admin keys, identity changes only
   through rotation links (or an identity the user verified), revocations.

Every crypto failure surfaces as :class:`~postbox.client.errors.VerificationFailed` whose
``code`` is the crypto error's name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from postbox.client.errors import FingerprintMismatch, PinMismatch, VerificationFailed
from postbox.client.http import segment
from postbox.client.session import Session
from postbox.crypto import certs, crockford, domain, shapes
from postbox.crypto.certs import Cert, OrgRoot, SignedCert, SignedServerKey
from postbox.crypto.encoding import KEY_BYTES, SIGNATURE_BYTES, b64d, cj
from postbox.crypto.errors import (
    BrokenChain,
    CertificateInvalid,
    CryptoError,
    ForkDetected,
    IdentityChanged,
)
from postbox.crypto.keystate import SubjectState, replay
from postbox.crypto.logevents import LogEvent, VerifiedChain, parse_leaf, verify_keys_response
from postbox.crypto.monitor import self_check
from postbox.crypto.primitives import equal, verify
from postbox.crypto.transparency import (
    TreeHead,
    advance,
    compare_heads,
    consistency_path,
    verify_inclusion_response,
    verify_tree_head,
)


@contextmanager
def verifying(what: str) -> Iterator[None]:
    """Turn a crypto failure into :class:`VerificationFailed` naming what was checked."""
    try:
        yield
    except CryptoError as exc:
        raise VerificationFailed(what, exc) from exc


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as typed (any case, with or without separators) in printed form."""
    try:
        symbols = crockford.normalize(text.replace(" ", "").replace("-", ""))
    except CryptoError as exc:
        raise FingerprintMismatch(f"not a fingerprint: {text!r}") from exc
    return crockford.group(symbols)


def cert_fingerprint(cert: Cert) -> str:
    """The safety code of a certificate's key (8 groups of 4 Crockford characters)."""
    return certs.fingerprint(b64d(cert["pk"], KEY_BYTES))


def check_fingerprint(expected: str, actual: str, what: str) -> None:
    if not equal(
        normalize_fingerprint(expected).encode("ascii"), normalize_fingerprint(actual).encode()
    ):
        raise FingerprintMismatch(
            f"the fingerprint of {what} is {actual}, not the {expected} you were given: "
            "do not trust this key"
        )


def check_self_signed(signed: Any) -> Cert:
    """A served identity certificate's own signature (no org certification needed yet)."""
    with verifying("identity certificate"):
        shapes.check(certs.SIGNED_CERT_SHAPE, signed, "signed certificate")
        s = cast(SignedCert, signed)
        cert = certs.check_cert(s["cert"])
        if cert["use"] != "sign" or s["by"] != cert["kid"]:
            raise CertificateInvalid("not a self-signed identity certificate")
        verify(certs.cert_pk(cert), domain.KEYCERT + cj(cert), b64d(s["sig"], SIGNATURE_BYTES))
    return cert


def chain_org(first: LogEvent) -> str | None:
    """The organisation a chain belongs to, from its first event (None for citizens)."""
    if first["type"] == "org_root":
        return first["subject"]
    if first["type"] in ("identity", "key"):
        return cast(SignedCert, first["body"])["cert"]["org"]
    return None


@dataclass(frozen=True)
class VerifiedSubject:
    """A subject's verified chain and the key state replayed from it."""

    chain: VerifiedChain
    state: SubjectState
    org: SubjectState | None

    @property
    def subject(self) -> str:
        return self.state.subject

    @property
    def identity(self) -> Cert | None:
        return self.state.identity


class KeyDirectory:
    """The client's view of the key directory, checked against the pinned log key."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _state(self) -> Any:
        return self.session.state

    # --- tree heads ----------------------------------------------------------------------
    async def tree_head(self) -> TreeHead:
        """The newest tree head, verified and proved consistent with the stored one."""
        served = await self.session.call("GET", "/api/v1/transparency/sth", auth=False)
        with verifying("tree head"):
            head = verify_tree_head(served, self.session.log_pk, now=self.session.clock())
        return await self.accept_head(head)

    async def _consistency(self, first: int, second: int) -> list[bytes]:
        answer = await self.session.call(
            "GET",
            "/api/v1/transparency/consistency",
            auth=False,
            params={"first": first, "second": second},
        )
        with verifying("consistency proof"):
            return consistency_path(answer, first, second)

    async def accept_head(self, new: TreeHead) -> TreeHead:
        """Compare a verified head with the stored one; store it if it is newer.

        Returns the head the client now holds (the stored one if ``new`` is older).
        """
        last = cast(TreeHead | None, self._state.sth)
        with verifying("tree head consistency"):
            if last is None:
                held = new
            elif new["size"] > last["size"]:
                proof = await self._consistency(last["size"], new["size"])
                held = advance(last, new, proof)
            elif new["size"] == last["size"]:
                compare_heads(new, last)  # same size: the roots must be equal
                held = new if new["ts"] > last["ts"] else last
            else:
                proof = await self._consistency(new["size"], last["size"])
                if compare_heads(new, last, proof) != "consistent":  # pragma: no cover
                    raise ForkDetected("an older tree head is not a prefix of the stored one")
                held = last
        if held is not last:
            self._state.sth = held
            self.session.save()
        return held

    async def check_server_key(self) -> SignedServerKey:
        """Leaf 0 of the log must be the server's own key event naming the pinned keys."""
        head = await self.tree_head()
        answer = await self.session.call(
            "GET",
            "/api/v1/transparency/inclusion",
            auth=False,
            params={"index": 0, "size": head["size"]},
        )
        with verifying("leaf 0"):
            leaf = verify_inclusion_response(answer, head)
            event = parse_leaf(leaf)
            if event["type"] != "server_key" or event["seq"] != 0:
                raise BrokenChain("leaf 0 is not the server's key event")
            signed = cast(SignedServerKey, event["body"])
            key = certs.verify_server_key(signed)
        if not (
            equal(b64d(key["log_pk"], KEY_BYTES), self.session.log_pk)
            and equal(b64d(key["receipt_pk"], KEY_BYTES), self.session.receipt_pk)
        ):
            raise PinMismatch("the log's own server key (leaf 0) is not the pinned one")
        if not self._state.server_checked:
            self._state.server_checked = True
            self.session.save()
        return signed

    # --- chains ----------------------------------------------------------------------------
    async def chain(self, subject: str) -> VerifiedChain:
        """``GET /api/v1/keys/{subject}``: proofs, chain, head consistency, remembered tail."""
        answer = await self.session.call("GET", f"/api/v1/keys/{segment(subject)}", auth=False)
        with verifying(f"key chain of {subject}"):
            chain = verify_keys_response(
                answer, subject, self.session.log_pk, now=self.session.clock()
            )
        await self.accept_head(chain.sth)
        remembered = self._state.chains.get(subject)
        with verifying(f"key chain of {subject} against what this client saw before"):
            self_check(chain.events, remembered, ())
        if remembered is None or remembered != chain.head:
            self._state.chains[subject] = chain.head
            self.session.save()
        return chain

    # --- org roots ----------------------------------------------------------------------------
    def pin_org_root(self, signed_root: Any, fingerprint: str | None = None) -> OrgRoot:
        """Verify a signed org root and pin it (or check it against the pin).

        ``fingerprint`` is what the user read from paper; it must match. A root other than
        the pinned one is refused (:class:`VerificationFailed` ``IdentityChanged``).
        """
        with verifying("org root"):
            root = certs.verify_org_root(signed_root)
        actual = certs.org_fingerprint(root)
        if fingerprint is not None:
            check_fingerprint(fingerprint, actual, f"the root key of {root['name']!r}")
        pinned = cast(OrgRoot | None, self._state.org_roots.get(root["org"]))
        if pinned is not None:
            if not equal(b64d(pinned["pk"], KEY_BYTES), b64d(root["pk"], KEY_BYTES)):
                raise VerificationFailed(
                    f"org root of {root['org']}",
                    IdentityChanged("the organisation's root key is not the pinned one"),
                )
            return pinned
        self._state.org_roots[root["org"]] = root
        self.session.save()
        return root

    async def org(self, org: str, *, fingerprint: str | None = None) -> SubjectState:
        """An organisation's verified chain: its root (pinned), admin keys, endorsements."""
        chain = await self.chain(org)
        first = chain.events[0]
        if first["type"] != "org_root":
            raise VerificationFailed(
                f"org chain of {org}", BrokenChain("an org chain starts with its root")
            )
        root = self.pin_org_root(first["body"], fingerprint)
        with verifying(f"org chain of {org}"):
            return replay(chain.events, org_roots={org: root})

    async def check_endorsement(self, org: str) -> bool:
        """True if the org root endorsed exactly the pinned server keys; False if it endorsed
        none yet. Another endorsed key raises :class:`PinMismatch`."""
        return self._check_endorsed(await self.org(org))

    def _check_endorsed(self, state: SubjectState) -> bool:
        key = state.server_key
        if key is None:
            return False
        if not (
            equal(b64d(key["log_pk"], KEY_BYTES), self.session.log_pk)
            and equal(b64d(key["receipt_pk"], KEY_BYTES), self.session.receipt_pk)
        ):
            raise PinMismatch("the organisation's root endorsed other server keys than the pinned")
        return True

    # --- subjects -----------------------------------------------------------------------------
    async def subject(self, subject: str, *, accept_identity: str | None = None) -> VerifiedSubject:
        """An account's or a team's verified key state.

        Staff identities are checked against the pinned org root; team keys and
        memberships against the org's admin keys. An identity change is accepted only if
        it is linked to the identity pinned for this subject, or if ``accept_identity``
        names it (after the user verified it, e.g. by activation code or fingerprint).
        """
        chain = await self.chain(subject)
        org_id = chain_org(chain.events[0])
        org_state = None
        roots: dict[str, OrgRoot] = {}
        if org_id is not None:
            org_state = await self.org(org_id)
            assert org_state.org_root is not None
            roots[org_id] = org_state.org_root
            self._check_endorsed(org_state)
        pinned = self._state.identities.get(subject)
        accepted = [k for k in (accept_identity, self._state.verified.get(subject)) if k]
        with verifying(f"keys of {subject}"):
            state = replay(
                chain.events,
                org_roots=roots,
                orgs={org_id: org_state} if org_id is not None and org_state else {},
                accepted_identities=accepted,
                pinned_identity=pinned,
            )
        current = state.identity
        if state.kind == "account" and current is not None and pinned != current["kid"]:
            self._state.identities[subject] = current["kid"]
            self.session.save()
        return VerifiedSubject(chain, state, org_state)

    def mark_verified(self, subject: str, kid: str) -> None:
        """Remember an identity the user verified out of band (activation code, fingerprint)."""
        self._state.verified[subject] = kid
        self.session.save()
