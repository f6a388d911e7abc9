// The client side of the transparency log (PROTOCOL.md §7) in JavaScript: every case and
// reject of tests/vectors/transparency.json, plus unit checks of the signing side.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as t from '../../postbox/webclient/static/js/crypto/transparency.js';
import * as logevents from '../../postbox/webclient/static/js/crypto/logevents.js';
import * as keystate from '../../postbox/webclient/static/js/crypto/keystate.js';
import * as monitor from '../../postbox/webclient/static/js/crypto/monitor.js';
import * as merkle from '../../postbox/webclient/static/js/crypto/merkle.js';
import * as domain from '../../postbox/webclient/static/js/crypto/domain.js';
import { b64d, b64e, cj, utf8 } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { CryptoError } from '../../postbox/webclient/static/js/crypto/errors.js';
import { concatBytes, H, signKeypair } from '../../postbox/webclient/static/js/crypto/primitives.js';

const VECTORS = JSON.parse(readFileSync(new URL('../vectors/transparency.json', import.meta.url), 'utf8'));
const { cases: CASES, reject: REJECTS } = VECTORS;
const path = (p) => (p === null ? null : p.map((x) => b64d(x)));
const orgRootsOf = (c) => Object.fromEntries(c.org_roots.map((r) => [r.org, r]));

function replaySubject(c, orgs) {
  const verified = logevents.verifyKeysResponse(
    c.response, c.subject, b64d(c.log_pk), { now: c.now },
  );
  if (c.indices) assert.deepEqual(verified.indices, c.indices);
  return keystate.replay(verified.events, {
    orgRoots: orgRootsOf(c),
    orgs,
    acceptedIdentities: c.accepted_identities ?? [],
    pinnedIdentity: c.pinned_identity ?? null,
  });
}

function allOrgs() {
  const out = {};
  for (const c of CASES) {
    if (c.check === 'subject' && c.state.kind === 'org') out[c.subject] = replaySubject(c, out);
  }
  return out;
}

function errorName(fn) {
  try {
    fn();
  } catch (e) {
    if (e instanceof CryptoError) return e.name;
    throw e;
  }
  return null;
}

/** The same summary as gen_transparency.summarize. */
function summarize(state, now) {
  let current = null;
  try {
    current = state.currentEncryption(now);
  } catch {
    current = null;
  }
  const superseded = {};
  for (const e of [...state.identities, ...state.encryption, ...state.admins]) {
    if (e.supersededAt !== null) superseded[e.cert.kid] = e.supersededAt;
  }
  return {
    kind: state.kind,
    org: state.org,
    identity: state.identity === null ? null : state.identity.kid,
    identities: state.identities.map((e) => e.cert.kid),
    encryption: current === null ? null : current.kid,
    encryption_error: errorName(() => state.currentEncryption(now)),
    encryption_keys: state.encryption.map((e) => e.cert.kid),
    superseded,
    revoked: state.revocations.map((r) => r.kid),
    admins: state.admins.map((e) => e.cert.kid),
    members: [...state.members].sort(),
    rotation_pending: state.rotationPending,
    server_keys: [...state.serverKeys],
    head: state.head,
  };
}

function run(c) {
  switch (c.check) {
    case 'sth':
      return t.verifySth(c.served, b64d(c.log_pk), { now: c.now, last: c.last, proof: path(c.proof) });
    case 'compare_heads':
      return t.compareHeads(c.message_sth, c.own, path(c.proof));
    case 'subject': {
      const all = allOrgs();
      const orgs = Object.fromEntries((c.orgs ?? Object.keys(all)).map((o) => [o, all[o]]));
      return replaySubject(c, orgs);
    }
    case 'self_check':
      return monitor.selfCheck(c.events, c.remembered, c.own_kids);
    case 'audit': {
      const auditor = new monitor.Auditor();
      auditor.extend(c.leaves.map((x) => b64d(x)));
      return auditor;
    }
    default:
      throw new Error(`unknown check ${c.check}`);
  }
}

for (const c of CASES) {
  test(c.name, () => {
    const out = run(c);
    if (c.check === 'sth' || c.check === 'compare_heads') {
      assert.deepEqual(out, c.result);
    } else if (c.check === 'subject') {
      assert.deepEqual(summarize(out, c.now), c.state);
      for (const v of c.valid_at) {
        const fn = {
          identity: (k, a) => out.identityValidAt(k, a),
          encryption: (k, a) => out.encryptionValidAt(k, a),
          admin: (k, a) => out.adminValidAt(k, a),
        }[v.use];
        assert.equal(errorName(() => fn(v.kid, v.at)), v.error, `${v.use} ${v.kid} at ${v.at}`);
        if (v.error === null) assert.equal(fn(v.kid, v.at).kid, v.kid);
      }
    } else if (c.check === 'self_check') {
      assert.deepEqual(out.head, c.head);
      assert.deepEqual(out.foreign, c.foreign);
      assert.equal(out.ok, c.foreign.length === 0);
    } else {
      assert.deepEqual(out.findings.map(({
        kind, index, subject, seq,
      }) => ({
        kind, index, subject, seq,
      })), c.findings);
      assert.equal(b64e(out.root()), c.root);
      if (c.sth !== null) out.checkHead(c.sth);
    }
  });
}

for (const c of REJECTS) {
  test(`reject: ${c.name}`, () => {
    assert.throws(() => run(c), (e) => {
      assert.equal(e.name, c.error, e.message);
      return true;
    });
  });
}

test('the tree head signature and every event rebuild exactly', () => {
  const first = CASES[0];
  const served = t.signTreeHead(first.served.sth, b64d(first.log_seed));
  assert.deepEqual(served, first.served);
  assert.deepEqual(concatBytes(domain.STH, cj(served.sth)), b64d(first.signed));
  for (const c of CASES.filter((x) => x.check === 'subject')) {
    let previous = null;
    for (const entry of c.response.events) {
      const event = logevents.parseLeaf(b64d(entry.leaf));
      const rebuilt = logevents.nextEvent(previous, {
        subject: event.subject, type: event.type, ts: event.ts, body: event.body,
      });
      assert.deepEqual(logevents.eventLeaf(rebuilt), b64d(entry.leaf));
      previous = rebuilt;
    }
  }
});

// --- unit checks on a fresh log ----------------------------------------------------------
const subjectCase = (name) => CASES.find((c) => c.name === name);

test('tree heads: age window, wire bytes, advancing', () => {
  const logSeed = H(utf8('test/transparency/log'), 32);
  const logPk = signKeypair(logSeed).pk;
  const tree = new merkle.MemoryTree();
  for (let i = 0; i < 9; i += 1) tree.append(utf8(`leaf ${i}`));
  const now = 1_767_225_600_000;
  const served = t.signTreeHead(t.makeTreeHead({ size: 9, root: tree.root(), ts: now }), logSeed);
  assert.deepEqual(t.verifyTreeHead(cj(served), logPk, { now }), served.sth);
  t.verifyTreeHead(served, logPk, { now: now + 24 * 3600 * 1000 });
  assert.throws(() => t.verifyTreeHead(served, logPk, { now: now + 24 * 3600 * 1000 + 1 }),
    (e) => e.name === 'StaleTreeHead');
  assert.throws(() => t.verifyTreeHead(served, logPk, { now: now - 5 * 60_000 - 1 }),
    (e) => e.name === 'StaleTreeHead');
  assert.throws(() => t.verifyTreeHead(utf8(JSON.stringify(served, null, 1)), logPk, { now }),
    (e) => e.name === 'NonCanonical');
  const small = t.makeTreeHead({ size: 4, root: tree.root(4), ts: now - 1 });
  assert.deepEqual(t.advance(small, served.sth, tree.consistencyProof(4, 9)), served.sth);
  assert.throws(() => t.advance(small, served.sth), (e) => e.name === 'BadProof');
  assert.throws(() => t.advance(small, served.sth, tree.consistencyProof(5, 9)),
    (e) => e.name === 'ForkDetected');
  const resp = { first: 4, second: 9, path: tree.consistencyProof(4, 9).map((p) => b64e(p)) };
  assert.deepEqual(t.consistencyPath(resp, 4, 9), tree.consistencyProof(4, 9));
  assert.throws(() => t.consistencyPath(resp, 4, 8), (e) => e.name === 'BadProof');
  const inc = {
    index: 3, size: 9, leaf: b64e(utf8('leaf 3')), path: tree.inclusionProof(3, 9).map((p) => b64e(p)),
  };
  assert.deepEqual(t.verifyInclusionResponse(inc, served.sth), utf8('leaf 3'));
  assert.throws(() => t.verifyInclusionResponse({ ...inc, index: 4 }, served.sth),
    (e) => e.name === 'BadProof');
});

test('events: prev is the RFC 9162 leaf hash, shapes are closed', () => {
  const c = subjectCase('subject: citizen (rotated)');
  const [e0, e1] = c.response.events.map((x) => logevents.parseLeaf(b64d(x.leaf)));
  assert.deepEqual(b64d(e1.prev), merkle.leafHash(cj(e0)));
  const bad = structuredClone(e1);
  bad.type = 'revoke';
  assert.throws(() => logevents.parseLeaf(cj(bad)), (e) => e.name === 'MalformedObject');
  bad.type = 'rename';
  assert.throws(() => logevents.parseLeaf(cj(bad)), (e) => e.name === 'MalformedObject');
  const late = structuredClone([e0, e1]);
  late[1].ts = late[0].ts - 1;
  assert.throws(() => logevents.checkChain(late), (e) => e.name === 'BrokenChain');
});

test('self-check from scratch lists every event as foreign', () => {
  const c = subjectCase('subject: citizen (rotated)');
  const events = c.response.events.map((x) => logevents.parseLeaf(b64d(x.leaf)));
  const check = monitor.selfCheck(events, null, []);
  assert.deepEqual(check.foreign.map((f) => f.seq), [0, 1, 2, 3, 4, 5]);
  assert.equal(check.ok, false);
});

test('auditor: head checks', () => {
  const c = CASES.find((x) => x.name === 'audit: the good log');
  const auditor = new monitor.Auditor();
  auditor.extend(c.leaves.slice(0, 5).map((x) => b64d(x)));
  assert.throws(() => auditor.checkHead(c.sth), RangeError);
  auditor.extend(c.leaves.slice(5).map((x) => b64d(x)));
  auditor.checkHead(c.sth);
  assert.throws(() => auditor.checkHead({ ...c.sth, root: b64e(new Uint8Array(32)) }),
    (e) => e.name === 'ForkDetected');
  assert.deepEqual(monitor.auditLeaves(c.leaves.map((x) => b64d(x))), []);
});
