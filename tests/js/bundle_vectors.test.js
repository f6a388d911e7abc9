// tests/vectors/{bundle,recovery,login,activation}.json checked by the JavaScript core:
// every case rebuilt from its inputs, every reject case fails with the named error.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as B from '../../postbox/webclient/static/js/crypto/bundle.js';
import * as R from '../../postbox/webclient/static/js/crypto/recovery.js';
import * as L from '../../postbox/webclient/static/js/crypto/login.js';
import * as A from '../../postbox/webclient/static/js/crypto/activation.js';
import { b64d, b64e } from '../../postbox/webclient/static/js/crypto/encoding.js';

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8'));
const BUNDLE = load('bundle');
const RECOVERY = load('recovery');
const LOGIN = load('login');
const ACTIVATION = load('activation');

function expectError(name, fn) {
  assert.throws(fn, (e) => {
    assert.equal(e.name, name);
    return true;
  });
}

// --- bundle.json ----------------------------------------------------------------------------
for (const c of BUNDLE.cases) {
  test(`bundle case ${c.name}`, () => {
    const b = c.bundle;
    let keys;
    if (c.kind === 'pass') {
      keys = B.derivePassKeys(c.passphrase, b64d(c.salt, 16), c.ops, c.mem);
      assert.deepEqual([b.salt, b.ops, b.mem], [c.salt, c.ops, c.mem]);
    } else {
      keys = R.recoveryKeys(b64d(c.recovery_key, 20));
      assert.deepEqual([c.salt, b.salt, b.ops, b.mem], [null, null, null, null]);
    }
    assert.equal(b64e(keys.kek), c.kek);
    assert.equal(b64e(keys.authPk), c.auth_pk);
    assert.equal(b.gen, c.gen);
    assert.equal(c.private_keys.gen, c.gen);
    assert.deepEqual(B.openBundle(b, keys.kek, c.account, { minGen: c.gen }), c.private_keys);
    const resealed = B.sealBundle(c.private_keys, keys.kek, c.account, {
      kind: c.kind,
      salt: c.salt === null ? null : b64d(c.salt),
      ops: c.ops,
      mem: c.mem,
      nonce: b64d(b.nonce),
    });
    assert.deepEqual(resealed, b);
  });
}

test('bundle rejects', () => {
  assert.ok(BUNDLE.reject.length > 20);
  for (const r of BUNDLE.reject) {
    assert.throws(
      () => B.openBundle(r.bundle, b64d(r.kek), r.account, { minGen: r.min_gen }),
      (e) => e.name === r.error,
      r.name,
    );
  }
});

// --- recovery.json --------------------------------------------------------------------------
test('recovery cases', () => {
  for (const c of RECOVERY.cases) {
    const rk = b64d(c.recovery_key, 20);
    assert.equal(R.formatRecoveryKey(rk), c.text);
    assert.equal(R.checksum(rk), c.checksum);
    for (const typed of [c.text, ...c.accepts]) assert.deepEqual(R.parseRecoveryKey(typed), rk, typed);
    const k = R.recoveryKeys(rk);
    assert.deepEqual([b64e(k.kek), b64e(k.authSeed), b64e(k.authPk)], [c.kek, c.auth_seed, c.auth_pk]);
  }
});

test('recovery rejects', () => {
  for (const r of RECOVERY.reject) {
    assert.throws(() => R.parseRecoveryKey(r.text), (e) => e.name === r.error, r.name);
  }
});

// --- login.json -----------------------------------------------------------------------------
test('login cases', () => {
  for (const c of LOGIN.cases) {
    if (c.type === 'fake_salt') {
      assert.equal(b64e(L.fakeSalt(b64d(c.k_fake, 32), c.login)), c.salt, c.name);
      continue;
    }
    assert.equal(c.type, 'signature');
    const challenge = b64d(c.challenge, 32);
    assert.equal(L.normalizeLogin(c.login), c.login_normalized, c.name);
    assert.equal(b64e(L.loginMessage(challenge, c.origin, c.login, c.method)), c.message, c.name);
    const sig = L.signLogin(b64d(c.auth_seed, 32), challenge, c.origin, c.login, c.method);
    assert.equal(b64e(sig), c.signature, c.name);
    for (const login of [c.login, c.login_normalized]) {
      L.verifyLogin(b64d(c.auth_pk, 32), sig, challenge, c.origin, login, c.method);
    }
  }
});

test('login rejects', () => {
  for (const r of LOGIN.reject) {
    let fn;
    if (r.type === 'origin') fn = () => L.checkOrigin(r.origin);
    else if (r.type === 'login') fn = () => L.normalizeLogin(r.login);
    else {
      assert.equal(r.type, 'verify');
      fn = () => L.verifyLogin(b64d(r.auth_pk), b64d(r.signature), b64d(r.challenge), r.origin,
        r.login, r.method);
    }
    assert.throws(fn, (e) => e.name === r.error, r.name);
  }
});

// --- activation.json ------------------------------------------------------------------------
test('activation cases', () => {
  for (const c of ACTIVATION.cases) {
    const code = b64d(c.code, 20);
    assert.equal(A.formatCode(code), c.text);
    for (const typed of [c.text, ...c.accepts]) assert.deepEqual(A.parseCode(typed), code);
    assert.equal(b64e(A.actAuth(code)), c.act_auth);
    assert.equal(b64e(A.actMac(code, c.identity_cert)), c.act_mac);
    A.verifyActMac(code, c.identity_cert, b64d(c.act_mac));
  }
});

test('activation rejects', () => {
  for (const r of ACTIVATION.reject) {
    const fn = r.type === 'parse'
      ? () => A.parseCode(r.text)
      : () => A.verifyActMac(b64d(r.code), r.identity_cert, b64d(r.act_mac));
    expectError(r.error, fn);
  }
});
