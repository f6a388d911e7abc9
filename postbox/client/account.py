"""The account: activation, login (passphrase or recovery key), the key bundle, sessions.

Activation (PROTOCOL.md §4, §9) runs entirely on the client: the code is parsed and only
``act_auth`` is shown to the server; the identity and encryption keys, their certificates,
``private_keys``, the pass bundle (Argon2id with the server's announced parameters, checked
against the protocol's range), the recovery bundle under a fresh recovery key, the auth keys
and ``act_mac`` are made here and sent in one request. The recovery key is returned once,
formatted for printing, and never stored.

Login: challenge → Argon2id (in a worker thread, never on the event loop) → the §2
signature over the origin this client talks to → tokens; then the pass bundle is fetched
and opened (rollback-checked against the highest ``gen`` seen), and the owner checks its own
chain in the log: the published identity and encryption keys must be the ones it holds, the
event its bundle remembers must still be there, and key events it did not make are reported.
The bundle then remembers the new verified tree head and chain head.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from postbox.client.errors import (
    ConflictError,
    KeyMismatch,
    NotFoundError,
    NotLoggedIn,
    ProtocolViolation,
    UsageError,
)
from postbox.client.http import segment
from postbox.client.keyring import Keyring, with_views
from postbox.client.keys import KeyDirectory, VerifiedSubject, cert_fingerprint, verifying
from postbox.client.session import Session
from postbox.crypto import activation, certs
from postbox.crypto.bundle import (
    Bundle,
    DerivedKeys,
    PrivateKeys,
    build_private_keys,
    check_bundle,
    derive_pass_keys,
    open_bundle,
    seal_pass_bundle,
    with_gen,
)
from postbox.crypto.certs import OrgRoot
from postbox.crypto.encoding import CHALLENGE_BYTES, ID_BYTES, SALT_BYTES, b64d, b64e
from postbox.crypto.logevents import ChainHead
from postbox.crypto.login import Method, normalize_login, sign_login
from postbox.crypto.monitor import ForeignEvent, self_check
from postbox.crypto.passphrase import check_new_passphrase
from postbox.crypto.primitives import box_keypair, random_bytes, sign_keypair
from postbox.crypto.recovery import (
    format_recovery_key,
    generate_recovery_key,
    parse_recovery_key,
    recovery_keys,
    seal_recovery_bundle,
)

DAY_MS: Final = 24 * 3600 * 1000
#: encryption certificates are made for 730 days (the protocol allows at most 731)
ENCRYPTION_VALIDITY_MS: Final = 730 * DAY_MS
#: how often a bundle write is retried after a compare-and-swap conflict
BUNDLE_RETRIES: Final = 3


@dataclass(frozen=True)
class Invitation:
    """``POST /api/v1/activation/lookup``: what an activation code is for."""

    kind: str
    org: str | None
    org_name: str | None
    org_root: OrgRoot | None
    team: str | None
    expires: int


@dataclass(frozen=True)
class Activated:
    account: str
    kind: str
    org: str | None
    login: str
    #: shown once, for printing; never stored
    recovery_key: str
    identity_fingerprint: str
    #: the keys derived from the passphrase, to log in without a second Argon2id run
    derived: DerivedKeys
    salt: bytes
    ops: int
    mem: int


@dataclass(frozen=True)
class OwnCheck:
    """The owner's check of its own chain at login."""

    #: the chain is not in the log yet (a staff identity awaiting org certification)
    pending: bool
    foreign: tuple[ForeignEvent, ...] = ()
    identity_revoked: bool = False
    subject: VerifiedSubject | None = None

    @property
    def ok(self) -> bool:
        return not self.foreign and not self.identity_revoked


@dataclass(frozen=True)
class LoginResult:
    account: str
    keyring: Keyring
    me: dict[str, Any]
    check: OwnCheck


def parse_code(code: str | bytes) -> bytes:
    if isinstance(code, bytes):
        return activation.generate_code(code=code)
    with verifying("activation code"):
        return activation.parse_code(code)


class Account:
    """Activation, login, the own key bundle and sessions of one account."""

    def __init__(self, session: Session, keys: KeyDirectory) -> None:
        self.session = session
        self.keys = keys

    # --- activation -------------------------------------------------------------------------
    async def lookup(self, code: str | bytes, *, org_fingerprint: str | None = None) -> Invitation:
        """What the code is for; the org root it names is verified and pinned.

        ``org_fingerprint`` (from the letter) must match that root before it is pinned.
        """
        raw = parse_code(code)
        body = await self.session.call(
            "POST",
            "/api/v1/activation/lookup",
            {"authoriser": b64e(activation.act_auth(raw))},
            auth=False,
        )
        try:
            root_signed = body.get("org_root")
            invitation = Invitation(
                kind=str(body["kind"]),
                org=body.get("org"),
                org_name=body.get("org_name"),
                org_root=None,
                team=body.get("team"),
                expires=int(body["expires"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolViolation(f"activation lookup: {exc}") from exc
        if root_signed is None and org_fingerprint is not None:
            raise UsageError("this invitation names no organisation root to compare with")
        if root_signed is not None:
            root = self.keys.pin_org_root(root_signed, org_fingerprint)
            if root["org"] != invitation.org:
                raise ProtocolViolation("the invitation names another organisation's root")
            invitation = Invitation(**{**invitation.__dict__, "org_root": root})
        return invitation

    async def activate(
        self,
        code: str | bytes,
        login: str,
        passphrase: str,
        language: str = "de",
        *,
        org_fingerprint: str | None = None,
    ) -> Activated:
        """Create the account the code was made for (see the module docs).

        ``org_fingerprint`` is the org root fingerprint printed on the letter; when given,
        the root the server names must match it.
        """
        check_new_passphrase(passphrase)
        name = normalize_login(login)
        raw = parse_code(code)
        info = await self.session.server()
        invitation = await self.lookup(raw, org_fingerprint=org_fingerprint)
        now = self.session.clock()
        account = b64e(random_bytes(ID_BYTES))
        kind = cast(certs.Kind, invitation.kind)
        org = None if kind == "citizen" else invitation.org
        id_seed = random_bytes(32)
        id_pk, _ = sign_keypair(id_seed)
        enc_sk = random_bytes(32)
        enc_pk, _ = box_keypair(enc_sk)
        with verifying("new certificates"):
            identity = certs.make_cert(
                subject=account, kind=kind, org=org, use="sign", pk=id_pk, created=now
            )
            encryption = certs.make_cert(
                subject=account,
                kind=kind,
                org=org,
                use="encrypt",
                pk=enc_pk,
                created=now,
                expires=now + ENCRYPTION_VALIDITY_MS,
            )
            signed_identity = certs.sign_cert(identity, id_seed)
            signed_encryption = certs.sign_cert(encryption, id_seed)
            private_keys = build_private_keys(gen=1, identity=[id_seed], encrypt=[(enc_sk, None)])
        salt = random_bytes(SALT_BYTES)
        pass_bundle, derived = await asyncio.to_thread(
            seal_pass_bundle,
            private_keys,
            passphrase,
            account,
            salt=salt,
            ops=info.ops,
            mem=info.mem,
            check_passphrase=False,
        )
        rk = generate_recovery_key()
        recovery_bundle, recovery = seal_recovery_bundle(private_keys, rk, account)
        self.session.use_login(name)
        body = await self.session.call(
            "POST",
            "/api/v1/activation",
            {
                "authoriser": b64e(activation.act_auth(raw)),
                "account": account,
                "login": name,
                "language": language,
                "identity": signed_identity,
                "encryption": signed_encryption,
                "pass_bundle": pass_bundle,
                "recovery_bundle": recovery_bundle,
                "auth_pk": b64e(derived.auth_pk),
                "recovery_auth_pk": b64e(recovery.auth_pk),
                "act_mac": b64e(activation.act_mac(raw, identity)),
            },
            auth=False,
        )
        if not isinstance(body, dict) or body.get("account") != account:
            raise ProtocolViolation("activation answered for another account")
        st = self.session.state
        st.account, st.kind, st.org = account, kind, org
        st.identity_kid = identity["kid"]
        st.identities[account] = identity["kid"]
        st.gens.update({"pass": pass_bundle["gen"], "recovery": recovery_bundle["gen"]})
        self.session.save()
        return Activated(
            account=account,
            kind=kind,
            org=org,
            login=name,
            recovery_key=format_recovery_key(rk),
            identity_fingerprint=cert_fingerprint(identity),
            derived=derived,
            salt=salt,
            ops=info.ops,
            mem=info.mem,
        )

    # --- login ------------------------------------------------------------------------------
    async def _challenge(self, login: str) -> tuple[bytes, bytes, int, int]:
        body = await self.session.call(
            "POST", "/api/v1/auth/challenge", {"login": login}, auth=False
        )
        try:
            return (
                b64d(body["challenge"], CHALLENGE_BYTES),
                b64d(body["salt"], SALT_BYTES),
                int(body["ops"]),
                int(body["mem"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"login challenge: {exc}") from exc

    async def _sign_in(
        self, login: str, method: Method, keys: DerivedKeys, challenge: bytes
    ) -> str:
        signature = sign_login(keys.auth_seed, challenge, self.session.origin, login, method)
        body = await self.session.call(
            "POST",
            "/api/v1/auth/login",
            {
                "login": login,
                "challenge": b64e(challenge),
                "auth_pk": b64e(keys.auth_pk),
                "signature": b64e(signature),
                "method": method,
            },
            auth=False,
        )
        return self.session.set_tokens(body)

    async def login(
        self,
        login: str,
        passphrase: str,
        *,
        activated: Activated | None = None,
        update_bundle: bool = True,
    ) -> LoginResult:
        """Log in with the passphrase, open the bundle and run the owner's self-check.

        ``activated`` (the result of :meth:`activate`) lets the first login reuse the keys
        derived at activation instead of running Argon2id again.
        """
        name = normalize_login(login)
        self.session.use_login(name)
        challenge, salt, ops, mem = await self._challenge(name)
        if activated is not None and (activated.salt, activated.ops, activated.mem) == (
            salt,
            ops,
            mem,
        ):
            keys = activated.derived
        else:
            with verifying("login parameters"):
                keys = await asyncio.to_thread(derive_pass_keys, passphrase, salt, ops, mem)
        account = await self._sign_in(name, "pass", keys, challenge)
        keyring = await self._open_bundle("pass", keys)
        return await self._after_login(account, keyring, update_bundle=update_bundle)

    async def recovery_login(self, login: str, recovery_key: str) -> LoginResult:
        """Log in with the recovery key; the keyring then holds the recovery bundle's keys.

        Set a new passphrase next (:meth:`change_passphrase`): a recovery keyring cannot seal
        the pass bundle.
        """
        name = normalize_login(login)
        self.session.use_login(name)
        with verifying("recovery key"):
            rk = parse_recovery_key(recovery_key)
        keys = recovery_keys(rk)
        challenge, _, _, _ = await self._challenge(name)
        account = await self._sign_in(name, "recovery", keys, challenge)
        keyring = await self._open_bundle("recovery", keys)
        return await self._after_login(account, keyring, update_bundle=False)

    async def _after_login(
        self, account: str, keyring: Keyring, *, update_bundle: bool
    ) -> LoginResult:
        me = await self.whoami()
        st = self.session.state
        st.kind, st.org = me.get("kind"), me.get("org")
        st.identity_kid = keyring.identity.kid
        self._seed_views(keyring.private_keys)
        self.session.save()
        # the newest head, proved consistent with the one this client or its bundle knew
        await self.keys.tree_head()
        check = await self.self_check(keyring)
        if update_bundle and keyring.kind == "pass":
            keyring = await self.remember_views(keyring, check)
        return LoginResult(account, keyring, me, check)

    async def _fetch_bundle(self, kind: str) -> Bundle:
        body = await self.session.call("GET", f"/api/v1/me/bundles/{kind}")
        try:
            with verifying(f"{kind} bundle"):
                return check_bundle(body["bundle"])
        except (KeyError, TypeError) as exc:
            raise ProtocolViolation(f"bundle answer: {exc}") from exc

    async def _open_bundle(self, kind: Literal["pass", "recovery"], keys: DerivedKeys) -> Keyring:
        account = self.session.require_account()
        bundle = await self._fetch_bundle(kind)
        return self._unlock(account, kind, bundle, keys)

    def _unlock(
        self, account: str, kind: Literal["pass", "recovery"], bundle: Bundle, keys: DerivedKeys
    ) -> Keyring:
        """Open a fetched bundle, rollback-checked against the highest gen seen here."""
        min_gen = self.session.state.gens.get(kind)
        with verifying(f"{kind} bundle"):
            private_keys = open_bundle(bundle, keys.kek, account, min_gen=min_gen)
        self.session.state.gens[kind] = max(bundle["gen"], min_gen or 0)
        self.session.save()
        return Keyring.of_bundle(account, private_keys, bundle, kind, keys)

    async def open_keys(self, passphrase: str) -> Keyring:
        """Open the pass bundle within the current session (no new login)."""
        bundle = await self._fetch_bundle("pass")
        account = self.session.require_account()
        with verifying("pass bundle"):
            keys = await asyncio.to_thread(
                derive_pass_keys,
                passphrase,
                b64d(bundle["salt"], SALT_BYTES),
                cast(int, bundle["ops"]),
                cast(int, bundle["mem"]),
            )
        return self._unlock(account, "pass", bundle, keys)

    def _seed_views(self, private_keys: PrivateKeys) -> None:
        """A client without a stored head starts from the one its bundle remembers."""
        st = self.session.state
        log = private_keys["log"]
        if st.sth is None and log is not None:
            st.sth = {"v": 1, "size": log["size"], "root": log["root"], "ts": log["ts"]}
        chain = private_keys["chain"]
        account = self.session.require_account()
        if chain is not None:
            known = st.chains.get(account)
            if known is None or known["seq"] < chain["seq"]:
                st.chains[account] = {"seq": chain["seq"], "hash": chain["hash"]}

    # --- the owner's self-check ---------------------------------------------------------------
    async def self_check(self, keyring: Keyring) -> OwnCheck:
        """Compare the account's published chain with the keys and memory of its bundle."""
        account = keyring.account
        try:
            subject = await self.keys.subject(account, accept_identity=keyring.identity.kid)
        except NotFoundError:
            return OwnCheck(pending=True)
        state = subject.state
        identity_kids = {k.kid for k in keyring.identities}
        published = [e.cert["kid"] for e in state.identities]
        if not published or published[-1] not in identity_kids:
            raise KeyMismatch(
                "the directory publishes an identity key for this account that it does not "
                "hold: someone else's key was put in your name"
            )
        if state.encryption:
            newest = state.encryption[-1].cert["kid"]
            if newest not in {k.kid for k in keyring.encryption_keys}:
                raise KeyMismatch(
                    "the directory publishes an encryption key for this account that it "
                    "does not hold: mail to you could be read by someone else"
                )
        with verifying("own chain against the bundle's memory"):
            result = self_check(
                subject.chain.events,
                cast(ChainHead | None, keyring.private_keys["chain"]),
                keyring.own_kids,
            )
        return OwnCheck(
            pending=False,
            foreign=result.foreign,
            identity_revoked=state.identity is None,
            subject=subject,
        )

    async def remember_views(self, keyring: Keyring, check: OwnCheck | None = None) -> Keyring:
        """Store the verified tree head and the own chain head in the bundle if they moved."""
        st = self.session.state
        sth = st.sth
        log = None if sth is None else {"size": sth["size"], "root": sth["root"], "ts": sth["ts"]}
        chain: dict[str, Any] | None = keyring.private_keys["chain"]
        if check is not None and check.subject is not None:
            chain = dict(check.subject.chain.head)
        pks = keyring.private_keys
        if log == pks["log"] and chain == pks["chain"]:
            return keyring
        return await self.update_keys(keyring, lambda p: with_views(p, log=log, chain=chain))

    # --- bundle writes ------------------------------------------------------------------------
    async def update_keys(
        self, keyring: Keyring, change: Callable[[PrivateKeys], PrivateKeys]
    ) -> Keyring:
        """Write the next generation of the pass bundle (compare-and-swap on ``gen``).

        On a conflict (another device wrote first) the newer bundle is fetched, opened with
        the same key and ``change`` applied again.
        """
        current = keyring
        for _ in range(BUNDLE_RETRIES):
            new = with_gen(change(current.private_keys), current.gen + 1)
            sealed = current.seal(new)
            try:
                await self.session.call(
                    "PUT",
                    "/api/v1/me/bundles/pass",
                    {"bundle": sealed, "expected_gen": current.gen},
                )
            except ConflictError:
                bundle = await self._fetch_bundle("pass")
                with verifying("pass bundle"):
                    fresh = open_bundle(bundle, current.kek, current.account, min_gen=current.gen)
                current = current.with_keys(fresh)
                continue
            self.session.state.gens["pass"] = new["gen"]
            self.session.save()
            return current.with_keys(new)
        raise ConflictError("the key bundle keeps changing on another device; try again")

    async def change_passphrase(self, keyring: Keyring, new_passphrase: str) -> Keyring:
        """Re-seal the keys under a new passphrase (after a recovery login, too).

        Needs a fresh login signature by the key that opened ``keyring`` (the old
        passphrase's auth key, or the recovery auth key). Other sessions are revoked by the
        server.
        """
        check_new_passphrase(new_passphrase)
        login = self.session.state.login
        if login is None:
            raise NotLoggedIn("no login name")
        info = await self.session.server()
        current = await self._fetch_bundle("pass")
        gen = max(current["gen"], keyring.gen if keyring.kind == "pass" else 0) + 1
        challenge, _, _, _ = await self._challenge(login)
        method: Method = "pass" if keyring.kind == "pass" else "recovery"
        signature = sign_login(keyring.auth_seed, challenge, self.session.origin, login, method)
        private_keys = with_gen(keyring.private_keys, gen)
        bundle, derived = await asyncio.to_thread(
            seal_pass_bundle,
            private_keys,
            new_passphrase,
            keyring.account,
            ops=info.ops,
            mem=info.mem,
            check_passphrase=False,
        )
        await self.session.call(
            "POST",
            "/api/v1/me/passphrase",
            {
                "challenge": b64e(challenge),
                "signature": b64e(signature),
                "method": method,
                # not in BRIEF3's contract, required by the server: the key that signed
                "signer_pk": b64e(sign_keypair(keyring.auth_seed)[0]),
                "auth_pk": b64e(derived.auth_pk),
                "bundle": bundle,
                "expected_gen": current["gen"],
            },
        )
        self.session.state.gens["pass"] = gen
        self.session.save()
        return Keyring.of_bundle(keyring.account, private_keys, bundle, "pass", derived)

    # --- session ------------------------------------------------------------------------------
    async def whoami(self) -> dict[str, Any]:
        body = await self.session.call("GET", "/api/v1/me")
        if not isinstance(body, dict) or not isinstance(body.get("account"), str):
            raise ProtocolViolation("GET /api/v1/me: unexpected answer")
        return body

    async def logout(self) -> None:
        """End this session on the server and forget its tokens here."""
        if self.session.state.tokens is None:
            return
        try:
            await self.session.call("POST", "/api/v1/auth/logout")
        except NotLoggedIn:
            pass
        finally:
            self.session.drop_tokens()

    async def sessions(self) -> list[dict[str, Any]]:
        body = await self.session.call("GET", "/api/v1/sessions")
        items = body.get("sessions") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ProtocolViolation("GET /api/v1/sessions: unexpected answer")
        return items

    async def revoke_session(self, session_id: str) -> None:
        await self.session.call("DELETE", f"/api/v1/sessions/{segment(session_id)}")
