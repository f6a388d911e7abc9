// Strict encodings of PROTOCOL.md §1 (mirrors encoding.py): b64url, canonical JSON (cj)
// and the "canonical on the wire" check.
import { sodium } from './primitives.js';
import { EncodingError, NonCanonical } from './errors.js';

export const SALT_BYTES = 16;
export const CHALLENGE_BYTES = 32;
export const NONCE_BYTES = 24;
export const KEY_BYTES = 32; // mk, file key, public key, commit, hash, root
export const SEALED_KEY_BYTES = 80;
export const SIGNATURE_BYTES = 64;
export const DIGEST_BYTES = 64;
export const ID_BYTES = 16; // kids and every id
export const CODE_BYTES = 20; // recovery key and activation code
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 − 1
export const MAX_DEPTH = 32;

const B64_ALPHABET = /^[A-Za-z0-9_-]*$/;
const utf8Encoder = new TextEncoder();
// fatal: reject invalid UTF-8; ignoreBOM: keep a BOM so that it makes the body non-canonical.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text) {
  return utf8Encoder.encode(text);
}

export function fromUtf8(bytes) {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new NonCanonical('body is not UTF-8');
  }
}

/** base64url without padding. */
export function b64e(bytes) {
  return sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
}

/** Strict base64url decoding; with `size`, require exactly that many bytes. */
export function b64d(text, size = null) {
  if (typeof text !== 'string') throw new EncodingError('b64 value must be a string');
  if (text.length % 4 === 1 || !B64_ALPHABET.test(text)) {
    throw new EncodingError('not strict base64url');
  }
  let raw;
  try {
    raw = sodium.from_base64(text, sodium.base64_variants.URLSAFE_NO_PADDING);
  } catch {
    throw new EncodingError('not strict base64url');
  }
  if (b64e(raw) !== text) throw new EncodingError('non-zero trailing bits in base64url');
  if (size !== null && raw.length !== size) {
    throw new EncodingError(`expected ${size} bytes, got ${raw.length}`);
  }
  return raw;
}

/** 4-byte big-endian unsigned integer. */
export function u32(n) {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new EncodingError('u32 out of range');
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

// --- canonical JSON -----------------------------------------------------------------------

const LONE_SURROGATE = /\p{Surrogate}/u;

function isWellFormed(s) {
  return typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
}

// JSON.stringify of a (well-formed) string escapes exactly `"` `\` and U+0000..U+001F with
// \b \t \n \f \r and lower-case \u00xx: RFC 8785 §3.2.2.2 to the letter.
function encodeString(s) {
  if (!isWellFormed(s)) throw new NonCanonical('lone surrogate in a string');
  return JSON.stringify(s);
}

// Default sort order of JS strings is by UTF-16 code units, which is what RFC 8785 wants.
function compareUtf16(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function emit(value, out, depth) {
  if (value === null) {
    out.push('null');
  } else if (value === true) {
    out.push('true');
  } else if (value === false) {
    out.push('false');
  } else if (typeof value === 'string') {
    out.push(encodeString(value));
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
      throw new NonCanonical('numbers must be integers within ±(2^53−1)');
    }
    out.push(String(value));
  } else if (Array.isArray(value)) {
    if (depth >= MAX_DEPTH) throw new NonCanonical('nesting deeper than 32');
    out.push('[');
    value.forEach((item, i) => {
      if (i) out.push(',');
      emit(item, out, depth + 1);
    });
    out.push(']');
  } else if (typeof value === 'object' && Object.getPrototypeOf(value) !== null
             && Object.getPrototypeOf(value) !== Object.prototype) {
    throw new NonCanonical(`${value.constructor?.name ?? 'object'} is not allowed in canonical JSON`);
  } else if (typeof value === 'object') {
    if (depth >= MAX_DEPTH) throw new NonCanonical('nesting deeper than 32');
    out.push('{');
    let first = true;
    for (const name of Object.keys(value).sort(compareUtf16)) {
      if (value[name] === undefined) throw new NonCanonical('undefined is not allowed');
      if (!first) out.push(',');
      first = false;
      out.push(encodeString(name), ':');
      emit(value[name], out, depth + 1);
    }
    out.push('}');
  } else {
    throw new NonCanonical(`${typeof value} is not allowed in canonical JSON`);
  }
}

/** Canonical JSON of `value` as UTF-8 bytes (PROTOCOL.md §1). */
export function cj(value) {
  const out = [];
  emit(value, out, 0);
  return utf8(out.join(''));
}

/** Strict JSON from UTF-8 bytes (no canonical requirement). */
export function parseJson(bytes) {
  const text = fromUtf8(bytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new NonCanonical('body is not JSON');
  }
}

/**
 * Parse `bytes` and accept them only if they are exactly cj of what they parse to.
 * Duplicate names, escapes that are not needed, unsafe or fractional numbers, whitespace
 * and lone surrogates all make the re-encoding differ (or fail), so they are rejected.
 */
export function parseCanonical(bytes) {
  const value = parseJson(bytes);
  const again = cj(value);
  if (again.length !== bytes.length || !sodium.memcmp(again, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes))) {
    throw new NonCanonical('body is not canonical JSON');
  }
  return value;
}
