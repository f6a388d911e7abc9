// Padmé padding (PROTOCOL.md §5, §6), mirroring padding.py. Integers only: E comes from
// Math.clz32 for L < 2^31, and rounding uses Math.ceil(L / 2**z) * 2**z, never 32-bit shifts.
import { BadPadding } from './errors.js';

export const MIN_PADDED = 256;
export const MAX_CONTENT = 2 ** 24;
export const MAX_FILE = 2 ** 31;
export const MARKER = 0x80;

function bitLength(n) {
  if (n < 2 ** 31) return 32 - Math.clz32(n);
  return n.toString(2).length; // exact for every safe integer
}

export function padme(length) {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('bad length');
  if (length < 2) return length;
  const e = bitLength(length) - 1;
  const s = bitLength(e);
  const z = e - s;
  return Math.ceil(length / 2 ** z) * 2 ** z;
}

export function paddedLength(length) {
  return Math.max(MIN_PADDED, padme(length + 1));
}

export function pad(data, limit = MAX_CONTENT) {
  if (data.length > limit) throw new BadPadding('content too large');
  const out = new Uint8Array(paddedLength(data.length));
  out.set(data, 0);
  out[data.length] = MARKER;
  return out;
}

export function unpad(padded, limit = MAX_CONTENT) {
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end -= 1;
  if (end < 0 || padded[end] !== MARKER) throw new BadPadding('padding marker missing');
  if (end > limit || paddedLength(end) !== padded.length) {
    throw new BadPadding('padded length does not match the length rule');
  }
  return padded.slice(0, end);
}
