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
// reseal it (see bundle.py for the full discussion).
import * as crockford from './crockford.js';
import * as domain from './domain.js';
import * as shapes from './shapes.js';
import {
  ID_BYTES, KEY_BYTES, NONCE_BYTES, SALT_BYTES, b64d, b64e, cj, parseCanonical, u32, utf8,
} from './encoding.js';
import * as errors from './errors.js';
import {
  EncodingError, KeyIdMismatch, MalformedObject, StaleGeneration, UnsupportedParameters,
  WeakPassphrase,
} from './errors.js';
import { deriveKid } from './kid.js';
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

// --- passphrase rules ------------------------------------------------------------------
/** A new passphrase needs an estimated strength of at least this many bits. */
export const STRENGTH_THRESHOLD_BITS = 60;
export const MAX_PASSPHRASE_CHARS = 1024; // code points after NFKC
export const GENERATED_PASSPHRASE_BYTES = 15; // 120 bits → 24 Crockford symbols
/** Reason codes carried as the message of WeakPassphrase. */
export const REASONS = Object.freeze([
  'empty', 'too_long', 'surrogate', 'non_bmp', 'private_use', 'unassigned', 'control',
  'too_weak',
]);

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

// --- passphrase rules and strength estimate ---------------------------------------------
// Unicode property escapes use the engine's own tables (Node 20: Unicode 15.1+; a browser's
// may be newer or older). Residual risk, as in bundle.py: a code point assigned in one
// client's Unicode version but not in another's passes here and is "unassigned" (NFKC-
// unchanged) there; if it has a compatibility decomposition the two derive different keys.
const CATEGORY_CHECKS = [
  ['surrogate', /^\p{Cs}$/u],
  ['private_use', /^\p{Co}$/u],
  ['unassigned', /^\p{Cn}$/u],
  ['control', /^\p{Cc}$/u],
];

function codePointProblem(ch) {
  if (ch.codePointAt(0) > 0xffff) return 'non_bmp';
  for (const [reason, re] of CATEGORY_CHECKS) if (re.test(ch)) return reason;
  return null;
}

/**
 * The reason code a new passphrase is refused for, or null. In this order: 'empty'; then
 * for each code point of the passphrase as typed and then of its NFKC form, left to right,
 * the first of 'non_bmp' (> U+FFFF), 'surrogate' (Cs), 'private_use' (Co), 'unassigned'
 * (Cn), 'control' (Cc); then 'too_long' (> 1024 code points after NFKC); then 'too_weak'
 * (passphraseStrength below STRENGTH_THRESHOLD_BITS).
 */
export function passphraseProblem(passphrase) {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
  if (passphrase === '') return 'empty';
  const normalized = passphrase.normalize('NFKC');
  for (const text of [passphrase, normalized]) {
    for (const ch of text) {
      const problem = codePointProblem(ch);
      if (problem !== null) return problem;
    }
  }
  if ([...normalized].length > MAX_PASSPHRASE_CHARS) return 'too_long';
  if (passphraseStrength(passphrase) < STRENGTH_THRESHOLD_BITS) return 'too_weak';
  return null;
}

/** Throw WeakPassphrase (message = reason code) unless acceptable at creation. */
export function checkNewPassphrase(passphrase) {
  const problem = passphraseProblem(passphrase);
  if (problem !== null) throw new WeakPassphrase(problem);
}

// Only ASCII is told apart: case mapping and letter categories of other scripts vary
// between Unicode versions, so every non-ASCII code point is one class.
export const POOL_LOWER = 26; // a-z
export const POOL_UPPER = 26; // A-Z
export const POOL_DIGIT = 10; // 0-9
export const POOL_SYMBOL = 33; // every other code point below U+0080
export const POOL_OTHER = 40; // any code point from U+0080
export const WORD_QUARTER_BITS = 40; // a common word costs 10 bits, whatever its length
const LEET = new Map([
  ['0', 'o'], ['1', 'i'], ['3', 'e'], ['4', 'a'], ['5', 's'], ['7', 't'], ['@', 'a'],
  ['$', 's'], ['!', 'i'],
]);

/** Very common passwords and base words (the same list as bundle.py, written for this project). */
export const COMMON_WORDS = new Set(`
  abcd access admin administrator alexander amazon angel anna apple asdf asdfgh
  asdfghjkl ashley baby baseball batman bayern berlin bitte blink butterfly charlie
  cheese chelsea chocolate computer cookie daniel deutschland dragon eintracht
  familie flower football freedom fussball galatasaray geheim hallo hamburg hannah
  hello hockey hunter iloveyou internet istanbul jennifer jessica jordan junior
  killer kiev kyiv lasagne letmein liebe love lovely maggie master matrix michael
  michelle monkey mustang nicole ninja passw passwort password passwords pepper
  postbox postfach princess qazwsx qwer qwert qwertz qwerty qwertyuiop robert
  schalke schatz secret shadow soccer sommer starwars summer sunshine superman
  tigger trustno welcome whatever willkommen winter yxcvb zxcvbn zxcvbnm
  şifre sifre parola merhaba ankara пароль кохання сонечко привіт україна
`.split(/\s+/).filter((w) => w !== ''));
const WORD_LENGTHS = [...COMMON_WORDS].map((w) => [...w].length);
const MIN_WORD = Math.min(...WORD_LENGTHS);
const MAX_WORD = Math.max(...WORD_LENGTHS);

function asciiLower(cp) {
  return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
}

function charClassPool(cp) {
  if (cp >= 0x61 && cp <= 0x7a) return ['lower', POOL_LOWER];
  if (cp >= 0x41 && cp <= 0x5a) return ['upper', POOL_UPPER];
  if (cp >= 0x30 && cp <= 0x39) return ['digit', POOL_DIGIT];
  if (cp < 0x80) return ['symbol', POOL_SYMBOL];
  return ['other', POOL_OTHER];
}

/** floor(4 · log2(pool)) in integers: the largest k with 2^k ≤ pool^4 (exact doubles). */
function quarterLog2(pool) {
  const target = pool ** 4;
  let k = 0;
  while (2 ** (k + 1) <= target) k += 1;
  return k;
}

/**
 * A deterministic strength estimate in whole bits, identical to bundle.py:
 *  1. s = code points of NFKC(passphrase); empty → 0.
 *  2. t = s with ASCII A-Z lower-cased only; u = t with the leet map
 *     0→o 1→i 3→e 4→a 5→s 7→t @→a $→s !→i.
 *  3. Pool P = sum over classes present in s of: a-z 26, A-Z 26, 0-9 10, other code points
 *     below U+0080 33, code points from U+0080 40; each counted character is worth
 *     b = floor(4·log2(P)) quarter bits (largest k with 2^k ≤ P^4).
 *  4. Scanning u from the left, at each position the longest word of COMMON_WORDS starting
 *     there is matched (its characters are skipped) and adds 40 quarter bits.
 *  5. Position i is patterned if t[i] == t[i-1], or t[i]-t[i-1] == t[i-1]-t[i-2] with
 *     |t[i]-t[i-1]| == 1, or the trigram t[i-2..i] already occurred starting at ≤ i-3.
 *  6. Every character neither matched nor patterned adds b.
 *  7. Result = total quarter bits // 4.
 * A floor against the commonest weak choices, not a guarantee.
 */
export function passphraseStrength(passphrase) {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
  const s = Array.from(passphrase.normalize('NFKC'), (ch) => ch.codePointAt(0));
  const n = s.length;
  if (n === 0) return 0;
  const t = s.map(asciiLower);
  const u = t.map((cp) => {
    const ch = String.fromCodePoint(cp);
    return LEET.get(ch) ?? ch;
  });

  const pools = new Map(s.map(charClassPool));
  let pool = 0;
  for (const size of pools.values()) pool += size;
  const perChar = quarterLog2(pool);

  const matched = new Array(n).fill(false);
  let quarters = 0;
  let i = 0;
  while (i < n) {
    let length = 0;
    for (let size = Math.min(MAX_WORD, n - i); size >= MIN_WORD; size -= 1) {
      if (COMMON_WORDS.has(u.slice(i, i + size).join(''))) {
        length = size;
        break;
      }
    }
    if (length) {
      for (let j = i; j < i + length; j += 1) matched[j] = true;
      quarters += WORD_QUARTER_BITS;
      i += length;
    } else {
      i += 1;
    }
  }

  const seen = new Set();
  for (let k = 0; k < n; k += 1) {
    let patterned = k >= 1 && t[k] === t[k - 1];
    if (k >= 2) {
      const step = t[k] - t[k - 1];
      if (Math.abs(step) === 1 && step === t[k - 1] - t[k - 2]) patterned = true;
      const trigram = `${t[k - 2]},${t[k - 1]},${t[k]}`;
      if (seen.has(trigram)) patterned = true;
      seen.add(trigram);
    }
    if (!matched[k] && !patterned) quarters += perChar;
  }
  return Math.floor(quarters / 4);
}

/**
 * A random passphrase: 6 groups of 4 lower-case Crockford symbols (120 bits). `entropy`
 * (15 bytes) fixes it for tests; fresh draws that fail the rules are redrawn (so the
 * result always passes), a given entropy that fails throws a RangeError.
 */
export function generatePassphrase({ entropy = null } = {}) {
  for (;;) {
    const raw = entropy ?? randomBytes(GENERATED_PASSPHRASE_BYTES);
    if (!(raw instanceof Uint8Array) || raw.length !== GENERATED_PASSPHRASE_BYTES) {
      throw new RangeError('entropy must be 15 bytes');
    }
    const phrase = crockford.group(crockford.encode(raw).toLowerCase(), 4, '-');
    if (passphraseProblem(phrase) === null) return phrase;
    if (entropy !== null) {
      throw new RangeError('this entropy gives a passphrase that fails the rules');
    }
  }
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
