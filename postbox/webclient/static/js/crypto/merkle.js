// RFC 9162 §2.1 Merkle trees for the key-transparency log (PROTOCOL.md §7), mirroring
// postbox/keys/merkle.py. leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right),
// a list of n > 1 leaves splits at the largest power of two smaller than n.
//
// The client side needs the verifiers: verifyInclusion (§2.1.3.2) and verifyConsistency
// (§2.1.4.2, for 1 ≤ first ≤ second; first == second needs an empty path and equal roots).
// They check every integer and hash, require the path to have exactly the length the sizes
// imply, then run the RFC algorithm step by step. Every failure throws BadProof.
//
// Sizes and indices are JavaScript safe integers (≤ 2^53 − 1). The index arithmetic of the
// verifiers runs on BigInt because `>>` and `&` on numbers are 32-bit.
//
// MemoryTree (with the planning helpers it is built on) generates roots and proofs in
// memory, for tests and for clients that replay a log (the auditor).
//
// Synchronous: the module waits for libsodium once, when primitives.js is imported.
// No Node APIs: runs in browsers and Web Workers.
import { sodium, concatBytes, equal } from './primitives.js';
import { BadProof } from './errors.js';

export const HASH_BYTES = 32;
export const MAX_TREE_SIZE = Number.MAX_SAFE_INTEGER;
const LEAF_PREFIX = Uint8Array.of(0);
const NODE_PREFIX = Uint8Array.of(1);

/** MTH({}) = SHA-256() (RFC 9162 §2.1.1). */
export const EMPTY_ROOT = sodium.crypto_hash_sha256(new Uint8Array(0));

/** SHA-256(0x00 ‖ data): the hash of one leaf. */
export function leafHash(data) {
  return sodium.crypto_hash_sha256(concatBytes(LEAF_PREFIX, data));
}

/** SHA-256(0x01 ‖ left ‖ right). Lengths are checked by the callers, not here. */
export function nodeHash(left, right) {
  return sodium.crypto_hash_sha256(concatBytes(NODE_PREFIX, left, right));
}

/** Right fold: fold([a, b, c]) = node(a, node(b, c)), the hash of a right-edge range. */
export function fold(hashes) {
  if (hashes.length === 0) throw new RangeError('fold of no hashes');
  let acc = hashes[hashes.length - 1];
  for (let i = hashes.length - 2; i >= 0; i -= 1) acc = nodeHash(hashes[i], acc);
  return acc;
}

// --- exact path lengths ------------------------------------------------------------------
function bitLength(x) {
  return x === 0n ? 0 : x.toString(2).length;
}

function popCount(x) {
  let count = 0;
  for (const digit of x.toString(2)) if (digit === '1') count += 1;
  return count;
}

/** Number of hashes in PATH(index, D[size]) (0 ≤ index < size). */
export function inclusionProofLength(index, size) {
  const i = BigInt(index);
  const inner = bitLength(i ^ BigInt(size - 1)); // levels below the fork of the two paths
  return inner + popCount(i >> BigInt(inner)); // plus one per perfect node on the left
}

/** Number of hashes in PROOF(first, D[second]) (1 ≤ first ≤ second). */
export function consistencyProofLength(first, second) {
  if (first === second) return 0;
  const f = BigInt(first);
  const shift = bitLength(f & -f) - 1; // the biggest perfect subtree ending at first
  const length = inclusionProofLength(first - 1, second) - shift;
  return f === 1n << BigInt(shift) ? length : length + 1; // its hash, unless it is the first root
}

// --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ----------------------------------------
function checkInt(n, what, min) {
  if (!Number.isSafeInteger(n) || n < min) throw new BadProof(`${what} out of range`);
  return n;
}

function checkHash(h, what) {
  if (!(h instanceof Uint8Array) || h.length !== HASH_BYTES) {
    throw new BadProof(`${what} is not a ${HASH_BYTES}-byte hash`);
  }
  return h;
}

function checkPath(path, length) {
  if (!Array.isArray(path) || path.length !== length) throw new BadProof('proof has the wrong length');
  return path.map((p) => checkHash(p, 'proof element'));
}

/**
 * The root that `path` proves leaf `index` (with this leaf hash) to be under in a tree of
 * `size` leaves: RFC 9162 §2.1.3.2 steps 1–4 and the `sn == 0` half of step 5.
 */
export function rootFromInclusion(leafHash_, index, size, path) {
  checkInt(size, 'size', 1);
  checkInt(index, 'index', 0);
  if (index >= size) throw new BadProof('index must be smaller than size'); // step 1
  let r = checkHash(leafHash_, 'leaf hash'); // step 3
  const proof = checkPath(path, inclusionProofLength(index, size));
  let fn = BigInt(index); // step 2
  let sn = BigInt(size - 1);
  for (const p of proof) { // step 4
    if (sn === 0n) throw new BadProof('proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new BadProof('proof too short'); // step 5, first half
  return r;
}

/** Throws BadProof unless leaf `index` of the tree (`size`, `root`) has `leafHash_`. */
export function verifyInclusion(leafHash_, index, size, path, root) {
  checkHash(root, 'root');
  const computed = rootFromInclusion(leafHash_, index, size, path);
  if (!equal(computed, root)) throw new BadProof('inclusion proof does not match the root');
}

/**
 * Throws BadProof unless the tree (`first`, `firstRoot`) is a prefix of the tree
 * (`second`, `secondRoot`). first == second needs an empty path and equal roots.
 */
export function verifyConsistency(first, second, path, firstRoot, secondRoot) {
  checkInt(second, 'second', 1);
  checkInt(first, 'first', 1);
  if (first > second) throw new BadProof('first must not exceed second');
  checkHash(firstRoot, 'first root');
  checkHash(secondRoot, 'second root');
  const proof = checkPath(path, consistencyProofLength(first, second));
  if (first === second) {
    if (!equal(firstRoot, secondRoot)) throw new BadProof('trees of equal size with different roots');
    return;
  }
  let fn = BigInt(first - 1); // step 3
  let sn = BigInt(second - 1);
  if ((BigInt(first) & fn) === 0n) proof.unshift(firstRoot); // step 2: first is a power of two
  while ((fn & 1n) === 1n) { // step 4
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = proof[0]; // step 5
  let sr = proof[0];
  for (const c of proof.slice(1)) { // step 6
    if (sn === 0n) throw new BadProof('proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  const okFirst = equal(fr, firstRoot); // step 7; both comparisons always run
  const okSecond = equal(sr, secondRoot);
  if (!(okFirst && okSecond && sn === 0n)) {
    throw new BadProof('consistency proof does not match the roots');
  }
}

// --- planning: which perfect subtrees a root or proof needs -------------------------------
// A node {level, index} covers leaves [index·2^level, (index+1)·2^level). Numbers, not
// bit operations, so that everything stays exact up to 2^53.

function checkCount(n, what, min) {
  if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`${what} out of range`);
  return n;
}

/** The fewest perfect nodes covering leaves [begin, end), left to right. */
export function rangeNodes(begin, end) {
  checkCount(begin, 'begin', 0);
  checkCount(end, 'end', 0);
  if (begin > end) throw new RangeError('begin > end');
  const nodes = [];
  let pos = begin;
  while (pos < end) {
    let level = 0;
    while (2 ** (level + 1) <= end - pos) level += 1;
    while (pos % 2 ** level !== 0) level -= 1;
    nodes.push({ level, index: pos / 2 ** level });
    pos += 2 ** level;
  }
  return nodes;
}

/** The perfect nodes whose fold is the root of `size` leaves (the frontier). */
export function rootNodes(size) {
  return rangeNodes(0, size);
}

function largestPowerOfTwoBelow(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Per path element, the nodes whose fold is that element: PATH(index, D[size]). */
export function inclusionPlan(index, size) {
  checkCount(size, 'size', 1);
  checkCount(index, 'index', 0);
  if (index >= size) throw new RangeError('index must be smaller than size');
  const ranges = [];
  let begin = 0;
  let end = size;
  while (end - begin > 1) {
    const mid = begin + largestPowerOfTwoBelow(end - begin);
    if (index < mid) {
      ranges.push([mid, end]);
      end = mid;
    } else {
      ranges.push([begin, mid]);
      begin = mid;
    }
  }
  return ranges.reverse().map(([a, b]) => rangeNodes(a, b));
}

/** Per path element, the nodes whose fold is that element: PROOF(first, D[second]). */
export function consistencyPlan(first, second) {
  checkCount(second, 'second', 1);
  checkCount(first, 'first', 1);
  if (first > second) throw new RangeError('first must not exceed second');
  const ranges = [];
  let begin = 0;
  let end = second;
  let m = first;
  let complete = true;
  while (end - begin !== m) {
    const mid = begin + largestPowerOfTwoBelow(end - begin);
    if (m <= mid - begin) {
      ranges.push([mid, end]);
      end = mid;
    } else {
      ranges.push([begin, mid]);
      m -= mid - begin;
      begin = mid;
      complete = false;
    }
  }
  if (!complete) ranges.push([begin, end]);
  return ranges.reverse().map(([a, b]) => rangeNodes(a, b));
}

/** An append-only tree keeping every perfect node; roots and proofs for any past size. */
export class MemoryTree {
  #levels = [[]];

  get size() {
    return this.#levels[0].length;
  }

  /** Append a leaf by its data; returns its index. */
  append(data) {
    return this.appendHash(leafHash(data));
  }

  /** Append a leaf by its leaf hash; returns its index. */
  appendHash(hash) {
    if (!(hash instanceof Uint8Array) || hash.length !== HASH_BYTES) {
      throw new RangeError(`leaf hashes must be ${HASH_BYTES} bytes`);
    }
    const levels = this.#levels;
    const index = levels[0].length;
    levels[0].push(hash);
    let h = hash;
    let level = 0;
    let i = index;
    while (i % 2 === 1) {
      h = nodeHash(levels[level][i - 1], h);
      level += 1;
      i = (i - 1) / 2;
      if (level === levels.length) levels.push([]);
      levels[level].push(h);
    }
    return index;
  }

  /** The stored hash of perfect node {level, index}. */
  node({ level, index }) {
    const h = this.#levels[level]?.[index];
    if (h === undefined) throw new RangeError(`no node (${level}, ${index})`);
    return h;
  }

  leafHash(index) {
    return this.node({ level: 0, index });
  }

  #sizeArg(size, min) {
    const n = size ?? this.size;
    checkCount(n, 'size', min);
    if (n > this.size) throw new RangeError('size exceeds the tree');
    return n;
  }

  #assemble(plan) {
    return plan.map((element) => fold(element.map((node) => this.node(node))));
  }

  /** Root of the first `size` leaves (default: all). */
  root(size = null) {
    const nodes = rootNodes(this.#sizeArg(size, 0));
    return nodes.length === 0 ? EMPTY_ROOT : fold(nodes.map((node) => this.node(node)));
  }

  inclusionProof(index, size = null) {
    return this.#assemble(inclusionPlan(index, this.#sizeArg(size, 1)));
  }

  consistencyProof(first, second = null) {
    return this.#assemble(consistencyPlan(first, this.#sizeArg(second, 1)));
  }
}
