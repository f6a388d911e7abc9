// The client side of the key-transparency log (PROTOCOL.md §7): tree heads and proofs,
// mirroring postbox/crypto/transparency.py one to one (camelCase names, option objects for
// Python's keyword arguments, the same checks in the same order, the same error names).
// Pure: no I/O. Browser-safe: SHA-256 through merkle.js (sodium.crypto_hash_sha256), no Node
// APIs.
//
// The client side is four modules, like the Python one: this one (tree heads), logevents.js
// (events, chains, the keys response), keystate.js (replay into key state), monitor.js (the
// owner's self-check and the auditor).
//
// Tree heads: sth = {v, size, root, ts} signed by the log key over "postbox/v1/sth" ‖ cj(sth),
// served as {sth, sig, log_key} (log_key = b64 public key, must equal the pinned one).
// verifyTreeHead checks signature and age (≤ 24 h old, ≤ 5 min in the future, against a
// caller-given `now`); advance moves the stored head forward (smaller/older → StaleTreeHead,
// same size other root or a failing consistency proof → ForkDetected); compareHeads is the
// recipient's fork check of a message's sth.
import * as domain from './domain.js';
import * as merkle from './merkle.js';
import * as shapes from './shapes.js';
import {
  KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj, parseCanonical,
} from './encoding.js';
import {
  BadProof, ForkDetected, KeyIdMismatch, MalformedObject, StaleTreeHead,
} from './errors.js';
import {
  checkSignPk, concatBytes, equal, sign, signKeypair, verify,
} from './primitives.js';

export const HASH_BYTES = merkle.HASH_BYTES;
/** Clients reject tree heads older than this (PROTOCOL.md §7). */
export const MAX_STH_AGE_MS = 24 * 3600 * 1000;
/** ... and heads dated further than this in the future. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
export const MAX_PATH = 64;

// --- shapes ------------------------------------------------------------------------------
export const V1 = shapes.constant(1);
export const SIG = shapes.b64(SIGNATURE_BYTES);
export const HASH = shapes.b64(HASH_BYTES);
export const TREE_HEAD_SHAPE = shapes.obj({
  v: V1, size: shapes.integer(1), root: HASH, ts: shapes.TIME,
});
export const SERVED_TREE_HEAD_SHAPE = shapes.obj({
  sth: TREE_HEAD_SHAPE, sig: SIG, log_key: shapes.b64(KEY_BYTES),
});
export const PATH_SHAPE = shapes.array(HASH, MAX_PATH);
const CONSISTENCY_RESPONSE_SHAPE = shapes.obj({
  first: shapes.integer(1), second: shapes.integer(1), path: PATH_SHAPE,
});
const INCLUSION_RESPONSE_SHAPE = shapes.obj({
  index: shapes.COUNT, size: shapes.integer(1), leaf: shapes.b64(null), path: PATH_SHAPE,
});
const STH_REF_SHAPE = shapes.obj({ size: shapes.integer(1), root: HASH });

/** A response as given: parsed (canonical JSON only) if bytes, else as is. */
export function wire(value) {
  return value instanceof Uint8Array ? parseCanonical(value) : value;
}

/** `value` if it is a HASH_BYTES hash, else MalformedObject. */
export function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) {
    throw new MalformedObject(`${what} must be ${HASH_BYTES} bytes`);
  }
  return value;
}

/** A proof path from its wire form (a list of b64 hashes). */
export function decodePath(path) {
  shapes.check(PATH_SHAPE, path, 'path');
  return path.map((p) => b64d(p, HASH_BYTES));
}

// --- tree heads --------------------------------------------------------------------------
export function makeTreeHead({ size, root, ts }) {
  const sth = {
    v: 1, size, root: b64e(checkHash(root, 'root')), ts,
  };
  shapes.check(TREE_HEAD_SHAPE, sth, 'sth');
  return sth;
}

/** The log's side: the served form {sth, sig, log_key}. */
export function signTreeHead(sth, logSeed) {
  shapes.check(TREE_HEAD_SHAPE, sth, 'sth');
  const { pk } = signKeypair(logSeed);
  return { sth, sig: b64e(sign(logSeed, concatBytes(domain.STH, cj(sth)))), log_key: b64e(pk) };
}

/** The log's signature over sth (no freshness check). Throws BadSignature. */
export function verifyHeadSig(sth, sig, logPk) {
  checkSignPk(logPk);
  verify(logPk, concatBytes(domain.STH, cj(sth)), b64d(sig, SIGNATURE_BYTES));
}

/** Reject a head older than maxAgeMs or dated more than 5 min after `now`. */
export function checkFresh(sth, { now, maxAgeMs = MAX_STH_AGE_MS }) {
  if (sth.ts < now - maxAgeMs) throw new StaleTreeHead('tree head is older than 24 hours');
  if (sth.ts > now + MAX_CLOCK_SKEW_MS) throw new StaleTreeHead('tree head is dated in the future');
}

/**
 * Verify GET /api/v1/transparency/sth under the pinned log key and check its age. Another
 * log_key than the pinned one throws KeyIdMismatch, a bad signature BadSignature.
 */
export function verifyTreeHead(served, logPk, { now, maxAgeMs = MAX_STH_AGE_MS }) {
  const s = wire(served);
  shapes.check(SERVED_TREE_HEAD_SHAPE, s, 'served tree head');
  if (!equal(b64d(s.log_key, KEY_BYTES), logPk)) {
    throw new KeyIdMismatch('tree head from another log key than the pinned one');
  }
  verifyHeadSig(s.sth, s.sig, logPk);
  checkFresh(s.sth, { now, maxAgeMs });
  return s.sth;
}

/**
 * The head to store after verifying `next` (signature and age already checked). `proof` is
 * the consistency proof from last.size to next.size (byte arrays), needed when the tree grew.
 */
export function advance(last, next, proof = null) {
  shapes.check(TREE_HEAD_SHAPE, next, 'sth');
  if (last === null || last === undefined) return next;
  shapes.check(TREE_HEAD_SHAPE, last, 'last sth');
  if (next.size < last.size) throw new StaleTreeHead('tree head smaller than the last one stored');
  const newRoot = b64d(next.root, HASH_BYTES);
  const lastRoot = b64d(last.root, HASH_BYTES);
  if (next.size === last.size && !equal(newRoot, lastRoot)) {
    throw new ForkDetected('two tree heads of the same size with different roots');
  }
  if (next.ts < last.ts) throw new StaleTreeHead('tree head older than the last one stored');
  if (next.size > last.size) {
    if (proof === null || proof === undefined) {
      throw new BadProof('a consistency proof is needed to advance the tree head');
    }
    try {
      merkle.verifyConsistency(last.size, next.size, proof, lastRoot, newRoot);
    } catch (e) {
      if (e?.name === 'BadProof') {
        throw new ForkDetected('new tree head is not an extension of the stored one');
      }
      throw e;
    }
  }
  return next;
}

/** verifyTreeHead then advance: the new head to store. */
export function verifySth(served, logPk, {
  now, last = null, proof = null, maxAgeMs = MAX_STH_AGE_MS,
}) {
  return advance(last, verifyTreeHead(served, logPk, { now, maxAgeMs }), proof);
}

/** The path of …/consistency?first=&second= after checking it answers that question. */
export function consistencyPath(response, first, second) {
  const r = wire(response);
  shapes.check(CONSISTENCY_RESPONSE_SHAPE, r, 'consistency response');
  if (r.first !== first || r.second !== second) {
    throw new BadProof('consistency proof for other tree sizes');
  }
  return decodePath(r.path);
}

/** Check …/inclusion?index=&size= against a verified head; returns the leaf bytes. */
export function verifyInclusionResponse(response, sth) {
  const r = wire(response);
  shapes.check(INCLUSION_RESPONSE_SHAPE, r, 'inclusion response');
  if (r.size !== sth.size) throw new BadProof('inclusion proof for another tree size');
  const leaf = b64d(r.leaf);
  merkle.verifyInclusion(
    merkle.leafHash(leaf), r.index, r.size, decodePath(r.path), b64d(sth.root, HASH_BYTES),
  );
  return leaf;
}

/**
 * The recipient's fork check of a message's sth (n, root) against its own verified head
 * (m, root_m): n > m → 'advance' (advance first, then call again); n = m → 'consistent' if
 * the roots are equal, else ForkDetected; n < m → 'need_proof' without `proof`, with it
 * 'consistent' or ForkDetected.
 */
export function compareHeads(messageSth, own, proof = null) {
  const ref = { size: messageSth?.size, root: messageSth?.root };
  shapes.check(STH_REF_SHAPE, ref, 'message sth');
  shapes.check(TREE_HEAD_SHAPE, own, 'own sth');
  const n = ref.size;
  const m = own.size;
  const rootN = b64d(ref.root, HASH_BYTES);
  const rootM = b64d(own.root, HASH_BYTES);
  if (n > m) return 'advance';
  if (n === m) {
    if (!equal(rootN, rootM)) throw new ForkDetected('the sender saw another tree of the same size');
    return 'consistent';
  }
  if (proof === null || proof === undefined) return 'need_proof';
  try {
    merkle.verifyConsistency(n, m, proof, rootN, rootM);
  } catch (e) {
    if (e?.name === 'BadProof') throw new ForkDetected("the sender's tree head is not a prefix of ours");
    throw e;
  }
  return 'consistent';
}
