// Derived key ids (PROTOCOL.md §3), mirroring kid.py.
import * as domain from './domain.js';
import { b64e, ID_BYTES, utf8 } from './encoding.js';
import { H, concatBytes } from './primitives.js';

export const USES = Object.freeze(['sign', 'encrypt']);
const ZERO = new Uint8Array([0]);

export function deriveKid(use, pk) {
  if (!USES.includes(use)) throw new TypeError("use must be 'sign' or 'encrypt'");
  return b64e(H(concatBytes(domain.KID, ZERO, utf8(use), ZERO, pk), ID_BYTES));
}

export function kidMatches(kid, use, pk) {
  const expected = deriveKid(use, pk);
  // kids are public; a plain comparison of equal-length strings is fine, but keep it uniform.
  return typeof kid === 'string' && kid.length === expected.length && kid === expected;
}
