// Key bundle, recovery key, login signatures and activation codes in JavaScript
// (bundle.js, recovery.js, login.js, activation.js; the passphrase rules are in
// passphrase.test.js). Argon2id costs ~0.3 s per call in Node, so only a handful of tests
// derive; the rest seal under raw keys.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as B from '../../postbox/webclient/static/js/crypto/bundle.js';
import * as R from '../../postbox/webclient/static/js/crypto/recovery.js';
import * as L from '../../postbox/webclient/static/js/crypto/login.js';
import * as A from '../../postbox/webclient/static/js/crypto/activation.js';
import * as crockford from '../../postbox/webclient/static/js/crypto/crockford.js';
import * as domain from '../../postbox/webclient/static/js/crypto/domain.js';
import { makeCert } from '../../postbox/webclient/static/js/crypto/certs.js';
import { b64d, b64e, cj, utf8 } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import {
  H, aeadEncrypt, boxKeypair, concatBytes, signKeypair,
} from '../../postbox/webclient/static/js/crypto/primitives.js';

const s = (label, n = 32) => H(utf8(`test/bundle/${label}`), n);
const ACCOUNT = b64e(s('account', 16));
const OTHER = b64e(s('other', 16));
const KEK = s('kek');
const GOOD = 'Mein Hund heißt Bello und frisst Äpfel';
const GOOD2 = 'Ein ganz anderer Satz, 42 Wörter lang';
const T0 = 1_767_225_600_000;
const named = (name) => (e) => e.name === name;

function keys(gen = 1) {
  return B.buildPrivateKeys({ gen, identity: [s('id')], encrypt: [[s('enc'), null]] });
}

function passBundle(pks = keys(2)) {
  return B.sealBundle(pks, KEK, ACCOUNT, {
    kind: 'pass', salt: s('salt', 16), ops: 2, mem: B.MIN_MEM, nonce: s('nonce', 24),
  });
}

// --- parameters and derivation ----------------------------------------------------------
test('defaults are the protocol\'s', () => {
  assert.deepEqual([B.DEFAULT_OPS, B.DEFAULT_MEM], [3, 64 * 1024 * 1024]);
  assert.deepEqual([B.MIN_OPS, B.MAX_OPS, B.MIN_MEM, B.MAX_MEM], [2, 10, 64 * B.MIB, 1024 * B.MIB]);
  B.checkParams(B.MIN_OPS, B.MIN_MEM);
  B.checkParams(B.MAX_OPS, B.MAX_MEM);
});

test('parameters outside the range are refused before any work', () => {
  for (const [ops, mem] of [[1, B.MIN_MEM], [11, B.MIN_MEM], [2, B.MIN_MEM - 1],
    [2, B.MAX_MEM + 1], [true, B.MIN_MEM], [2.5, B.MIN_MEM], ['3', B.MIN_MEM], [3, null]]) {
    assert.throws(() => B.checkParams(ops, mem), named('UnsupportedParameters'));
    assert.throws(() => B.derivePassKeys(GOOD, new Uint8Array(16), ops, mem),
      named('UnsupportedParameters'));
  }
  assert.throws(() => B.derivePassKeys(GOOD, new Uint8Array(15), 2, B.MIN_MEM), named('EncodingError'));
  assert.throws(() => B.derivePassKeys('abc\ud800', new Uint8Array(16), 2, B.MIN_MEM),
    named('EncodingError'));
});

test('NFKC makes equivalent passphrases one key; kek and auth key split', () => {
  const salt = s('salt', 16);
  const full = B.derivePassKeys('ｐａｓｓ\u3000ｗｏｒｔ', salt, 2, B.MIN_MEM);
  const ascii = B.derivePassKeys('pass wort', salt, 2, B.MIN_MEM);
  assert.deepEqual(full, ascii);
  assert.equal(ascii.kek.length, 32);
  assert.notDeepEqual(ascii.kek, ascii.authSeed);
  assert.deepEqual(signKeypair(ascii.authSeed).pk, ascii.authPk);
  assert.deepEqual(B.keysFromOutput(concatBytes(ascii.kek, ascii.authSeed)), ascii);
});

// --- private_keys -----------------------------------------------------------------------
test('buildPrivateKeys derives kids; getters return key pairs', () => {
  const team = b64e(s('team', 16));
  const pks = B.buildPrivateKeys({
    gen: 4,
    identity: [s('id0'), s('id1')],
    encrypt: [[s('enc0'), T0], [s('enc1'), null]],
    teams: [[team, s('team-sk')]],
    log: { size: 10, root: b64e(s('root')), ts: T0 },
    chain: { seq: 2, hash: b64e(s('hash')) },
  });
  const ident = B.currentIdentity(pks);
  assert.deepEqual(ident.seed, s('id1'));
  assert.deepEqual(ident.pk, signKeypair(s('id1')).pk);
  assert.equal(ident.kid, deriveKid('sign', ident.pk));
  assert.equal(B.identityKeys(pks).length, 2);
  const enc = B.currentEncryption(pks);
  assert.deepEqual(enc.sk, s('enc1'));
  assert.deepEqual(enc.pk, boxKeypair(s('enc1')).pk);
  assert.equal(enc.kid, deriveKid('encrypt', enc.pk));
  assert.deepEqual(B.encryptionKeys(pks).map((k) => k.retired), [T0, null]);
  const [tk] = B.teamKeys(pks);
  assert.equal(tk.team, team);
  assert.equal(tk.kid, deriveKid('encrypt', tk.pk));
  assert.equal(B.withGen(pks, 7).gen, 7);
  assert.equal(pks.gen, 4);
});

test('private_keys shape and kid checks', () => {
  const pks = keys();
  const bad = [
    [{ identity: [] }, 'MalformedObject'],
    [{ encrypt: [] }, 'MalformedObject'],
    [{ x: 1 }, 'MalformedObject'],
    [{ v: 2 }, 'MalformedObject'],
    [{ gen: -1 }, 'MalformedObject'],
    [{ gen: 2 ** 32 }, 'MalformedObject'],
    [{ log: { size: 1, root: b64e(new Uint8Array(32)) } }, 'MalformedObject'],
    [{ identity: [{ ...pks.identity[0], kid: pks.encrypt[0].kid }] }, 'KeyIdMismatch'],
    [{ encrypt: [{ ...pks.encrypt[0], sk: b64e(s('x')) }] }, 'KeyIdMismatch'],
    [{ identity: [pks.identity[0], pks.identity[0]] }, 'MalformedObject'],
    [{ encrypt: [pks.encrypt[0], { ...pks.encrypt[0] }] }, 'MalformedObject'],
  ];
  for (const [change, error] of bad) {
    assert.throws(() => B.checkPrivateKeys({ ...pks, ...change }), named(error), JSON.stringify(change));
  }
});

// --- seal / open --------------------------------------------------------------------------
test('aad layout', () => {
  const aad = B.bundleAad('pass', 258, ACCOUNT);
  assert.deepEqual(aad, concatBytes(utf8('postbox/v1/bundle\x00pass\x00'),
    new Uint8Array([0, 0, 1, 2]), b64d(ACCOUNT)));
});

test('recovery kind round trip, nulls and minGen', () => {
  const pks = keys(3);
  const b = B.sealBundle(pks, KEK, ACCOUNT, { kind: 'recovery', nonce: s('n', 24) });
  assert.deepEqual([b.salt, b.ops, b.mem, b.gen, b.kind], [null, null, null, 3, 'recovery']);
  assert.deepEqual(B.openBundle(b, KEK, ACCOUNT), pks);
  assert.deepEqual(B.openBundle(b, KEK, ACCOUNT, { minGen: 3 }), pks);
  assert.throws(() => B.openBundle(b, KEK, ACCOUNT, { minGen: 4 }), named('StaleGeneration'));
});

test('sealing is deterministic with a fixed nonce, random without', () => {
  assert.deepEqual(passBundle(), passBundle());
  const fresh = B.sealBundle(keys(2), KEK, ACCOUNT, {
    kind: 'pass', salt: s('salt', 16), ops: 2, mem: B.MIN_MEM,
  });
  assert.notEqual(fresh.nonce, passBundle().nonce);
  assert.deepEqual(B.openBundle(fresh, KEK, ACCOUNT), keys(2));
});

test('open rejects', () => {
  const b = passBundle();
  const bad = [
    [{ gen: 3 }, 'DecryptionFailed'],
    [{ kind: 'recovery', salt: null, ops: null, mem: null }, 'DecryptionFailed'],
    [{ ops: 1 }, 'UnsupportedParameters'],
    [{ mem: 2 ** 40 }, 'UnsupportedParameters'],
    [{ salt: null }, 'MalformedObject'],
    [{ ops: null }, 'MalformedObject'],
    [{ extra: 1 }, 'MalformedObject'],
    [{ v: 2 }, 'MalformedObject'],
    [{ nonce: b64e(new Uint8Array(12)) }, 'MalformedObject'],
    [{ ct: '!' }, 'MalformedObject'],
  ];
  for (const [change, error] of bad) {
    assert.throws(() => B.openBundle({ ...b, ...change }, KEK, ACCOUNT), named(error), JSON.stringify(change));
  }
  assert.throws(() => B.openBundle(b, KEK, OTHER), named('DecryptionFailed'));
  assert.throws(() => B.openBundle(b, s('other kek'), ACCOUNT), named('DecryptionFailed'));
});

test('every flipped byte of ct and nonce is caught', () => {
  const b = passBundle();
  for (const field of ['ct', 'nonce']) {
    const raw = b64d(b[field]);
    for (let i = 0; i < raw.length; i += 1) {
      const bad = raw.slice();
      bad[i] ^= 0x40;
      assert.throws(() => B.openBundle({ ...b, [field]: b64e(bad) }, KEK, ACCOUNT),
        named('DecryptionFailed'));
    }
  }
});

test('plaintext must be canonical and match gen', () => {
  const b = passBundle();
  const sealed = (plaintext, gen = 2) => ({
    ...b,
    gen,
    ct: b64e(aeadEncrypt(KEK, b64d(b.nonce), plaintext, B.bundleAad('pass', gen, ACCOUNT))),
  });
  const text = cj(keys(2));
  assert.throws(() => B.openBundle(sealed(concatBytes(text, utf8(' '))), KEK, ACCOUNT), named('NonCanonical'));
  assert.throws(() => B.openBundle(sealed(text, 5), KEK, ACCOUNT), named('MalformedObject'));
  assert.throws(() => B.openBundle(sealed(cj([1, 2])), KEK, ACCOUNT), named('MalformedObject'));
});

test('pass bundle life cycle: seal, open, passphrase change, stale gen', () => {
  const pks = keys(1);
  const { bundle: b, keys: k } = B.sealPassBundle(pks, GOOD, ACCOUNT, { ops: 2 });
  assert.deepEqual([b.ops, b.mem, b.gen], [2, B.MIN_MEM, 1]);
  assert.ok(B.needsRekey(b));
  const opened = B.openPassBundle(b, GOOD, ACCOUNT, { minGen: 1 });
  assert.deepEqual(opened.privateKeys, pks);
  assert.deepEqual(opened.keys, k);

  const nw = B.rewrapBundle(b, k.kek, ACCOUNT, GOOD2, { ops: 2 });
  assert.deepEqual([nw.bundle.gen, nw.privateKeys.gen], [2, 2]);
  assert.notEqual(nw.bundle.salt, b.salt);
  assert.notDeepEqual(nw.keys.authPk, k.authPk);
  assert.deepEqual(B.openBundle(nw.bundle, nw.keys.kek, ACCOUNT, { minGen: 2 }), B.withGen(pks, 2));
  assert.throws(() => B.openPassBundle(b, 'whatever', ACCOUNT, { minGen: 2 }), named('StaleGeneration'));
  assert.throws(() => B.rewrapBundle(b, k.kek, ACCOUNT, 'password'), named('WeakPassphrase'));
  assert.throws(() => B.rewrapBundle(b, k.kek, ACCOUNT, GOOD, { gen: 1, checkPassphrase: false }),
    RangeError);
});

test('rewrap from a recovery bundle takes the given pass gen', () => {
  const rec = B.sealBundle(keys(1), KEK, ACCOUNT, { kind: 'recovery' });
  const nw = B.rewrapBundle(rec, KEK, ACCOUNT, GOOD, { gen: 9, ops: 2 });
  assert.deepEqual([nw.bundle.gen, nw.privateKeys.gen, nw.bundle.kind], [9, 9, 'pass']);
  assert.equal(B.needsRekey(rec), false);
  assert.throws(() => B.openPassBundle(rec, GOOD, ACCOUNT), named('MalformedObject'));
});

// --- the Argon2id worker ------------------------------------------------------------------
test('argon2-worker answers requestDerivation (simulated worker scope)', async () => {
  // A module worker's global scope is an EventTarget with postMessage; simulate both ends.
  const toWorker = new EventTarget();
  const toPage = new EventTarget();
  const saved = globalThis.self;
  globalThis.self = toWorker;
  toWorker.postMessage = (data) => toPage.dispatchEvent(new MessageEvent('message', { data }));
  await import('../../postbox/webclient/static/js/crypto/argon2-worker.js');
  globalThis.self = saved;
  const worker = {
    addEventListener: (t, f) => toPage.addEventListener(t, f),
    removeEventListener: (t, f) => toPage.removeEventListener(t, f),
    postMessage: (data) => toWorker.dispatchEvent(new MessageEvent('message', { data })),
  };
  const salt = s('salt', 16);
  const keysOut = await B.requestDerivation(worker, { passphrase: 'pass wort', salt, ops: 2, mem: B.MIN_MEM });
  assert.deepEqual(keysOut, B.derivePassKeys('pass wort', salt, 2, B.MIN_MEM));
  await assert.rejects(
    B.requestDerivation(worker, { passphrase: 'x', salt, ops: 1, mem: B.MIN_MEM }),
    (e) => e instanceof Error && e.name === 'UnsupportedParameters',
  );
});

// --- recovery.js --------------------------------------------------------------------------
const RK = H(utf8('test/recovery/rk'), 20);

test('recovery key: printed form, forgiving parse, typo detection', () => {
  const text = R.formatRecoveryKey(RK);
  assert.match(text, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){8}$/);
  const plain = text.replaceAll('-', '');
  assert.deepEqual(crockford.decode(plain.slice(0, 32)), RK);
  assert.equal(plain.slice(32), crockford.encode(H(RK).slice(0, 5)).slice(0, 4));
  assert.equal(R.checksum(RK), plain.slice(32));
  const fullwidth = [...text].map((c) => String.fromCodePoint(c.codePointAt(0) + 0xfee0)).join('');
  for (const typed of [text, text.toLowerCase(), plain, text.replaceAll('-', ' '),
    `  ${text.replaceAll('-', '\t')}\n`, text.replaceAll('-', '\u2013'), text.replaceAll('-', '\u2212'),
    `${text.slice(0, 24)}\r\n${text.slice(25)}`, fullwidth, text.replaceAll('0', 'o').replaceAll('1', 'L')]) {
    assert.deepEqual(R.parseRecoveryKey(typed), RK, typed);
  }
  for (let i = 0; i < plain.length; i += 1) {
    for (const other of crockford.ALPHABET) {
      if (other === plain[i]) continue;
      assert.throws(() => R.parseRecoveryKey(plain.slice(0, i) + other + plain.slice(i + 1)),
        named('BadRecoveryKey'));
    }
  }
  for (const bad of ['', text.slice(0, -5), `${text}-0`, `U${text.slice(1)}`,
    text.replaceAll('-', '_'), `\u0131${text.slice(1)}`, `\u00e0${text.slice(1)}`]) {
    assert.throws(() => R.parseRecoveryKey(bad), named('BadRecoveryKey'), bad);
  }
  assert.throws(() => R.parseRecoveryKey(RK), named('BadRecoveryKey'));
  assert.deepEqual(R.generateRecoveryKey({ rk: RK }), RK);
  assert.equal(R.generateRecoveryKey().length, 20);
  assert.throws(() => R.generateRecoveryKey({ rk: new Uint8Array(19) }), named('BadRecoveryKey'));
});

test('recovery keys and recovery bundles', () => {
  const k = R.recoveryKeys(RK);
  assert.deepEqual(k.kek, H(domain.RECOVERY_KEK, 32, RK));
  assert.deepEqual(k.authSeed, H(domain.RECOVERY_AUTH, 32, RK));
  assert.deepEqual(k.authPk, signKeypair(k.authSeed).pk);
  const pks = keys(3);
  const { bundle } = R.sealRecoveryBundle(pks, RK, ACCOUNT, { nonce: new Uint8Array(24) });
  assert.deepEqual([bundle.kind, bundle.salt, bundle.ops, bundle.mem], ['recovery', null, null, null]);
  assert.deepEqual(R.openRecoveryBundle(bundle, RK, ACCOUNT, { minGen: 3 }), pks);
  assert.throws(() => R.openRecoveryBundle(bundle, RK, ACCOUNT, { minGen: 4 }), named('StaleGeneration'));
  assert.throws(() => R.openRecoveryBundle(bundle, H(utf8('other'), 20), ACCOUNT), named('DecryptionFailed'));
  const passb = B.sealBundle(pks, k.kek, ACCOUNT, { kind: 'pass', salt: new Uint8Array(16), ops: 2, mem: B.MIN_MEM });
  assert.throws(() => R.openRecoveryBundle(passb, RK, ACCOUNT), named('MalformedObject'));
});

// --- login.js -----------------------------------------------------------------------------
const SEED = H(utf8('test/login/auth'));
const PK = signKeypair(SEED).pk;
const CHALLENGE = H(utf8('test/login/challenge'));
const ORIGIN = 'https://postbox.example';

test('login names are normalised like Python', () => {
  const cases = [
    ['anna@example.org', 'anna@example.org'],
    ['Anna@Example.ORG', 'Anna@example.org'],
    ['  anna@example.org \t\r\n', 'anna@example.org'],
    ['Ju\u0308rgen@STRASSE.de', 'Jürgen@strasse.de'],
    ['x@Ju\u0308RGEN.de', 'x@jürgen.de'],
    ['ayşe@İZMİR.example', 'ayşe@i\u0307zmi\u0307r.example'],
    ['a@b@C.D', 'a@b@c.d'],
    ['Chosen Name', 'Chosen Name'],
    ['ΟΔΟΣ@ΟΔΟΣ.GR', 'ΟΔΟΣ@οδοσ.gr'],
    ['x@ΟΔΟΣ', 'x@οδος'],
  ];
  for (const [typed, normalized] of cases) {
    assert.equal(L.normalizeLogin(typed), normalized, typed);
    assert.equal(L.normalizeLogin(normalized), normalized);
  }
  for (const bad of ['', '   ', 'a\x00b', 'a\nb@c.d', 'a\x7fb', 'a\ud800', 'x'.repeat(255), 'ä'.repeat(128)]) {
    assert.throws(() => L.normalizeLogin(bad), named('MalformedObject'), JSON.stringify(bad));
  }
  assert.equal(L.normalizeLogin('ä'.repeat(127)), 'ä'.repeat(127));
});

test('origins', () => {
  for (const ok of ['https://postbox.example', 'http://localhost:8080',
    'https://xn--mnchen-3ya.example:8443', 'http://127.0.0.1:8000', 'http://[::1]:8080',
    'https://a', 'https://postbox.example:65535']) {
    assert.equal(L.checkOrigin(ok), ok);
  }
  for (const bad of ['https://postbox.example/', 'https://Postbox.example',
    'https://postbox.example:443', 'http://postbox.example:80', 'https://postbox.example:0',
    'https://postbox.example:65536', 'https://postbox.example:0443', 'https://user@postbox.example',
    'https://postbox.example#x', 'null', 'file://', 'https://münchen.example',
    `https://${'a'.repeat(64)}.example`, `https://${Array(5).fill('a'.repeat(60)).join('.')}`,
    'https://-a.example', 'https://postbox.example\n']) {
    assert.throws(() => L.checkOrigin(bad), named('MalformedObject'), bad);
  }
});

test('login message layout, sign and verify', () => {
  const msg = L.loginMessage(CHALLENGE, ORIGIN, 'Anna@Example.org', 'pass');
  assert.deepEqual(msg, concatBytes(utf8('postbox/v1/login'), CHALLENGE,
    new Uint8Array([0, 0, 0, ORIGIN.length]), utf8(ORIGIN), utf8('Anna@example.org')));
  const rec = L.loginMessage(CHALLENGE, ORIGIN, 'Anna@Example.org', 'recovery');
  assert.deepEqual(rec, concatBytes(domain.RECOVERY_LOGIN, msg.slice(domain.LOGIN.length)));
  assert.throws(() => L.loginMessage(CHALLENGE.slice(0, 31), ORIGIN, 'a', 'pass'), named('EncodingError'));
  assert.throws(() => L.loginMessage(CHALLENGE, ORIGIN, 'a', 'password'), named('MalformedObject'));

  const sig = L.signLogin(SEED, CHALLENGE, ORIGIN, 'anna@Example.org', 'pass');
  L.verifyLogin(PK, sig, CHALLENGE, ORIGIN, '  anna@EXAMPLE.ORG', 'pass');
  const flipped = sig.slice();
  flipped[63] ^= 1;
  for (const args of [
    [PK, sig, CHALLENGE, ORIGIN, 'anna@example.org', 'recovery'],
    [PK, sig, CHALLENGE, 'https://phish.example', 'anna@example.org', 'pass'],
    [PK, sig, CHALLENGE, ORIGIN, 'Anna@example.org', 'pass'],
    [PK, sig, H(utf8('other')), ORIGIN, 'anna@example.org', 'pass'],
    [signKeypair(H(utf8('x'))).pk, sig, CHALLENGE, ORIGIN, 'anna@example.org', 'pass'],
    [PK, flipped, CHALLENGE, ORIGIN, 'anna@example.org', 'pass'],
    [PK, sig.slice(0, 63), CHALLENGE, ORIGIN, 'anna@example.org', 'pass'],
  ]) {
    assert.throws(() => L.verifyLogin(...args), named('BadSignature'));
  }
});

test('fake salt is pure and normalised', () => {
  const kFake = H(utf8('test/login/k_fake'));
  const salt = L.fakeSalt(kFake, 'anna@example.org');
  assert.deepEqual(salt, H(utf8('anna@example.org'), 16, kFake));
  assert.deepEqual(L.fakeSalt(kFake, ' anna@EXAMPLE.org'), salt);
  assert.notDeepEqual(L.fakeSalt(kFake, 'Anna@example.org'), salt);
  assert.throws(() => L.fakeSalt(new Uint8Array(16), 'a'), named('InvalidKey'));
});

// --- activation.js ------------------------------------------------------------------------
const CODE = H(utf8('test/activation/code'), 20);

function identityCert(label, use = 'sign') {
  const pk = use === 'sign' ? signKeypair(s(label)).pk : boxKeypair(s(label)).pk;
  return makeCert({
    subject: b64e(s(`${label}/subject`, 16)), kind: 'citizen', org: null, use, pk, created: T0,
    expires: use === 'sign' ? null : T0 + 86_400_000,
  });
}

test('activation code: printed form and parse', () => {
  const text = A.formatCode(CODE);
  assert.match(text, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){7}$/);
  for (const typed of [text, text.toLowerCase(), text.replaceAll('-', ''), ` ${text.replaceAll('-', ' ')} `]) {
    assert.deepEqual(A.parseCode(typed), CODE);
  }
  for (const bad of ['', text.slice(0, -1), `${text}0`, `U${text.slice(1)}`, `${text}-${text.slice(0, 4)}`]) {
    assert.throws(() => A.parseCode(bad), named('BadRecoveryKey'), bad);
  }
  assert.deepEqual(A.generateCode({ code: CODE }), CODE);
  assert.equal(A.generateCode().length, 20);
  assert.throws(() => A.generateCode({ code: new Uint8Array(16) }), named('BadRecoveryKey'));
});

test('act_auth and act_mac', () => {
  const auth = A.actAuth(CODE);
  assert.deepEqual(auth, H(domain.ACT_AUTH, 32, CODE));
  A.checkActAuth(auth, auth);
  assert.throws(() => A.checkActAuth(auth, A.actAuth(H(utf8('other'), 20))), named('BadSignature'));
  assert.throws(() => A.checkActAuth(auth, auth.slice(0, 16)), named('BadSignature'));

  const cert = identityCert('citizen');
  const mac = A.actMac(CODE, cert);
  assert.deepEqual(mac, H(cj(cert), 32, H(domain.ACT_MAC, 32, CODE)));
  A.verifyActMac(CODE, cert, mac);
  const flipped = mac.slice();
  flipped[31] ^= 1;
  for (const [code, c, m] of [
    [H(utf8('other'), 20), cert, mac],
    [CODE, identityCert('other'), mac],
    [CODE, { ...cert, created: T0 + 1 }, mac],
    [CODE, cert, flipped],
    [CODE, cert, mac.slice(0, 16)],
  ]) {
    assert.throws(() => A.verifyActMac(code, c, m), named('BadSignature'));
  }
  assert.throws(() => A.actMac(CODE, identityCert('enc', 'encrypt')), named('CertificateInvalid'));
});
