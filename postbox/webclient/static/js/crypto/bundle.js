// The key bundle (PROTOCOL.md §4), mirroring postbox/crypto/bundle.py one to one: the same
// checks in the same order, the same error names, camelCase names, option objects where
// Python takes keyword arguments, objects where Python returns tuples.
//
//   out  = argon2id(UTF-8(NFKC(passphrase)), salt(16), ops, mem (bytes), 64)
//   kek  = out[0:32]; auth key = Ed25519 from seed out[32:64]
//   ct   = XChaCha20-Poly1305(kek, nonce, cj(private_keys),
//          aad = "postbox/v1/bundle" ‖ 0x00 ‖ kind ‖ 0x00 ‖ u32(gen) ‖ account)
//
// Pure functions, no DOM, no globals holding secrets: Argon2id runs in a Web Worker
// (argon2-worker.js imports derivePassKeys from here).
//
// Generations: the pass and the recovery bundle have independent counters (each stored with
// compare-and-swap on its gen); every write uses stored gen + 1 and sets private_keys.gen to
// the same value; clients remember the highest gen seen per kind and pass it as minGen.
// A recovery bundle goes stale after a key rotation, because only the recovery key can
// reseal it (see bundle.py for the full discussion). New passphrases are checked with the
// rules of passphrase.js.
import * as domain from './domain.js';
import * as shapes from './shapes.js';
import {
  ID_BYTES, KEY_BYTES, NONCE_BYTES, SALT_BYTES, b64d, b64e, cj, parseCanonical, u32, utf8,
} from './encoding.js';
import * as errors from './errors.js';
import {
  EncodingError, KeyIdMismatch, MalformedObject, StaleGeneration, UnsupportedParameters,
} from './errors.js';
import { deriveKid } from './kid.js';
import { checkNewPassphrase } from './passphrase.js';
import {
  SEED_BYTES, aeadDecrypt, aeadEncrypt, boxKeypair, concatBytes, randomBytes, signKeypair,
  sodium,
} from './primitives.js';

// --- parameters ------------------------------------------------------------------------
export const MIB = 1024 * 1024;
export const DEFAULT_OPS = 3;
export const DEFAULT_MEM = 64 * MIB;
export const MIN_OPS = 2;
export const MAX_OPS = 10;
export const MIN_MEM = 64 * MIB;
export const MAX_MEM = 1024 * MIB;
export const DERIVED_BYTES = 64; // kek ‖ auth seed
export const AEAD_TAG_BYTES = 16;

export const KINDS = Object.freeze(['pass', 'recovery']);
export const FIRST_GEN = 1;
export const MAX_GEN = 2 ** 32 - 1; // gen enters the AAD as u32
export const MAX_KEYS = 4096; // per list inside private_keys

// --- shapes ----------------------------------------------------------------------------
const KEY32 = shapes.b64(KEY_BYTES);
const GEN = shapes.integer(0, MAX_GEN);

export const IDENTITY_ENTRY_SHAPE = shapes.obj({ kid: shapes.KID, seed: shapes.b64(SEED_BYTES) });
export const ENCRYPT_ENTRY_SHAPE = shapes.obj({
  kid: shapes.KID, sk: KEY32, retired: shapes.nullable(shapes.TIME),
});
export const TEAM_ENTRY_SHAPE = shapes.obj({ team: shapes.ID, kid: shapes.KID, sk: KEY32 });
export const LOG_SHAPE = shapes.obj({ size: shapes.COUNT, root: KEY32, ts: shapes.TIME });
export const CHAIN_SHAPE = shapes.obj({ seq: shapes.COUNT, hash: KEY32 });
export const PRIVATE_KEYS_SHAPE = shapes.obj({
  v: shapes.constant(1),
  gen: GEN,
  identity: shapes.array(IDENTITY_ENTRY_SHAPE, MAX_KEYS),
  encrypt: shapes.array(ENCRYPT_ENTRY_SHAPE, MAX_KEYS),
  teams: shapes.array(TEAM_ENTRY_SHAPE, MAX_KEYS),
  log: shapes.nullable(LOG_SHAPE),
  chain: shapes.nullable(CHAIN_SHAPE),
});
export const BUNDLE_SHAPE = shapes.obj({
  v: shapes.constant(1),
  kind: shapes.oneOf(...KINDS),
  gen: GEN,
  salt: shapes.nullable(shapes.b64(SALT_BYTES)),
  ops: shapes.nullable(shapes.integer()),
  mem: shapes.nullable(shapes.integer()),
  nonce: shapes.b64(NONCE_BYTES),
  ct: shapes.b64(null),
});

// --- derivation ------------------------------------------------------------------------
/** Refuse Argon2id parameters outside 2 ≤ ops ≤ 10, 64 MiB ≤ mem ≤ 1 GiB. */
export function checkParams(ops, mem) {
  for (const value of [ops, mem]) {
    if (!Number.isSafeInteger(value)) {
      throw new UnsupportedParameters('ops and mem must be integers');
    }
  }
  if (!(MIN_OPS <= ops && ops <= MAX_OPS)) {
    throw new UnsupportedParameters(`ops must be in [${MIN_OPS}, ${MAX_OPS}]`);
  }
  if (!(MIN_MEM <= mem && mem <= MAX_MEM)) {
    throw new UnsupportedParameters(`mem must be in [${MIN_MEM}, ${MAX_MEM}] bytes`);
  }
}

const LONE_SURROGATE = /\p{Cs}/u;

/** UTF-8 of NFKC(passphrase): the Argon2id input. Lone surrogates → EncodingError. */
export function normalizePassphrase(passphrase) {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
  const normalized = passphrase.normalize('NFKC');
  // TextEncoder would silently turn a lone surrogate into U+FFFD; Python refuses it.
  if (LONE_SURROGATE.test(normalized)) {
    throw new EncodingError('passphrase contains a lone surrogate');
  }
  return utf8(normalized);
}

/** Split 64 derived bytes into kek (0:32) and the auth key seeded by 32:64. */
export function keysFromOutput(out) {
  if (!(out instanceof Uint8Array) || out.length !== DERIVED_BYTES) {
    throw new TypeError('derived output must be 64 bytes');
  }
  const authSeed = out.slice(KEY_BYTES);
  return { kek: out.slice(0, KEY_BYTES), authSeed, authPk: signKeypair(authSeed).pk };
}

/**
 * Argon2id(NFKC(passphrase), salt, ops, mem, 64) → {kek, authSeed, authPk}.
 * Parameters are checked first (UnsupportedParameters), the salt must be 16 bytes
 * (EncodingError). Slow by design: run it in a Web Worker in the browser.
 */
export function derivePassKeys(passphrase, salt, ops = DEFAULT_OPS, mem = DEFAULT_MEM) {
  checkParams(ops, mem);
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES) {
    throw new EncodingError('salt must be 16 bytes');
  }
  const data = normalizePassphrase(passphrase);
  let out;
  try {
    out = sodium.crypto_pwhash(DERIVED_BYTES, data, salt, ops, mem,
      sodium.crypto_pwhash_ALG_ARGON2ID13);
  } catch {
    throw new UnsupportedParameters('Argon2id failed with these parameters');
  }
  return keysFromOutput(out);
}

// --- private_keys ----------------------------------------------------------------------
/**
 * Build a checked private_keys object; kids are derived. `identity`: Ed25519 seeds;
 * `encrypt`: [sk, retired ms | null] pairs (oldest first, exactly one current);
 * `teams`: [team id, sk] pairs; `log` {size, root, ts} and `chain` {seq, hash} or null.
 */
export function buildPrivateKeys({
  gen, identity, encrypt, teams = [], log = null, chain = null,
}) {
  const value = {
    v: 1,
    gen,
    identity: identity.map((seed) => ({
      kid: deriveKid('sign', signKeypair(seed).pk), seed: b64e(seed),
    })),
    encrypt: encrypt.map(([sk, retired]) => ({
      kid: deriveKid('encrypt', boxKeypair(sk).pk), sk: b64e(sk), retired,
    })),
    teams: teams.map(([team, sk]) => ({
      team, kid: deriveKid('encrypt', boxKeypair(sk).pk), sk: b64e(sk),
    })),
    log: log === null ? null : { ...log },
    chain: chain === null ? null : { ...chain },
  };
  return checkPrivateKeys(value);
}

/**
 * Validate the closed shape and recompute every kid. MalformedObject for a shape error, no
 * identity key, not exactly one current encryption key or a duplicate kid; KeyIdMismatch
 * when a kid is not derived from the public key recomputed from its seed / secret key.
 */
export function checkPrivateKeys(value) {
  shapes.check(PRIVATE_KEYS_SHAPE, value, 'private_keys');
  if (value.identity.length === 0) {
    throw new MalformedObject('private_keys.identity: no identity key');
  }
  if (value.encrypt.filter((e) => e.retired === null).length !== 1) {
    throw new MalformedObject('private_keys.encrypt: need exactly one current key');
  }
  for (const [what, entries, use, secret] of [
    ['identity', value.identity, 'sign', 'seed'],
    ['encrypt', value.encrypt, 'encrypt', 'sk'],
    ['teams', value.teams, 'encrypt', 'sk'],
  ]) {
    const kids = new Set();
    entries.forEach((entry, i) => {
      const raw = b64d(entry[secret], KEY_BYTES);
      const pk = use === 'sign' ? signKeypair(raw).pk : boxKeypair(raw).pk;
      if (deriveKid(use, pk) !== entry.kid) {
        throw new KeyIdMismatch(`private_keys.${what}[${i}]: kid is not derived from the key`);
      }
      const key = what === 'teams' ? `${entry.team}/${entry.kid}` : entry.kid;
      if (kids.has(key)) throw new MalformedObject(`private_keys.${what}[${i}]: duplicate kid`);
      kids.add(key);
    });
  }
  return value;
}

/** A copy of privateKeys with gen replaced (before sealing at a new gen). */
export function withGen(privateKeys, gen) {
  return { ...privateKeys, gen };
}

/** Identity keys, oldest first; the last is the current one. */
export function identityKeys(privateKeys) {
  return privateKeys.identity.map((e) => {
    const seed = b64d(e.seed, SEED_BYTES);
    return { kid: e.kid, pk: signKeypair(seed).pk, seed };
  });
}

/** Own encryption keys, oldest first, with their retirement time (null = current). */
export function encryptionKeys(privateKeys) {
  return privateKeys.encrypt.map((e) => {
    const { pk, sk } = boxKeypair(b64d(e.sk, KEY_BYTES));
    return { kid: e.kid, pk, sk, retired: e.retired };
  });
}

export function teamKeys(privateKeys) {
  return privateKeys.teams.map((e) => {
    const { pk, sk } = boxKeypair(b64d(e.sk, KEY_BYTES));
    return { team: e.team, kid: e.kid, pk, sk };
  });
}

export function currentIdentity(privateKeys) {
  const all = identityKeys(privateKeys);
  return all[all.length - 1];
}

export function currentEncryption(privateKeys) {
  return encryptionKeys(privateKeys).find((k) => k.retired === null);
}

// --- bundle seal / open ----------------------------------------------------------------
const ZERO = new Uint8Array([0]);

/** "postbox/v1/bundle" ‖ 0x00 ‖ kind ‖ 0x00 ‖ u32(gen) ‖ account (raw 16 bytes). */
export function bundleAad(kind, gen, account) {
  if (!KINDS.includes(kind)) throw new MalformedObject('bundle.kind: expected pass or recovery');
  return concatBytes(domain.BUNDLE, ZERO, utf8(kind), ZERO, u32(gen), b64d(account, ID_BYTES));
}

/** Shape of a bundle, nulls matching its kind, Argon2id parameters in range. */
export function checkBundle(bundle) {
  shapes.check(BUNDLE_SHAPE, bundle, 'bundle');
  const params = [bundle.salt, bundle.ops, bundle.mem];
  if (bundle.kind === 'pass') {
    if (params.some((p) => p === null)) {
      throw new MalformedObject('bundle: a pass bundle needs salt, ops and mem');
    }
    checkParams(bundle.ops, bundle.mem);
  } else if (params.some((p) => p !== null)) {
    throw new MalformedObject('bundle: a recovery bundle has null salt, ops and mem');
  }
  return bundle;
}

/**
 * Encrypt privateKeys under `key` at gen = privateKeys.gen. For kind 'pass' give the salt,
 * ops and mem the kek was derived with; for 'recovery' leave them null.
 */
export function sealBundle(privateKeys, key, account, {
  kind, salt = null, ops = null, mem = null, nonce = null,
} = {}) {
  checkPrivateKeys(privateKeys);
  const { gen } = privateKeys;
  const n = nonce ?? randomBytes(NONCE_BYTES);
  const bundle = {
    v: 1,
    kind,
    gen,
    salt: salt === null ? null : b64e(salt),
    ops,
    mem,
    nonce: b64e(n),
    ct: '',
  };
  const ct = aeadEncrypt(key, b64d(bundle.nonce, NONCE_BYTES), cj(privateKeys),
    bundleAad(kind, gen, account));
  bundle.ct = b64e(ct);
  return checkBundle(bundle);
}

/**
 * Decrypt and check a bundle; return its private_keys. Order: shape and parameters,
 * gen < minGen (StaleGeneration), AEAD (DecryptionFailed), canonical plaintext
 * (NonCanonical), private_keys shape and kids, private_keys.gen == bundle.gen.
 */
export function openBundle(bundle, key, account, { minGen = null } = {}) {
  checkBundle(bundle);
  if (minGen !== null && bundle.gen < minGen) {
    throw new StaleGeneration(`bundle gen ${bundle.gen} is older than ${minGen}`);
  }
  const nonce = b64d(bundle.nonce, NONCE_BYTES);
  const plaintext = aeadDecrypt(key, nonce, b64d(bundle.ct),
    bundleAad(bundle.kind, bundle.gen, account));
  const pks = checkPrivateKeys(parseCanonical(plaintext));
  if (pks.gen !== bundle.gen) throw new MalformedObject('private_keys.gen differs from bundle.gen');
  return pks;
}

/** Derive from a (new) passphrase with a fresh salt and seal a pass bundle → {bundle, keys}. */
export function sealPassBundle(privateKeys, passphrase, account, {
  salt = null, nonce = null, ops = DEFAULT_OPS, mem = DEFAULT_MEM, checkPassphrase = true,
} = {}) {
  if (checkPassphrase) checkNewPassphrase(passphrase);
  const s = salt ?? randomBytes(SALT_BYTES);
  const keys = derivePassKeys(passphrase, s, ops, mem);
  const bundle = sealBundle(privateKeys, keys.kek, account, {
    kind: 'pass', salt: s, ops, mem, nonce,
  });
  return { bundle, keys };
}

/** Derive the keys for a pass bundle from its own salt and parameters (checked first). */
export function passKeysFor(bundle, passphrase) {
  checkBundle(bundle);
  if (bundle.kind !== 'pass') throw new MalformedObject('bundle.kind: expected pass');
  return derivePassKeys(passphrase, b64d(bundle.salt, SALT_BYTES), bundle.ops, bundle.mem);
}

/**
 * passKeysFor then openBundle → {privateKeys, keys}. At login, the keys derived from the
 * challenge's salt and parameters open the bundle directly with openBundle instead.
 */
export function openPassBundle(bundle, passphrase, account, { minGen = null } = {}) {
  checkBundle(bundle);
  if (minGen !== null && bundle.gen < minGen) {
    throw new StaleGeneration(`bundle gen ${bundle.gen} is older than ${minGen}`);
  }
  const keys = passKeysFor(bundle, passphrase);
  return { privateKeys: openBundle(bundle, keys.kek, account, { minGen }), keys };
}

/**
 * Open `bundle` with `key` and seal its keys as a pass bundle for a new passphrase: for a
 * passphrase change, a re-key to the current defaults (checkPassphrase: false) and after a
 * recovery (then give gen = the server's pass gen + 1). → {bundle, privateKeys, keys}.
 */
export function rewrapBundle(bundle, key, account, newPassphrase, {
  gen = null, minGen = null, salt = null, nonce = null, ops = DEFAULT_OPS, mem = DEFAULT_MEM,
  checkPassphrase = true,
} = {}) {
  if (checkPassphrase) checkNewPassphrase(newPassphrase);
  const old = openBundle(bundle, key, account, { minGen });
  const newGen = gen ?? old.gen + 1;
  if (old.gen >= newGen && bundle.kind === 'pass') {
    throw new RangeError("the new gen must be higher than the old pass bundle's");
  }
  if (!(Number.isSafeInteger(newGen) && newGen >= 0 && newGen <= MAX_GEN)) {
    throw new RangeError('gen out of range');
  }
  const pks = withGen(old, newGen);
  const sealed = sealPassBundle(pks, newPassphrase, account, {
    salt, nonce, ops, mem, checkPassphrase: false,
  });
  return { bundle: sealed.bundle, privateKeys: pks, keys: sealed.keys };
}

/** True when a pass bundle's parameters differ from the current defaults. */
export function needsRekey(bundle) {
  checkBundle(bundle);
  return bundle.kind === 'pass' && (bundle.ops !== DEFAULT_OPS || bundle.mem !== DEFAULT_MEM);
}

// --- talking to argon2-worker.js ---------------------------------------------------------
let nextRequest = 1;

/**
 * Ask an argon2-worker.js Worker to run derivePassKeys; resolves to {kek, authSeed, authPk}
 * or rejects with the same error class (by name) the worker caught. The protocol: post
 * {id, passphrase, salt, ops, mem}; the worker answers {id, ok: true, kek, authSeed, authPk}
 * or {id, ok: false, name, message}.
 */
export function requestDerivation(worker, {
  passphrase, salt, ops = DEFAULT_OPS, mem = DEFAULT_MEM,
}) {
  const id = nextRequest;
  nextRequest += 1;
  return new Promise((resolve, reject) => {
    const onMessage = (event) => {
      const data = event.data;
      if (!data || data.id !== id) return;
      worker.removeEventListener('message', onMessage);
      if (data.ok) {
        resolve({ kek: data.kek, authSeed: data.authSeed, authPk: data.authPk });
      } else {
        // Rebuild the crypto core's own error class so that callers can use instanceof.
        const Cls = errors.ERROR_NAMES.includes(data.name) ? errors[data.name] : Error;
        const err = new Cls(data.message);
        if (Cls === Error) err.name = data.name;
        reject(err);
      }
    };
    worker.addEventListener('message', onMessage);
    worker.postMessage({ id, passphrase, salt, ops, mem });
  });
}
