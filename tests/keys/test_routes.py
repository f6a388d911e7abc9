"""The transparency and key routes over HTTP, on SQLite and PostgreSQL: answers the client
code verifies, proofs for many sizes, paging, and a 4xx problem for every bad request."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from support.keys import DAY, NOW, FakeClock, Sessions, account, check_stored_log, org

from postbox import __version__
from postbox.crypto import certs
from postbox.crypto.bundle import DEFAULT_MEM, DEFAULT_OPS
from postbox.crypto.encoding import b64d, b64e, cj, parse_canonical
from postbox.crypto.keystate import replay
from postbox.crypto.logevents import EventType, parse_leaf, verify_keys_response
from postbox.crypto.monitor import Auditor
from postbox.crypto.transparency import (
    consistency_path,
    verify_inclusion_response,
    verify_sth,
    verify_tree_head,
)
from postbox.keys import merkle, store
from postbox.keys.heads import MAX_LEAVES_PAGE
from postbox.mailbox.appkeys import CLOCK, DB, KEYLOG, SECRETS, SETTINGS

Client = TestClient[web.Request, web.Application]


async def ok(client: Client, path: str) -> bytes:
    """A 200 answer whose body is canonical JSON (clients may check the exact bytes)."""
    resp = await client.get(path)
    body = await resp.read()
    assert resp.status == 200, body
    assert resp.content_type == "application/json"
    assert cj(parse_canonical(body)) == body
    return body


async def problem(client: Client, path: str, status: int, code: str, **kw: Any) -> None:
    resp = await client.request(kw.pop("method", "GET"), path, **kw)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["type"] == "urn:postbox:problem:" + code


async def grow(client: Client, n: int, *, sign_each: bool = True) -> None:
    """Append ``n`` real key events (one account's identity and keys)."""
    app = client.app
    who = account(f"grower-{n}")
    for i in range(n):
        type_: EventType = "key" if i else "identity"
        body = who.encryption(NOW + i) if i else who.identity
        async with app[DB].write() as conn:
            await app[KEYLOG].append(conn, subject=who.id, type=type_, body=body, now=app[CLOCK]())
        if sign_each:
            await app[KEYLOG].heads.ensure_head(force=True)


# --- the server's pins ---------------------------------------------------------------------------
async def test_server_info(kclient: Client) -> None:
    info = parse_canonical(await ok(kclient, "/api/v1/server"))
    secrets = kclient.app[SECRETS]
    assert info == {
        "origin": kclient.app[SETTINGS].origin,
        "version": __version__,
        "log_pk": b64e(secrets.log_pk),
        "receipt_pk": b64e(secrets.receipt_pk),
        "argon2": {"ops": DEFAULT_OPS, "mem": DEFAULT_MEM},
        "limits": {
            "json_bytes": kclient.app[SETTINGS].max_json_bytes,
            "message_bytes": kclient.app[SETTINGS].max_message_bytes,
            "blob_bytes": kclient.app[SETTINGS].max_blob_bytes,
            "part_bytes": kclient.app[SETTINGS].max_part_bytes,
            "quota_bytes": kclient.app[SETTINGS].quota_bytes,
        },
    }


async def test_tree_head_verifies_and_advances(kclient: Client, clock: FakeClock) -> None:
    log_pk = kclient.app[SECRETS].log_pk
    body = await ok(kclient, "/api/v1/transparency/sth")
    first = verify_tree_head(body, log_pk, now=clock())
    assert first["size"] == 1
    await grow(kclient, 5, sign_each=False)
    clock.advance(1000)
    second_body = await ok(kclient, "/api/v1/transparency/sth")  # signed now: the log grew
    proof = consistency_path(
        parse_canonical(await ok(kclient, "/api/v1/transparency/consistency?first=1&second=6")),
        1,
        6,
    )
    second = verify_sth(second_body, log_pk, now=clock(), last=first, proof=proof)
    assert (second["size"], second["ts"]) == (6, clock())
    # a day later the same size gets a fresh head (clients refuse heads older than 24 h)
    clock.advance(DAY)
    third = verify_tree_head(await ok(kclient, "/api/v1/transparency/sth"), log_pk, now=clock())
    assert (third["size"], third["root"], third["ts"]) == (6, second["root"], clock())


# --- proofs --------------------------------------------------------------------------------------
async def test_inclusion_and_consistency_proofs_verify_for_many_sizes(kclient: Client) -> None:
    await grow(kclient, 20)
    app = kclient.app
    async with app[DB].read() as conn:
        heads = await store.all_heads(conn)
    roots = {h.size: h.root for h in heads}
    sizes = sorted(roots)
    assert sizes == list(range(1, 22))
    tree = await check_stored_log(app[DB], app[SECRETS].log_pk)
    for size in sizes:
        sth = {"v": 1, "size": size, "root": b64e(roots[size]), "ts": 0}
        for index in range(size):
            body = await ok(kclient, f"/api/v1/transparency/inclusion?index={index}&size={size}")
            leaf = verify_inclusion_response(body, sth)  # type: ignore[arg-type]
            assert merkle.leaf_hash(leaf) == tree.leaf_hash(index)
        for first in range(1, size + 1):
            body = await ok(
                kclient, f"/api/v1/transparency/consistency?first={first}&second={size}"
            )
            path = consistency_path(body, first, size)
            merkle.verify_consistency(first, size, path, roots[first], roots[size])


async def test_a_subjects_keys_are_proved_against_the_newest_head(
    kclient: Client, clock: FakeClock
) -> None:
    app = kclient.app
    log_pk = app[SECRETS].log_pk
    alice = account("alice")
    async with app[DB].write() as conn:
        await app[KEYLOG].append(
            conn, subject=alice.id, type="identity", body=alice.identity, now=clock()
        )
    await grow(kclient, 7, sign_each=False)
    async with app[DB].write() as conn:
        await app[KEYLOG].append(
            conn, subject=alice.id, type="key", body=alice.encryption(), now=clock()
        )
    # appended a moment ago, no head covers it yet: the lookup signs one
    body = await ok(kclient, f"/api/v1/keys/{alice.id}")
    chain = verify_keys_response(body, alice.id, log_pk, now=clock())
    assert chain.indices == (1, 9) and chain.sth["size"] == 10
    assert replay(list(chain.events)).current_encryption(clock()) == alice.keys[0]["cert"]
    # the head named in the answer is the one /sth serves
    sth = verify_tree_head(await ok(kclient, "/api/v1/transparency/sth"), log_pk, now=clock())
    assert sth == chain.sth


async def test_leaves_are_paged_and_audit_clean(kclient: Client, clock: FakeClock) -> None:
    app = kclient.app
    await grow(kclient, 9, sign_each=False)
    all_leaves: list[bytes] = []
    auditor = Auditor()
    start = 0
    while start < 10:
        body = parse_canonical(
            await ok(kclient, f"/api/v1/transparency/leaves?start={start}&end={start + 4}")
        )
        page = [b64d(x) for x in body["leaves"]]
        assert len(page) == min(4, 10 - start)
        all_leaves += page
        auditor.extend(page)
        start += len(page)
    assert auditor.findings == []
    sth = verify_tree_head(
        await ok(kclient, "/api/v1/transparency/sth"), app[SECRETS].log_pk, now=clock()
    )
    auditor.check_head(sth)
    # an end beyond the log is cut at the log's size
    body = parse_canonical(await ok(kclient, "/api/v1/transparency/leaves?start=8&end=100"))
    assert [b64d(x) for x in body["leaves"]] == all_leaves[8:]
    assert parse_leaf(all_leaves[0])["type"] == "server_key"


async def test_leaves_pages_are_capped(kclient: Client) -> None:
    app = kclient.app
    people = [account(f"page-{i}") for i in range(MAX_LEAVES_PAGE + 5)]
    async with app[DB].write() as conn:
        for p in people:
            await app[KEYLOG].append(
                conn, subject=p.id, type="identity", body=p.identity, now=app[CLOCK]()
            )
    body = parse_canonical(
        await ok(kclient, f"/api/v1/transparency/leaves?start=3&end={MAX_LEAVES_PAGE + 6}")
    )
    assert len(body["leaves"]) == MAX_LEAVES_PAGE
    body = parse_canonical(
        await ok(kclient, f"/api/v1/transparency/leaves?start={MAX_LEAVES_PAGE + 3}&end=9999999")
    )
    assert len(body["leaves"]) == 3


# --- bad requests --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "missing-parameter"),
        ("index=0", "missing-parameter"),
        ("index=0&size=1&extra=1", "unknown-parameter"),
        ("index=-1&size=1", "invalid-parameter"),
        ("index=01&size=2", "invalid-parameter"),
        ("index=+1&size=2", "invalid-parameter"),
        ("index=1.0&size=2", "invalid-parameter"),
        ("index=0x1&size=2", "invalid-parameter"),
        ("index=&size=2", "invalid-parameter"),
        ("index=0&index=0&size=1", "invalid-parameter"),
        ("index=0&size=0", "invalid-parameter"),
        ("index=0&size=9007199254740992", "invalid-parameter"),
        ("index=0&size=99999999999999999999999", "invalid-parameter"),
        ("index=%EF%BC%91&size=2", "invalid-parameter"),  # a full-width digit
        ("index=1&size=1", "index-out-of-range"),
        ("index=0&size=9007199254740991", "beyond-log"),
        ("index=0&size=4", "beyond-log"),
    ],
)
async def test_bad_inclusion_queries(kclient: Client, query: str, code: str) -> None:
    await grow(kclient, 2, sign_each=False)
    await problem(kclient, f"/api/v1/transparency/inclusion?{query}", 400, code)


async def test_bad_proof_and_leaves_queries(kclient: Client) -> None:
    await grow(kclient, 5, sign_each=False)  # size 6; signed heads: 1 only
    base = "/api/v1/transparency"
    await problem(kclient, f"{base}/consistency?first=0&second=1", 400, "invalid-parameter")
    await problem(kclient, f"{base}/consistency?first=2&second=1", 400, "first-after-second")
    await problem(kclient, f"{base}/consistency?first=1&second=7", 400, "beyond-log")
    await problem(kclient, f"{base}/consistency?first=1", 400, "missing-parameter")
    # sizes no head was signed for (other than the current size) are not served
    await problem(kclient, f"{base}/consistency?first=3&second=6", 404, "unknown-tree-size")
    await problem(kclient, f"{base}/inclusion?index=0&size=3", 404, "unknown-tree-size")
    await ok(kclient, f"{base}/consistency?first=1&second=6")
    await ok(kclient, f"{base}/inclusion?index=5&size=6")
    await problem(kclient, f"{base}/leaves?start=3&end=3", 400, "empty-range")
    await problem(kclient, f"{base}/leaves?start=6&end=7", 400, "beyond-log")
    await problem(kclient, f"{base}/leaves?start=a&end=7", 400, "invalid-parameter")
    await problem(kclient, f"{base}/sth?x=1", 400, "unknown-parameter")
    await problem(kclient, f"{base}/sth", 405, "method-not-allowed", method="POST")


async def test_unknown_and_malformed_subjects(kclient: Client) -> None:
    await problem(kclient, "/api/v1/keys/" + account("nobody").id, 404, "unknown-subject")
    for bad in ("short", "A" * 23, "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAA+A", "%00" * 22):
        await problem(kclient, f"/api/v1/keys/{bad}", 400, "invalid-subject")
    await problem(kclient, "/api/v1/keys/" + account("x").id + "?a=1", 400, "unknown-parameter")


# --- POST /api/v1/keys ---------------------------------------------------------------------------
async def post(client: Client, token: str | None, body: Any, raw: bytes | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await client.post("/api/v1/keys", data=raw if raw is not None else cj(body),
                             headers=headers)  # fmt: skip


async def test_publishing_keys_over_http(
    kclient: Client, tokens: Sessions, clock: FakeClock
) -> None:
    app = kclient.app
    alice, bob = account("alice"), account("bob")
    for who in (alice, bob):
        async with app[DB].write() as conn:
            await app[KEYLOG].append(
                conn, subject=who.id, type="identity", body=who.identity, now=clock()
            )
    token = await tokens.token(alice)
    key = alice.encryption()
    resp = await post(kclient, token, {"type": "key", "body": key})
    assert resp.status == 201, await resp.text()
    assert parse_canonical(await resp.read()) == {"index": 3, "seq": 1}
    chain = verify_keys_response(
        await ok(kclient, f"/api/v1/keys/{alice.id}"), alice.id, app[SECRETS].log_pk, now=clock()
    )
    head = chain.head
    rotated = alice.rotate(NOW + 1)
    resp = await post(
        kclient, token, {"type": "identity", "body": rotated, "seq": 2, "prev": head["hash"]}
    )
    assert resp.status == 201, await resp.text()

    bob_key = bob.encryption()
    async with app[DB].write() as conn:
        await app[KEYLOG].append(conn, subject=bob.id, type="key", body=bob_key, now=clock())
    bobs_key_for_alice = certs.sign_cert({**bob_key["cert"], "subject": alice.id}, alice.sign_seed)
    before = await ok(kclient, "/api/v1/transparency/leaves?start=0&end=100")
    key2 = alice.encryption()
    cases: list[tuple[str | None, Any, bytes | None, int, str]] = [
        (None, {"type": "key", "body": key2}, None, 401, "unauthorized"),
        ("wrong", {"type": "key", "body": key2}, None, 401, "invalid-token"),
        (token, None, b'{"body":{},"type":"key"} ', 400, "non-canonical"),
        (token, None, b"[1,", 400, "non-canonical"),
        (token, ["key"], None, 400, "malformed"),
        (token, {"type": "key"}, None, 400, "malformed"),
        (token, {"type": "key", "body": key2, "x": 1}, None, 400, "malformed"),
        (token, {"type": "nope", "body": key2}, None, 400, "malformed"),
        (token, {"type": "key", "body": key2, "seq": 3}, None, 400, "malformed"),
        (token, {"type": "key", "body": key2, "seq": 3, "prev": None}, None, 400, "malformed"),
        (token, {"type": "key", "body": key2, "subject": "x"}, None, 400, "malformed"),
        (
            token,
            {"type": "key", "body": {**key2, "sig": b64e(bytes(64))}},
            None,
            400,
            "bad-signature",
        ),
        (token, {"type": "key", "body": {"cert": 1}}, None, 400, "invalid-event"),
        (token, {"type": "key", "body": bob.encryption()}, None, 403, "not-your-subject"),
        (
            token,
            {"type": "key", "body": key2, "seq": 1, "prev": head["hash"]},
            None,
            409,
            "wrong-seq",
        ),
        (token, {"type": "key", "body": bobs_key_for_alice}, None, 409, "kid-in-use"),
        (token, {"type": "identity", "body": alice.identity}, None, 400, "identity-not-linked"),
    ]
    for tok, body, raw, status, code in cases:
        resp = await post(kclient, tok, body, raw)
        assert resp.status == status, (code, await resp.text())
        assert (await resp.json())["type"] == "urn:postbox:problem:" + code
    resp = await kclient.post(
        "/api/v1/keys", data=b"x" * (app[SETTINGS].max_json_bytes + 1),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert resp.status == 413
    assert await ok(kclient, "/api/v1/transparency/leaves?start=0&end=100") == before
    await check_stored_log(app[DB], app[SECRETS].log_pk)


async def test_an_org_admin_publishes_over_http(
    kclient: Client, tokens: Sessions, clock: FakeClock
) -> None:
    app = kclient.app
    o = org("nbg")
    async with app[DB].write() as conn:
        await app[KEYLOG].append(conn, subject=o.id, type="org_root", body=o.root, now=clock())
        await app[KEYLOG].append(
            conn, subject=o.admin.id, type="identity", body=o.admin.identity, now=clock()
        )
    resp = await post(
        kclient, await tokens.token(o.admin), {"type": "admin_key", "body": o.admin.identity}
    )
    assert resp.status == 201, await resp.text()
    assert parse_canonical(await resp.read())["seq"] == 1
    resp = await post(kclient, await tokens.token(o.admin), {"type": "org_root", "body": o.root})
    assert resp.status == 403
