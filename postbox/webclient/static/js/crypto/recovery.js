// The recovery key (PROTOCOL.md §4), mirroring postbox/crypto/recovery.py.
//
// rk = 20 random bytes, shown once as 32 Crockford-base32 symbols in 8 groups of 4 plus a
// checksum group (the first 4 Crockford symbols of H(rk), BLAKE2b-256):
//   ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345-6789-CHKS
// recovery kek = H(key=rk, "postbox/v1/recovery-kek");
// recovery auth key = Ed25519 from seed H(key=rk, "postbox/v1/recovery-auth").
// Parsing forgives case, spaces, tabs, line breaks and hyphens (also U+2010..U+2015 and
// U+2212), full-width forms (NFKC), I/L read as 1 and O as 0; anything else, a wrong length
// or a wrong checksum is BadRecoveryKey.
import * as crockford from './crockford.js';
import * as domain from './domain.js';
import { CODE_BYTES } from './encoding.js';
import { BadRecoveryKey, MalformedObject } from './errors.js';
import { checkBundle, openBundle, sealBundle } from './bundle.js';
import { H, equal, randomBytes, signKeypair } from './primitives.js';

export const RECOVERY_KEY_BYTES = CODE_BYTES; // 20
export const KEY_SYMBOLS = 32;
export const CHECKSUM_SYMBOLS = 4;
export const GROUP = 4;
/** Removed before decoding; the same list as recovery.py. */
export const SEPARATORS = new Set([
  ' ', '\t', '\r', '\n', '-', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2015',
  '\u2212',
]);
const ASCII = /^[\x00-\x7f]*$/;
const enc = new TextEncoder();

function checkRk(rk) {
  if (!(rk instanceof Uint8Array) || rk.length !== RECOVERY_KEY_BYTES) {
    throw new BadRecoveryKey('a recovery key is 20 bytes');
  }
}

/** 20 fresh random bytes (or `rk`, checked, for vectors). */
export function generateRecoveryKey({ rk = null } = {}) {
  const out = rk ?? randomBytes(RECOVERY_KEY_BYTES);
  checkRk(out);
  return out;
}

/** The first 4 Crockford symbols of H(rk) (BLAKE2b-256). */
export function checksum(rk) {
  checkRk(rk);
  return crockford.encode(H(rk).slice(0, 5)).slice(0, CHECKSUM_SYMBOLS);
}

/** XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-CCCC (upper case, for printing). */
export function formatRecoveryKey(rk) {
  checkRk(rk);
  return crockford.group(crockford.encode(rk) + checksum(rk), GROUP, '-');
}

/** NFKC, drop separators, upper-case, I/L→1 O→0; BadRecoveryKey on anything else. */
export function cleanSymbols(text) {
  if (typeof text !== 'string') throw new BadRecoveryKey('expected text');
  let kept = '';
  for (const ch of text.normalize('NFKC')) if (!SEPARATORS.has(ch)) kept += ch;
  // Refuse non-ASCII before upper-casing, so that e.g. a dotless i is not read as 1.
  if (!ASCII.test(kept)) throw new BadRecoveryKey('not a Crockford base32 character');
  try {
    return crockford.normalize(kept);
  } catch {
    throw new BadRecoveryKey('not a Crockford base32 character');
  }
}

/** The 20-byte rk from what the user typed; BadRecoveryKey on a typo or wrong length. */
export function parseRecoveryKey(text) {
  const symbols = cleanSymbols(text);
  if (symbols.length !== KEY_SYMBOLS + CHECKSUM_SYMBOLS) {
    throw new BadRecoveryKey(
      `a recovery key has ${KEY_SYMBOLS + CHECKSUM_SYMBOLS} characters, got ${symbols.length}`,
    );
  }
  const rk = crockford.decode(symbols.slice(0, KEY_SYMBOLS));
  if (!equal(enc.encode(checksum(rk)), enc.encode(symbols.slice(KEY_SYMBOLS)))) {
    throw new BadRecoveryKey('checksum does not match: a character is mistyped');
  }
  return rk;
}

/** Recovery kek and recovery auth key: {kek, authSeed, authPk}. */
export function recoveryKeys(rk) {
  checkRk(rk);
  const authSeed = H(domain.RECOVERY_AUTH, 32, rk);
  return { kek: H(domain.RECOVERY_KEK, 32, rk), authSeed, authPk: signKeypair(authSeed).pk };
}

/** Seal privateKeys (at its gen) as a recovery bundle → {bundle, keys}. */
export function sealRecoveryBundle(privateKeys, rk, account, { nonce = null } = {}) {
  const keys = recoveryKeys(rk);
  return { bundle: sealBundle(privateKeys, keys.kek, account, { kind: 'recovery', nonce }), keys };
}

/** Open a recovery bundle (kind must be 'recovery'); see openBundle. */
export function openRecoveryBundle(bundle, rk, account, { minGen = null } = {}) {
  checkBundle(bundle);
  if (bundle.kind !== 'recovery') throw new MalformedObject('bundle.kind: expected recovery');
  return openBundle(bundle, recoveryKeys(rk).kek, account, { minGen });
}
