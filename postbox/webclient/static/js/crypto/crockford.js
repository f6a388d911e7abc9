// Crockford base32 (mirrors crockford.py): fingerprints, recovery keys, activation codes.
import { EncodingError } from './errors.js';

export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const VALUES = new Map([...ALPHABET].map((c, i) => [c, i]));
VALUES.set('I', 1);
VALUES.set('L', 1);
VALUES.set('O', 0);

/** Big-endian 5-bit symbols; the input length must be a multiple of 5 bytes. */
export function encode(bytes) {
  if (bytes.length % 5) throw new EncodingError('crockford input must be a multiple of 5 bytes');
  let out = '';
  for (let i = 0; i < bytes.length; i += 5) {
    // 40 bits per group of 5 bytes: exact in a double.
    let n = 0;
    for (let j = 0; j < 5; j += 1) n = n * 256 + bytes[i + j];
    for (let k = 7; k >= 0; k -= 1) out += ALPHABET[Math.floor(n / 2 ** (5 * k)) % 32];
  }
  return out;
}

/** Upper-case, drop spaces and hyphens, map I/L→1 and O→0; reject anything else. */
export function normalize(text) {
  let out = '';
  for (const ch of text.toUpperCase()) {
    if (ch === ' ' || ch === '-' || ch === '\t') continue;
    const v = VALUES.get(ch);
    if (v === undefined) throw new EncodingError('not a Crockford base32 character');
    out += ALPHABET[v];
  }
  return out;
}

export function decode(text) {
  const symbols = normalize(text);
  if (symbols.length % 8) throw new EncodingError('crockford text must be a multiple of 8 symbols');
  const out = new Uint8Array((symbols.length / 8) * 5);
  for (let i = 0; i < symbols.length; i += 8) {
    let n = 0;
    for (let k = 0; k < 8; k += 1) n = n * 32 + VALUES.get(symbols[i + k]);
    for (let j = 4; j >= 0; j -= 1) {
      out[(i / 8) * 5 + j] = n % 256;
      n = Math.floor(n / 256);
    }
  }
  return out;
}

export function group(symbols, size = 4, sep = '-') {
  const parts = [];
  for (let i = 0; i < symbols.length; i += size) parts.push(symbols.slice(i, i + size));
  return parts.join(sep);
}
