// certs.js: the same coverage as tests/crypto/test_certs.py, lighter where it would repeat.
// Small-order Ed25519 and low-order X25519 keys are computed here from the curve equations
// with BigInt (not copied from a list).
import test from 'node:test';
import assert from 'node:assert/strict';
import * as certs from '../../postbox/webclient/static/js/crypto/certs.js';
import * as crockford from '../../postbox/webclient/static/js/crypto/crockford.js';
import * as domain from '../../postbox/webclient/static/js/crypto/domain.js';
import {
  b64d, b64e, cj, parseCanonical, utf8, MAX_SAFE_INTEGER,
} from '../../postbox/webclient/static/js/crypto/encoding.js';
import { CryptoError } from '../../postbox/webclient/static/js/crypto/errors.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import {
  H, boxKeypair, concatBytes, seal, sign, signKeypair,
} from '../../postbox/webclient/static/js/crypto/primitives.js';

const T0 = 1_700_000_000_000;
const DAY = 86_400_000;
const YEAR = 365 * DAY;

// --- helpers -------------------------------------------------------------------------------
const seed = (label) => H(utf8(`test-seed/certs/${label}`));
const newId = (label) => b64e(H(utf8(`test-id/certs/${label}`), 16));
const signPk = (label) => signKeypair(seed(label)).pk;
const clone = (v) => structuredClone(v);
const roundTrip = (v) => parseCanonical(cj(v));

function throwsName(fn, name, msg) {
  assert.throws(fn, (e) => {
    assert.equal(e.name, name, `${msg ?? ''}: got ${e.name}: ${e.message}`);
    return true;
  }, msg);
}

function flipB64(text, index, bit = 0) {
  const raw = b64d(text);
  raw[index] ^= 1 << bit;
  return b64e(raw);
}

/** Every one-change variant of a JSON value (mirrors mutations() in test_certs.py). */
function* mutations(value, path = '') {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      for (const [p, v] of mutations(value[i], `${path}[${i}]`)) {
        const out = [...value];
        out[i] = v;
        yield [p, out];
      }
    }
  } else if (value !== null && typeof value === 'object') {
    for (const k of Object.keys(value)) {
      for (const [p, v] of mutations(value[k], `${path}.${k}`)) yield [p, { ...value, [k]: v }];
    }
  } else if (typeof value === 'boolean') {
    yield [path, !value];
  } else if (typeof value === 'number') {
    yield [path, value + 1];
    if (value > 0) yield [path, value - 1];
  } else if (value === null) {
    yield [path, 1];
  } else if (typeof value === 'string') {
    let raw = new Uint8Array(0);
    try {
      raw = b64d(value);
    } catch {
      // not b64
    }
    if (raw.length) {
      for (let i = 0; i < raw.length; i += 1) yield [`${path}#${i}`, flipB64(value, i)];
    } else {
      yield [path, `${value}x`];
    }
  }
}

function assertEveryMutationRejected(signed, check) {
  check(clone(signed));
  let n = 0;
  for (const [path, variant] of mutations(signed)) {
    let accepted = false;
    try {
      check(variant);
      accepted = true;
    } catch (e) {
      assert.ok(e instanceof CryptoError, `${path}: ${e.name} is not a CryptoError`);
    }
    assert.ok(!accepted, `accepted a change at ${path}`);
    n += 1;
  }
  return n;
}

// --- Edwards25519 / Curve25519 arithmetic with BigInt -------------------------------------
const P = 2n ** 255n - 19n;
const mod = (a) => ((a % P) + P) % P;
function powMod(b, e) {
  let r = 1n;
  let x = mod(b);
  let k = e;
  while (k > 0n) {
    if (k & 1n) r = (r * x) % P;
    x = (x * x) % P;
    k >>= 1n;
  }
  return r;
}
const inv = (a) => powMod(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = powMod(2n, (P - 1n) / 4n);
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const toInt = (b) => b.reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
function toBytes(n) {
  const out = new Uint8Array(32);
  let x = n;
  for (let i = 0; i < 32; i += 1) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}
function recoverX(y, sign) {
  const x2 = mod((y * y - 1n) * inv(D * y * y + 1n));
  if (x2 === 0n) return sign ? null : 0n;
  let x = powMod(x2, (P + 3n) / 8n);
  if (mod(x * x - x2) !== 0n) x = (x * SQRT_M1) % P;
  if (mod(x * x - x2) !== 0n) return null;
  return (x & 1n) !== BigInt(sign) ? P - x : x;
}
function edDecode(b) {
  const n = toInt(b);
  const y = n & ((1n << 255n) - 1n);
  return [recoverX(y, Number(n >> 255n)), y];
}
const edEncode = ([x, y]) => toBytes(y | ((x & 1n) << 255n));
function edAdd([x1, y1], [x2, y2]) {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + x2 * y1) * inv(1n + t)), mod((y1 * y2 + x1 * x2) * inv(1n - t))];
}
const ORDER8 = edDecode(sodiumHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'));
const TORSION = [[0n, 1n]];
for (let k = 1; k < 8; k += 1) TORSION.push(edAdd(TORSION[k - 1], ORDER8));

function sodiumHex(hex) {
  return Uint8Array.from(hex.match(/../g).map((h) => parseInt(h, 16)));
}
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

function smallOrderEd25519() {
  const identityWithSign = new Uint8Array(32);
  identityWithSign[0] = 1;
  identityWithSign[31] = 0x80;
  return [
    ...TORSION.map(edEncode),
    toBytes(P), toBytes(P + 1n), identityWithSign, toBytes(P - 1n + (1n << 255n)),
  ];
}

function lowOrderX25519() {
  const us = new Set();
  for (const [, y] of TORSION) if (y !== 1n) us.add(mod((1n + y) * inv(1n - y)));
  for (const u of [P - 1n, P, P + 1n]) us.add(u);
  const enc = [...us].map(toBytes);
  return [...enc, ...[...us].map((u) => toBytes(u | (1n << 255n)))];
}

test('torsion points are what they claim', () => {
  const id = edEncode([0n, 1n]);
  let p = ORDER8;
  for (let i = 1; i < 8; i += 1) p = edAdd(p, ORDER8);
  assert.deepEqual(edEncode(p), id);
  assert.equal(new Set(TORSION.map((t) => hex(edEncode(t)))).size, 8);
  assert.ok(lowOrderX25519().map(hex)
    .includes('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'));
});

// --- the world -----------------------------------------------------------------------------
function makeParty(label, kind, org, rootSeed) {
  const account = newId(label);
  const s = seed(`${label}/identity`);
  let identity = certs.signCert(certs.makeCert({
    subject: account, kind, org, use: 'sign', pk: signKeypair(s).pk, created: T0,
  }), s);
  if (rootSeed) identity = certs.orgCertify(identity, rootSeed);
  const encSk = seed(`${label}/encrypt`);
  const encryption = certs.signCert(certs.makeCert({
    subject: account, kind, org, use: 'encrypt', pk: boxKeypair(encSk).pk, created: T0, expires: T0 + YEAR,
  }), s);
  return {
    account, seed: s, identity, idCert: identity.cert, encSk, encryption, encCert: encryption.cert,
    encPk: b64d(encryption.cert.pk),
  };
}

const ORG_A = newId('org-a');
const ORG_B = newId('org-b');
const ROOT_A = certs.makeOrgRoot({
  org: ORG_A, name: 'Stadt Nürnberg – Ausländerbehörde', rootSeed: seed('root-a'), created: T0,
});
const ROOT_B = certs.makeOrgRoot({ org: ORG_B, name: 'Landkreis B', rootSeed: seed('root-b'), created: T0 });
const W = {
  citizen: makeParty('citizen', 'citizen', null, null),
  citizen2: makeParty('citizen2', 'citizen', null, null),
  caseworker: makeParty('caseworker', 'caseworker', ORG_A, seed('root-a')),
  caseworker2: makeParty('caseworker2', 'caseworker', ORG_A, seed('root-a')),
  connector: makeParty('connector', 'connector', ORG_A, seed('root-a')),
  admin: makeParty('admin', 'admin', ORG_A, seed('root-a')),
  adminB: makeParty('admin-b', 'admin', ORG_B, seed('root-b')),
};
const TEAM = newId('team');
const TEAM_SK = seed('team/encrypt');
const TEAM_CERT = certs.signCert(certs.makeCert({
  subject: TEAM, kind: 'team', org: ORG_A, use: 'encrypt', pk: boxKeypair(TEAM_SK).pk, created: T0, expires: T0 + YEAR,
}), W.admin.seed);
const rootA = ROOT_A.org_root;
const rootB = ROOT_B.org_root;

// === makeCert / checkCert =================================================================
test('makeCert derives kid and alg', () => {
  const pk = signPk('x');
  assert.deepEqual(certs.makeCert({
    subject: newId('x'), kind: 'citizen', org: null, use: 'sign', pk, created: T0,
  }), {
    v: 1,
    subject: newId('x'),
    kind: 'citizen',
    org: null,
    use: 'sign',
    alg: 'ed25519',
    kid: deriveKid('sign', pk),
    pk: b64e(pk),
    created: T0,
    expires: null,
  });
  const encPk = boxKeypair(seed('x')).pk;
  const enc = certs.makeCert({
    subject: newId('x'), kind: 'citizen', org: null, use: 'encrypt', pk: encPk, created: T0, expires: T0 + 1,
  });
  assert.equal(enc.alg, 'x25519-sealbox');
  assert.equal(enc.kid, deriveKid('encrypt', encPk));
  assert.deepEqual(certs.certPk(enc), encPk);
});

const cert = (changes) => ({ ...clone(W.caseworker.idCert), ...changes });
const enc = (changes) => ({ ...clone(W.caseworker.encCert), ...changes });

test('checkCert rejects every broken rule', () => {
  const cases = [
    [cert({ alg: 'x25519-sealbox' }), 'CertificateInvalid'],
    [enc({ alg: 'ed25519' }), 'CertificateInvalid'],
    [cert({ kid: deriveKid('sign', signPk('other')) }), 'KeyIdMismatch'],
    [cert({ kid: deriveKid('encrypt', certs.certPk(W.caseworker.idCert)) }), 'KeyIdMismatch'],
    [cert({ kind: 'team' }), 'CertificateInvalid'],
    [cert({ org: null }), 'CertificateInvalid'],
    [cert({ kind: 'admin', org: null }), 'CertificateInvalid'],
    [enc({ kind: 'team', org: null }), 'CertificateInvalid'],
    [enc({ expires: null }), 'CertificateInvalid'],
    [enc({ expires: T0 }), 'CertificateInvalid'],
    [enc({ expires: T0 + certs.MAX_ENCRYPT_VALIDITY_MS + 1 }), 'CertificateInvalid'],
    [enc({ expires: T0 + 3 * YEAR }), 'CertificateInvalid'],
    [cert({ expires: T0 }), 'CertificateInvalid'],
    [cert({ v: 2 }), 'MalformedObject'],
    [cert({ v: true }), 'MalformedObject'],
    [cert({ v: '1' }), 'MalformedObject'],
    [cert({ use: 'verify' }), 'MalformedObject'],
    [cert({ created: -1 }), 'MalformedObject'],
    [cert({ created: 1.5 }), 'MalformedObject'],
    [cert({ created: MAX_SAFE_INTEGER + 1 }), 'MalformedObject'],
    [cert({ created: `${T0}` }), 'MalformedObject'],
    [cert({ subject: 'A'.repeat(21) }), 'MalformedObject'],
    [cert({ pk: b64e(new Uint8Array(31)) }), 'MalformedObject'],
    [cert({ pk: `${W.caseworker.idCert.pk}=` }), 'MalformedObject'],
    [cert({ extra: 1 }), 'MalformedObject'],
    [(() => { const c = cert({}); delete c.expires; return c; })(), 'MalformedObject'],
    [[], 'MalformedObject'],
    [null, 'MalformedObject'],
  ];
  for (const [c, name] of cases) throwsName(() => certs.checkCert(c), name, JSON.stringify(c));
  assert.ok(certs.checkCert(enc({ expires: T0 + 731 * DAY })));
  assert.ok(certs.checkCert(cert({ expires: T0 + 1 })));
});

test('small-order Ed25519 identity keys are rejected at import', () => {
  for (const pk of smallOrderEd25519()) {
    throwsName(() => certs.checkCert(cert({ pk: b64e(pk), kid: deriveKid('sign', pk) })), 'InvalidKey', hex(pk));
    throwsName(() => certs.makeCert({
      subject: newId('x'), kind: 'citizen', org: null, use: 'sign', pk, created: T0,
    }), 'InvalidKey');
  }
  const good = edDecode(signPk('x'));
  for (const t of TORSION.slice(1)) {
    const pk = edEncode(edAdd(good, t)); // mixed order: on the curve, outside the subgroup
    throwsName(() => certs.checkCert(cert({ pk: b64e(pk), kid: deriveKid('sign', pk) })), 'InvalidKey');
  }
});

test('low-order X25519 encryption keys are rejected at import', () => {
  for (const pk of lowOrderX25519()) {
    const c = enc({ pk: b64e(pk), kid: deriveKid('encrypt', pk) });
    throwsName(() => certs.checkCert(c), 'InvalidKey', hex(pk));
    const signed = { ...W.caseworker.encryption, cert: c };
    throwsName(() => certs.verifyEncryptionCert(signed, W.caseworker.idCert), 'InvalidKey');
  }
});

test('a signature with S + L is rejected', () => {
  const sig = b64d(W.citizen.identity.sig);
  const s = toInt(sig.slice(32));
  assert.ok(s < L);
  const bad = concatBytes(sig.slice(0, 32), toBytes(s + L));
  throwsName(() => certs.verifyIdentityCert({ ...W.citizen.identity, sig: b64e(bad) }), 'BadSignature');
});

// === identity certificates ================================================================
test('identity certificates verify', () => {
  assert.deepEqual(certs.verifyIdentityCert(W.citizen.identity), W.citizen.idCert);
  for (const p of [W.caseworker, W.connector, W.admin]) {
    assert.deepEqual(certs.verifyIdentityCert(p.identity, rootA), p.idCert);
    assert.deepEqual(certs.verifyIdentityCert(roundTrip(p.identity), roundTrip(rootA)), p.idCert);
  }
  assert.deepEqual(certs.verifyIdentityCert(W.adminB.identity, rootB), W.adminB.idCert);
  const s = W.citizen.identity;
  assert.deepEqual(Object.keys(s).sort(), ['by', 'cert', 'org_sig', 'prev', 'prev_sig', 'sig']);
  assert.deepEqual(b64d(s.sig), sign(W.citizen.seed, concatBytes(utf8('postbox/v1/keycert'), cj(s.cert))));
  const cw = W.caseworker.identity;
  assert.deepEqual(b64d(cw.org_sig), sign(seed('root-a'), concatBytes(utf8('postbox/v1/orgcert'), cj(cw.cert))));
});

test('identity certificate rejections', () => {
  const c = W.citizen;
  throwsName(() => certs.verifyIdentityCert(c.encryption), 'CertificateInvalid');
  const other = certs.signCert(c.idCert, W.citizen2.seed);
  throwsName(() => certs.verifyIdentityCert(other), 'CertificateInvalid');
  throwsName(() => certs.verifyIdentityCert({ ...other, by: c.idCert.kid }), 'BadSignature');
  throwsName(() => certs.verifyIdentityCert({ ...c.identity, prev: c.idCert.kid }), 'CertificateInvalid');
  for (const p of [W.caseworker, W.connector, W.admin]) {
    throwsName(() => certs.verifyIdentityCert({ ...p.identity, org_sig: null }, rootA), 'OrgCertificationMissing');
    throwsName(() => certs.verifyIdentityCert(p.identity), 'OrgCertificationMissing');
  }
  const byB = certs.orgCertify(certs.signCert(W.caseworker.idCert, W.caseworker.seed), seed('root-b'));
  throwsName(() => certs.verifyIdentityCert(byB, rootB), 'OrgCertificationMissing');
  throwsName(() => certs.verifyIdentityCert(byB, rootA), 'BadSignature');
  const fake = certs.makeOrgRoot({ org: ORG_A, name: 'A', rootSeed: seed('fake'), created: T0 });
  throwsName(() => certs.verifyIdentityCert(W.caseworker.identity, fake.org_root), 'BadSignature');
  const citizenWithOrgSig = certs.orgCertify(c.identity, seed('root-a'));
  throwsName(() => certs.verifyIdentityCert(citizenWithOrgSig), 'OrgCertificationMissing');
  throwsName(() => certs.verifyIdentityCert(citizenWithOrgSig, rootA), 'OrgCertificationMissing');
  const cw = W.caseworker.identity;
  throwsName(() => certs.verifyIdentityCert({ ...cw, org_sig: cw.sig }, rootA), 'BadSignature');
  for (const bad of [{ ...c.identity, extra: null }, { ...c.identity, sig: b64e(new Uint8Array(63)) },
    { ...c.identity, by: null }, 'cert']) {
    throwsName(() => certs.verifyIdentityCert(bad), 'MalformedObject');
  }
});

test('identity: every signature byte flip and every change is rejected', () => {
  const cw = W.caseworker.identity;
  for (const member of ['sig', 'org_sig']) {
    for (let i = 0; i < 64; i += 1) {
      throwsName(() => certs.verifyIdentityCert({ ...cw, [member]: flipB64(cw[member], i) }, rootA), 'BadSignature');
    }
  }
  assert.ok(assertEveryMutationRejected(cw, (s) => certs.verifyIdentityCert(s, rootA)) > 200);
  assertEveryMutationRejected(W.citizen.identity, (s) => certs.verifyIdentityCert(s));
});

// === rotation =============================================================================
const NEW_SEED = seed('citizen/identity-2');
const NEW_CERT = certs.makeCert({
  subject: W.citizen.account, kind: 'citizen', org: null, use: 'sign', pk: signKeypair(NEW_SEED).pk, created: T0 + DAY,
});
const LINKED = certs.linkRotation(certs.signCert(NEW_CERT, NEW_SEED), W.citizen.seed);

test('rotation links verify', () => {
  assert.equal(LINKED.prev, W.citizen.idCert.kid);
  assert.deepEqual(b64d(LINKED.prev_sig), sign(W.citizen.seed, concatBytes(utf8('postbox/v1/rotate'), cj(NEW_CERT))));
  assert.deepEqual(certs.verifyIdentityCert(LINKED), NEW_CERT);
  assert.equal(certs.verifyRotation(LINKED, W.citizen.idCert), undefined);
  assertEveryMutationRejected(LINKED, (s) => {
    certs.verifyIdentityCert(s);
    certs.verifyRotation(s, W.citizen.idCert);
  });
});

test('rotation rejections', () => {
  const old = W.citizen.idCert;
  throwsName(() => certs.verifyRotation({ ...LINKED, prev: null, prev_sig: null }, old), 'CertificateInvalid');
  throwsName(() => certs.verifyRotation(LINKED, W.citizen2.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyRotation(LINKED, W.citizen.encCert), 'CertificateInvalid');
  const evilSeed = seed('evil');
  const evil = certs.makeCert({
    subject: W.citizen.account, kind: 'citizen', org: null, use: 'sign', pk: signKeypair(evilSeed).pk, created: T0,
  });
  const across = certs.linkRotation(certs.signCert(evil, evilSeed), W.citizen2.seed);
  throwsName(() => certs.verifyRotation(across, W.citizen2.idCert), 'CertificateInvalid');
  const wrongKey = sign(W.citizen2.seed, concatBytes(domain.ROTATE, cj(NEW_CERT)));
  throwsName(() => certs.verifyRotation({ ...LINKED, prev_sig: b64e(wrongKey) }, old), 'BadSignature');
  const wrongLabel = sign(W.citizen.seed, concatBytes(domain.KEYCERT, cj(NEW_CERT)));
  throwsName(() => certs.verifyRotation({ ...LINKED, prev_sig: b64e(wrongLabel) }, old), 'BadSignature');
});

// Mirrors of the strict xfails in test_certs.py: reported bugs, expected to fail until fixed.
test('a rotation link on an encryption cert is rejected', () => {
  const linked = certs.linkRotation(W.citizen.encryption, W.citizen.seed);
  throwsName(() => certs.verifyRotation(linked, W.citizen.idCert), 'CertificateInvalid');
});
test('makeCert with an unknown use throws a CryptoError', () => {
  throwsName(() => certs.makeCert({
    subject: newId('x'), kind: 'citizen', org: null, use: 'verify', pk: signPk('x'), created: T0,
  }), 'MalformedObject');
});
test('a schema whose enum or const is a JSON number is rejected', () => {
  throwsName(() => certs.checkProcedure(procedure({ schema: { enum: [1, 2] } })), 'MalformedObject');
  throwsName(() => certs.checkProcedure(procedure({ schema: { const: 3 } })), 'MalformedObject');
});
test('a too deeply nested schema is NonCanonical', () => {
  const deep = {};
  let node = deep;
  for (let i = 0; i < 20000; i += 1) {
    node.a = {};
    node = node.a;
  }
  throwsName(() => certs.checkProcedure(procedure({ schema: deep })), 'NonCanonical');
});
test('an encryption cert valid for 732 days is rejected', () => {
  throwsName(() => certs.checkCert(enc({ expires: T0 + 732 * DAY })), 'CertificateInvalid');
});

// === encryption and team certificates =====================================================
test('encryption certificates', () => {
  for (const p of [W.citizen, W.caseworker, W.admin]) {
    assert.deepEqual(certs.verifyEncryptionCert(p.encryption, p.idCert), p.encCert);
  }
  const c = W.citizen;
  throwsName(() => certs.verifyEncryptionCert(c.identity, c.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyEncryptionCert(TEAM_CERT, W.admin.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyEncryptionCert(c.encryption, c.encCert), 'CertificateInvalid');
  throwsName(() => certs.verifyEncryptionCert(c.encryption, W.citizen2.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyEncryptionCert(certs.signCert(c.encCert, W.citizen2.seed), W.citizen2.idCert), 'CertificateInvalid');
  const forged = { ...certs.signCert(c.encCert, W.citizen2.seed), by: c.idCert.kid };
  throwsName(() => certs.verifyEncryptionCert(forged, c.idCert), 'BadSignature');
  for (const m of ['org_sig', 'prev_sig']) {
    throwsName(() => certs.verifyEncryptionCert({ ...c.encryption, [m]: c.identity.sig }, c.idCert), 'CertificateInvalid');
  }
  for (const change of [{ subject: newId('someone') }, { kind: 'citizen' }, { org: ORG_B }]) {
    const identity = { ...W.caseworker.idCert, ...change };
    throwsName(() => certs.verifyEncryptionCert(W.caseworker.encryption, identity), 'CertificateInvalid');
  }
  assertEveryMutationRejected(c.encryption, (s) => certs.verifyEncryptionCert(s, c.idCert));
});

test('team certificates', () => {
  assert.deepEqual(certs.verifyTeamCert(TEAM_CERT, W.admin.idCert), TEAM_CERT.cert);
  const body = TEAM_CERT.cert;
  throwsName(() => certs.verifyTeamCert(W.citizen.encryption, W.citizen.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyTeamCert(certs.signCert(body, W.caseworker.seed), W.caseworker.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyTeamCert(TEAM_CERT, W.admin.encCert), 'CertificateInvalid');
  throwsName(() => certs.verifyTeamCert(certs.signCert(body, W.adminB.seed), W.adminB.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyTeamCert({ ...TEAM_CERT, org_sig: TEAM_CERT.sig }, W.admin.idCert), 'CertificateInvalid');
  throwsName(() => certs.makeCert({
    subject: TEAM, kind: 'team', org: ORG_A, use: 'sign', pk: signPk('team'), created: T0,
  }), 'CertificateInvalid');
  assertEveryMutationRejected(TEAM_CERT, (s) => certs.verifyTeamCert(s, W.admin.idCert));
});

// === validity =============================================================================
test('checkValidAt', () => {
  const c = W.citizen.encCert;
  certs.checkValidAt(c, T0);
  certs.checkValidAt(c, T0 + YEAR - 1);
  throwsName(() => certs.checkValidAt(c, T0 - 1), 'CertificateExpired');
  throwsName(() => certs.checkValidAt(c, T0 + YEAR), 'CertificateExpired');
  certs.checkValidAt(W.citizen.idCert, MAX_SAFE_INTEGER);
  const revs = [{
    v: 1, subject: c.subject, kid: c.kid, at: T0 + 10, reason: 'compromised',
  }];
  certs.checkValidAt(c, T0 + 9, revs);
  throwsName(() => certs.checkValidAt(c, T0 + 10, revs), 'CertificateRevoked');
  certs.checkValidAt(c, T0 + 20, [{ ...revs[0], kid: W.citizen.idCert.kid }, { ...revs[0], subject: newId('x') }]);
  throwsName(() => certs.checkValidAt(c, T0 + 20, new Set(revs)), 'CertificateRevoked');
});

// === org root and fingerprint =============================================================
test('org root and fingerprint', () => {
  assert.deepEqual(ROOT_A.org_root, {
    v: 1, org: ORG_A, name: 'Stadt Nürnberg – Ausländerbehörde', pk: b64e(signPk('root-a')), created: T0,
  });
  assert.deepEqual(b64d(ROOT_A.sig), sign(seed('root-a'), concatBytes(utf8('postbox/v1/orgroot'), cj(rootA))));
  assert.deepEqual(certs.verifyOrgRoot(ROOT_A), rootA);
  const fp = certs.fingerprint(signPk('root-a'));
  assert.match(fp, /^([0-9A-HJKMNP-TV-Z]{4}-){7}[0-9A-HJKMNP-TV-Z]{4}$/);
  assert.deepEqual(crockford.decode(fp), H(signPk('root-a'), 20));
  assert.equal(certs.orgFingerprint(rootA), fp);
  assert.equal(certs.fingerprint(new Uint8Array(32)), '088B-X9N1-75WQ-TX5A-AXJF-P8K3-K3R7-YGP4');
  for (let i = 0; i < 64; i += 1) {
    throwsName(() => certs.verifyOrgRoot({ ...ROOT_A, sig: flipB64(ROOT_A.sig, i) }), 'BadSignature');
  }
  assertEveryMutationRejected(ROOT_A, (s) => certs.verifyOrgRoot(s));
  for (const pk of smallOrderEd25519()) {
    throwsName(() => certs.verifyOrgRoot({ ...ROOT_A, org_root: { ...rootA, pk: b64e(pk) } }), 'InvalidKey');
  }
  throwsName(() => certs.makeOrgRoot({
    org: ORG_A, name: 'x'.repeat(201), rootSeed: seed('r'), created: T0,
  }), 'MalformedObject');
  throwsName(() => certs.makeOrgRoot({
    org: ORG_A, name: 'ä'.repeat(101), rootSeed: seed('r'), created: T0,
  }), 'MalformedObject');
  assert.ok(certs.makeOrgRoot({
    org: ORG_A, name: 'ä'.repeat(100), rootSeed: seed('r'), created: T0,
  }));
  throwsName(() => certs.makeOrgRoot({
    org: ORG_A, name: '\ud800', rootSeed: seed('r'), created: T0,
  }), 'NonCanonical');
});

// === revocations ==========================================================================
test('revocations', () => {
  const c = W.citizen;
  const cw = W.caseworker;
  const own = certs.makeRevocation({
    subject: c.account, kid: c.encCert.kid, at: T0 + 5, reason: 'superseded', signerSeed: c.seed,
  });
  assert.deepEqual(own.revoke, {
    v: 1, subject: c.account, kid: c.encCert.kid, at: T0 + 5, reason: 'superseded',
  });
  assert.equal(own.by, c.idCert.kid);
  assert.deepEqual(certs.verifyRevocation(own, c.idCert, null), own.revoke);
  const byAdmin = certs.makeRevocation({
    subject: cw.account, kid: cw.idCert.kid, at: T0, reason: 'left', signerSeed: W.admin.seed,
  });
  assert.deepEqual(certs.verifyRevocation(byAdmin, W.admin.idCert, ORG_A), byAdmin.revoke);
  throwsName(() => certs.verifyRevocation(byAdmin, W.admin.idCert, ORG_B), 'CertificateInvalid');
  const byB = certs.makeRevocation({
    subject: cw.account, kid: cw.idCert.kid, at: T0, reason: 'left', signerSeed: W.adminB.seed,
  });
  throwsName(() => certs.verifyRevocation(byB, W.adminB.idCert, ORG_A), 'CertificateInvalid');
  const byColleague = certs.makeRevocation({
    subject: cw.account, kid: cw.idCert.kid, at: T0, reason: 'left', signerSeed: W.caseworker2.seed,
  });
  throwsName(() => certs.verifyRevocation(byColleague, W.caseworker2.idCert, ORG_A), 'CertificateInvalid');
  const byOther = certs.makeRevocation({
    subject: c.account, kid: c.encCert.kid, at: T0, reason: 'compromised', signerSeed: W.citizen2.seed,
  });
  throwsName(() => certs.verifyRevocation(byOther, W.citizen2.idCert, null), 'CertificateInvalid');
  const citizenByAdmin = certs.makeRevocation({
    subject: c.account, kid: c.encCert.kid, at: T0, reason: 'left', signerSeed: W.admin.seed,
  });
  throwsName(() => certs.verifyRevocation(citizenByAdmin, W.admin.idCert, null), 'CertificateInvalid');
  throwsName(() => certs.verifyRevocation(own, c.encCert, null), 'CertificateInvalid');
  throwsName(() => certs.verifyRevocation({ ...byOther, by: c.idCert.kid }, c.idCert, null), 'BadSignature');
  assertEveryMutationRejected(own, (s) => certs.verifyRevocation(s, c.idCert, null));
  throwsName(() => certs.makeRevocation({
    subject: c.account, kid: c.encCert.kid, at: T0, reason: 'bored', signerSeed: c.seed,
  }), 'MalformedObject');
});

// === team key wraps =======================================================================
function wrapFor(member, opts = {}) {
  const by = opts.by ?? W.caseworker;
  return certs.makeTeamWrap({
    teamCert: opts.teamCert ?? TEAM_CERT.cert,
    teamSk: opts.teamSk ?? TEAM_SK,
    member: member.account,
    memberEnc: member.encCert,
    by: by.account,
    bySeed: by.seed,
  });
}

function openAs(member, signed, opts = {}) {
  return certs.openTeamWrap(signed, {
    teamCert: opts.teamCert ?? TEAM_CERT.cert,
    memberPk: opts.memberPk ?? member.encPk,
    memberSk: opts.memberSk ?? member.encSk,
    byIdentity: opts.byIdentity ?? W.caseworker.idCert,
    currentMembers: opts.currentMembers ?? [W.caseworker.account, W.caseworker2.account],
  });
}

function resign(wrap, by) {
  return {
    team_wrap: wrap,
    sig: b64e(sign(by.seed, concatBytes(domain.TEAMWRAP, cj(wrap)))),
    by_kid: by.idCert.kid,
  };
}

test('team wraps open only for the right member, from a current member, with the certified key', () => {
  const cw2 = W.caseworker2;
  const signed = wrapFor(cw2);
  const { sealed, ...rest } = signed.team_wrap;
  assert.deepEqual(rest, {
    v: 1, team: TEAM, team_kid: TEAM_CERT.cert.kid, member: cw2.account, member_kid: cw2.encCert.kid, by: W.caseworker.account,
  });
  assert.equal(b64d(sealed).length, 80);
  assert.equal(signed.by_kid, W.caseworker.idCert.kid);
  assert.deepEqual(openAs(cw2, signed), TEAM_SK);
  assert.deepEqual(openAs(cw2, signed, { currentMembers: new Set([W.caseworker.account]) }), TEAM_SK);
  assert.deepEqual(openAs(cw2, roundTrip(signed)), TEAM_SK);
  // non-member wrapper
  throwsName(() => openAs(cw2, signed, { currentMembers: [cw2.account] }), 'CertificateInvalid');
  throwsName(() => openAs(cw2, signed, { currentMembers: [] }), 'CertificateInvalid');
  // signer checks
  throwsName(() => openAs(cw2, signed, { byIdentity: cw2.idCert }), 'CertificateInvalid');
  throwsName(() => openAs(cw2, signed, { byIdentity: W.caseworker.encCert }), 'CertificateInvalid');
  throwsName(() => openAs(cw2, { ...signed, by_kid: cw2.idCert.kid }), 'CertificateInvalid');
  // another team key
  const newSk = seed('team/encrypt-2');
  const newTeam = certs.makeCert({
    subject: TEAM, kind: 'team', org: ORG_A, use: 'encrypt', pk: boxKeypair(newSk).pk, created: T0 + DAY, expires: T0 + YEAR,
  });
  throwsName(() => openAs(cw2, signed, { teamCert: newTeam }), 'KeySubstitution');
  assert.deepEqual(openAs(cw2, wrapFor(cw2, { teamCert: newTeam, teamSk: newSk }), { teamCert: newTeam }), newSk);
  // wrong member key
  const c = W.citizen;
  throwsName(() => openAs(cw2, signed, { memberPk: c.encPk, memberSk: c.encSk }), 'KeySubstitution');
  const toOther = { ...signed.team_wrap, sealed: b64e(seal(TEAM_SK, c.encPk)) };
  throwsName(() => openAs(cw2, resign(toOther, W.caseworker)), 'DecryptionFailed');
  // an unwrapped key that is not the certified one
  const evil = { ...signed.team_wrap, sealed: b64e(seal(seed('mallory'), cw2.encPk)) };
  throwsName(() => openAs(cw2, resign(evil, W.caseworker)), 'KeySubstitution');
  // tampering
  for (let i = 0; i < 64; i += 1) {
    throwsName(() => openAs(cw2, { ...signed, sig: flipB64(signed.sig, i) }), 'BadSignature');
  }
  assert.ok(assertEveryMutationRejected(signed, (s) => openAs(cw2, s)) >= 80 + 64 + 16 * 6);
  // makeTeamWrap's own checks
  throwsName(() => wrapFor(cw2, { teamSk: seed('mallory') }), 'KeySubstitution');
  throwsName(() => certs.makeTeamWrap({
    teamCert: TEAM_CERT.cert, teamSk: TEAM_SK, member: cw2.account, memberEnc: W.caseworker.encCert, by: W.caseworker.account, bySeed: W.caseworker.seed,
  }), 'CertificateInvalid');
  throwsName(() => certs.makeTeamWrap({
    teamCert: TEAM_CERT.cert, teamSk: TEAM_SK, member: cw2.account, memberEnc: cw2.encCert, by: 'someone', bySeed: W.caseworker.seed,
  }), 'MalformedObject');
});

// === memberships and server keys ==========================================================
test('memberships', () => {
  const m = certs.signMembership({
    team: TEAM, member: W.caseworker2.account, at: T0, adminSeed: W.admin.seed,
  });
  assert.deepEqual(m.membership, {
    v: 1, team: TEAM, member: W.caseworker2.account, at: T0,
  });
  assert.deepEqual(b64d(m.sig), sign(W.admin.seed, concatBytes(utf8('postbox/v1/member'), cj(m.membership))));
  assert.deepEqual(certs.verifyMembership(m, W.admin.idCert, ORG_A), m.membership);
  throwsName(() => certs.verifyMembership(m, W.admin.idCert, ORG_B), 'CertificateInvalid');
  const byCw = certs.signMembership({
    team: TEAM, member: W.caseworker2.account, at: T0, adminSeed: W.caseworker.seed,
  });
  throwsName(() => certs.verifyMembership(byCw, W.caseworker.idCert, ORG_A), 'CertificateInvalid');
  throwsName(() => certs.verifyMembership(m, W.admin.encCert, ORG_A), 'CertificateInvalid');
  throwsName(() => certs.verifyMembership({ ...byCw, by: W.admin.idCert.kid }, W.admin.idCert, ORG_A), 'BadSignature');
  assertEveryMutationRejected(m, (s) => certs.verifyMembership(s, W.admin.idCert, ORG_A));
});

test('server keys', () => {
  const logPk = signPk('log');
  const receiptPk = signPk('receipt');
  const key = certs.makeServerKey({ logPk, receiptPk, created: T0 });
  assert.deepEqual(key, {
    v: 1, log_pk: b64e(logPk), receipt_pk: b64e(receiptPk), created: T0,
  });
  const leaf0 = { server_key: key, org: null, sig: null };
  assert.deepEqual(certs.verifyServerKey(leaf0), key);
  throwsName(() => certs.verifyServerKey(leaf0, rootA), 'OrgCertificationMissing');
  const e = certs.endorseServerKey(key, { org: ORG_A, rootSeed: seed('root-a') });
  assert.deepEqual(b64d(e.sig), sign(seed('root-a'), concatBytes(utf8('postbox/v1/serverkey'), cj(key))));
  assert.deepEqual(certs.verifyServerKey(e, rootA), key);
  throwsName(() => certs.verifyServerKey(e, rootB), 'OrgCertificationMissing');
  const forged = certs.endorseServerKey(key, { org: ORG_A, rootSeed: seed('root-b') });
  throwsName(() => certs.verifyServerKey(forged, rootA), 'BadSignature');
  throwsName(() => certs.verifyServerKey({ ...e, org: null }), 'CertificateInvalid');
  throwsName(() => certs.verifyServerKey({ ...e, sig: null }), 'CertificateInvalid');
  assertEveryMutationRejected(e, (s) => certs.verifyServerKey(s, rootA));
  for (const pk of smallOrderEd25519().slice(0, 3)) {
    throwsName(() => certs.makeServerKey({ logPk: pk, receiptPk, created: T0 }), 'InvalidKey');
    throwsName(() => certs.verifyServerKey({ ...leaf0, server_key: { ...key, log_pk: b64e(pk) } }), 'InvalidKey');
  }
});

// === procedures ===========================================================================
function procedure(changes = {}) {
  return {
    v: 1,
    org: ORG_A,
    id: newId('procedure'),
    version: 3,
    schema: {
      type: 'object',
      required: ['name', 'income'],
      properties: {
        name: { type: 'string', maxLength: 200 },
        income: { type: 'string', pattern: '^[0-9]+(,[0-9]{2})?$' },
        number: { type: ['string', 'null'] },
      },
    },
    labels: { de: { name: 'Name', income: 'Einkommen (€)' }, tr: { name: 'Ad' } },
    documents: [{ name: 'Reisepass', required: true, max_size: 10_000_000 }],
    ...changes,
  };
}

test('procedures: sign, verify, schema rules, form digest', () => {
  const p = procedure();
  const s = certs.signProcedure(p, W.admin.seed);
  assert.equal(s.by, W.admin.idCert.kid);
  assert.deepEqual(b64d(s.sig), sign(W.admin.seed, concatBytes(utf8('postbox/v1/procedure'), cj(p))));
  assert.deepEqual(certs.verifyProcedure(roundTrip(s), W.admin.idCert), p);
  throwsName(() => certs.verifyProcedure(certs.signProcedure(p, W.adminB.seed), W.adminB.idCert), 'CertificateInvalid');
  throwsName(() => certs.verifyProcedure(certs.signProcedure(p, W.caseworker.seed), W.caseworker.idCert), 'CertificateInvalid');
  const other = certs.signProcedure(p, W.caseworker.seed);
  throwsName(() => certs.verifyProcedure({ ...other, by: W.admin.idCert.kid }, W.admin.idCert), 'BadSignature');
  assertEveryMutationRejected(s, (x) => certs.verifyProcedure(x, W.admin.idCert));
  for (const schema of [{ type: 'number' }, { type: 'integer' }, { type: ['string', 'number'] },
    { type: 'object', properties: { age: { type: 'integer' } } }, { items: { type: 'number' } },
    { anyOf: [{ type: 'string' }, { type: 'integer' }] }]) {
    throwsName(() => certs.checkProcedure(procedure({ schema })), 'MalformedObject', JSON.stringify(schema));
  }
  for (const schema of [{}, { type: 'string' }, { properties: { type: { type: 'string' } } },
    { properties: { number: { type: 'string' } } }]) {
    assert.ok(certs.checkProcedure(procedure({ schema })));
  }
  const shapes = [
    [{ version: 0 }, 'MalformedObject'], [{ version: true }, 'MalformedObject'],
    [{ schema: [] }, 'MalformedObject'], [{ labels: 'de' }, 'MalformedObject'],
    [{ documents: [{ name: 'x', required: 1, max_size: 1 }] }, 'MalformedObject'],
    [{ documents: [{ name: 'x', required: true, max_size: -1 }] }, 'MalformedObject'],
    [{ documents: Array(51).fill({ name: 'x', required: false, max_size: 1 }) }, 'MalformedObject'],
    [{ extra: 1 }, 'MalformedObject'],
    [{ labels: { de: { x: 1.5 } } }, 'NonCanonical'],
    [{ schema: { maximum: 1.5 } }, 'NonCanonical'],
    [{ labels: { de: '\udc00' } }, 'NonCanonical'],
  ];
  for (const [changes, name] of shapes) {
    throwsName(() => certs.checkProcedure(procedure(changes)), name, JSON.stringify(changes));
  }
  const d = certs.formDigest(p);
  assert.equal(d.length, 64);
  assert.deepEqual(d, H(concatBytes(utf8('postbox/v1/form'), cj(p)), 64));
  const reordered = Object.fromEntries(Object.entries(p).reverse());
  assert.deepEqual(certs.formDigest(reordered), d);
  assert.notDeepEqual(certs.formDigest(procedure({ version: 4 })), d);
});

test('signatures do not transfer between object kinds', () => {
  const a = W.admin;
  const rev = certs.makeRevocation({
    subject: W.caseworker.account, kid: W.caseworker.idCert.kid, at: T0, reason: 'left', signerSeed: a.seed,
  });
  const m = certs.signMembership({
    team: TEAM, member: W.caseworker.account, at: T0, adminSeed: a.seed,
  });
  const p = certs.signProcedure(procedure(), a.seed);
  throwsName(() => certs.verifyMembership({ ...m, sig: rev.sig }, a.idCert, ORG_A), 'BadSignature');
  throwsName(() => certs.verifyProcedure({ ...p, sig: m.sig }, a.idCert), 'BadSignature');
  throwsName(() => certs.verifyTeamCert({ ...TEAM_CERT, sig: p.sig }, a.idCert), 'BadSignature');
});

test('a schema with numbers nested in const/default/enum/examples is rejected', () => {
  for (const schema of [{ const: [1] }, { default: { n: 2 } }, { enum: [[1, 2]] }, { examples: [{ a: [3] }] }]) {
    assert.throws(() => certs.checkProcedure(procedure({ schema })), (e) => e.name === 'MalformedObject');
  }
});
