// RFC 9162 Merkle trees in JS: a naive reference, the transparency-dev/merkle known answers
// (the same data as tests/keys/test_merkle_reference.py), tampering and type confusion.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import {
  EMPTY_ROOT, HASH_BYTES, MAX_TREE_SIZE, MemoryTree, consistencyPlan, consistencyProofLength,
  fold, inclusionPlan, inclusionProofLength, leafHash, nodeHash, rangeNodes, rootFromInclusion,
  rootNodes, verifyConsistency, verifyInclusion,
} from '../../postbox/webclient/static/js/crypto/merkle.js';

const MODULE = new URL('../../postbox/webclient/static/js/crypto/merkle.js', import.meta.url);

const hex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b) => Buffer.from(b).toString('hex');
const sha256 = (...parts) => new Uint8Array(createHash('sha256').update(Buffer.concat(parts)).digest());
const isBadProof = (e) => e.name === 'BadProof';

function flip(h, bit) {
  const out = Uint8Array.from(h);
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

// --- a naive reference: RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as written -------------------
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function refMth(leaves) {
  if (leaves.length === 0) return sha256(Buffer.alloc(0));
  if (leaves.length === 1) return sha256(Buffer.from([0]), leaves[0]);
  const k = split(leaves.length);
  return sha256(Buffer.from([1]), refMth(leaves.slice(0, k)), refMth(leaves.slice(k)));
}

function refPath(m, leaves) {
  if (leaves.length === 1) return [];
  const k = split(leaves.length);
  if (m < k) return [...refPath(m, leaves.slice(0, k)), refMth(leaves.slice(k))];
  return [...refPath(m - k, leaves.slice(k)), refMth(leaves.slice(0, k))];
}

function refSubproof(m, leaves, b) {
  const n = leaves.length;
  if (m === n) return b ? [] : [refMth(leaves)];
  const k = split(n);
  if (m <= k) return [...refSubproof(m, leaves.slice(0, k), b), refMth(leaves.slice(k))];
  return [...refSubproof(m - k, leaves.slice(k), false), refMth(leaves.slice(0, k))];
}

const MAX_REF = 40;
const LEAVES = Array.from({ length: MAX_REF }, (_, i) => new TextEncoder().encode(i % 5 ? `leaf ${i}` : ''));
const TREE = new MemoryTree();
for (const d of LEAVES) TREE.append(d);

test('merkle.js uses no Node APIs', () => {
  const src = readFileSync(MODULE, 'utf8');
  for (const bad of ['node:', 'Buffer', 'require(', 'process.', "from 'fs'", "from 'crypto'"]) {
    assert.ok(!src.includes(bad), bad);
  }
});

test('hashes are RFC 9162 and domain separated', () => {
  const a = leafHash(new Uint8Array([97]));
  const b = leafHash(new Uint8Array([98]));
  assert.deepEqual(a, sha256(Buffer.from([0, 97])));
  assert.deepEqual(nodeHash(a, b), sha256(Buffer.from([1]), a, b));
  assert.notDeepEqual(nodeHash(a, b), nodeHash(b, a));
  assert.deepEqual(EMPTY_ROOT, sha256(Buffer.alloc(0)));
  assert.deepEqual(fold([a, b, a]), nodeHash(a, nodeHash(b, a)));
  assert.equal(HASH_BYTES, 32);
  assert.equal(MAX_TREE_SIZE, 2 ** 53 - 1);
});

test('roots and proofs agree with the reference for every size, index and pair up to 40', () => {
  assert.deepEqual(new MemoryTree().root(), EMPTY_ROOT);
  for (let size = 1; size <= MAX_REF; size += 1) {
    const leaves = LEAVES.slice(0, size);
    const root = refMth(leaves);
    assert.deepEqual(TREE.root(size), root);
    for (let index = 0; index < size; index += 1) {
      const path = TREE.inclusionProof(index, size);
      assert.deepEqual(path, refPath(index, leaves));
      assert.equal(path.length, inclusionProofLength(index, size));
      verifyInclusion(leafHash(leaves[index]), index, size, path, root);
      assert.deepEqual(rootFromInclusion(leafHash(leaves[index]), index, size, path), root);
    }
    for (let first = 1; first <= size; first += 1) {
      const path = TREE.consistencyProof(first, size);
      assert.deepEqual(path, refSubproof(first, leaves, true));
      assert.equal(path.length, consistencyProofLength(first, size));
      verifyConsistency(first, size, path, TREE.root(first), root);
    }
  }
});

test('plans and lengths stay exact up to 2^53 - 1 (values from the Python module)', () => {
  const M = MAX_TREE_SIZE;
  const inclusion = [[0, M, 53], [M - 1, M, 52], [2 ** 52, M, 53], [123456789012345, 2 ** 52 + 3, 53],
    [2 ** 31, 2 ** 32 + 1, 33]];
  for (const [index, size, length] of inclusion) {
    assert.equal(inclusionProofLength(index, size), length);
    assert.equal(inclusionPlan(index, size).length, length);
  }
  const consistency = [[1, M, 53], [M - 1, M, 53], [2 ** 52, M, 1], [2 ** 52 + 1, M, 54],
    [2 ** 31 + 5, 2 ** 32 + 1, 34], [6, 13, 4]];
  for (const [first, second, length] of consistency) {
    assert.equal(consistencyProofLength(first, second), length);
    assert.equal(consistencyPlan(first, second).length, length);
  }
  const nodes = rangeNodes(3, M);
  let pos = 3;
  for (const { level, index } of nodes) {
    assert.equal(index * 2 ** level, pos);
    pos += 2 ** level;
  }
  assert.equal(pos, M);
  assert.equal(rootNodes(M).length, 53);
  // Random hashes of the right shape against a huge size are refused, not crashed on.
  const path = Array.from({ length: 53 }, (_, i) => leafHash(new Uint8Array([i])));
  assert.throws(() => verifyInclusion(path[0], 0, M, path, path[1]), isBadProof);
  assert.throws(() => verifyConsistency(1, M, path, path[0], path[1]), isBadProof);
});

test('equal sizes need an empty path and equal roots', () => {
  for (const n of [1, 2, 7, 8]) {
    assert.deepEqual(TREE.consistencyProof(n, n), []);
    verifyConsistency(n, n, [], TREE.root(n), TREE.root(n));
    assert.throws(() => verifyConsistency(n, n, [], TREE.root(n), TREE.root(n + 1)), isBadProof);
    assert.throws(() => verifyConsistency(n, n, [TREE.root(n)], TREE.root(n), TREE.root(n)), isBadProof);
  }
});

test('generation refuses impossible requests', () => {
  for (const call of [
    () => TREE.inclusionProof(5, 5), () => TREE.inclusionProof(-1, 5), () => TREE.inclusionProof(0, 0),
    () => TREE.inclusionProof(0, MAX_REF + 1), () => TREE.consistencyProof(0, 5),
    () => TREE.consistencyProof(6, 5), () => TREE.root(MAX_REF + 1), () => TREE.root(1.5),
    () => TREE.appendHash(new Uint8Array(31)), () => rangeNodes(5, 4), () => fold([]),
  ]) {
    assert.throws(call, RangeError);
  }
});

// --- tampering ---------------------------------------------------------------------------
test('flipping any bit of any path element breaks every inclusion proof (sizes 1..17)', () => {
  for (let size = 1; size <= 17; size += 1) {
    const root = TREE.root(size);
    for (let index = 0; index < size; index += 1) {
      const leaf = TREE.leafHash(index);
      const path = TREE.inclusionProof(index, size);
      path.forEach((element, i) => {
        for (let bit = 0; bit < 256; bit += 1) {
          const bad = path.map((p, j) => (j === i ? flip(element, bit) : p));
          assert.throws(() => verifyInclusion(leaf, index, size, bad, root), isBadProof);
        }
      });
      for (const bit of [0, 7, 255]) {
        assert.throws(() => verifyInclusion(flip(leaf, bit), index, size, path, root), isBadProof);
        assert.throws(() => verifyInclusion(leaf, index, size, path, flip(root, bit)), isBadProof);
      }
      for (let other = 0; other < size + 2; other += 1) {
        if (other !== index) assert.throws(() => verifyInclusion(leaf, other, size, path, root), isBadProof);
      }
      for (const other of [0, 2 * size, MAX_TREE_SIZE + 1]) {
        assert.throws(() => verifyInclusion(leaf, index, other, path, root), isBadProof);
      }
      assert.throws(() => verifyInclusion(leaf, index, size, [...path, root], root), isBadProof);
      assert.throws(() => verifyInclusion(leaf, index, size, [root, ...path], root), isBadProof);
      if (path.length) {
        assert.throws(() => verifyInclusion(leaf, index, size, path.slice(0, -1), root), isBadProof);
        assert.throws(() => verifyInclusion(leaf, index, size, [path[0].slice(0, 31), ...path.slice(1)], root), isBadProof);
      }
    }
  }
});

test('flipping any bit of any path element breaks every consistency proof (sizes 1..17)', () => {
  for (let second = 2; second <= 17; second += 1) {
    const r2 = TREE.root(second);
    for (let first = 1; first < second; first += 1) {
      const r1 = TREE.root(first);
      const path = TREE.consistencyProof(first, second);
      path.forEach((element, i) => {
        for (let bit = 0; bit < 256; bit += 1) {
          const bad = path.map((p, j) => (j === i ? flip(element, bit) : p));
          assert.throws(() => verifyConsistency(first, second, bad, r1, r2), isBadProof);
        }
      });
      assert.throws(() => verifyConsistency(first, second, path, r2, r1), isBadProof);
      assert.throws(() => verifyConsistency(first, second, path, flip(r1, 3), r2), isBadProof);
      assert.throws(() => verifyConsistency(first, second, path, r1, flip(r2, 3)), isBadProof);
      assert.throws(() => verifyConsistency(first, second, [], r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(first, second, path.slice(0, -1), r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(first, second, [...path, r2], r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(first, second, [r1, ...path], r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(first, second, [path[0], ...path], r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(0, second, path, r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(second, first, path, r1, r2), isBadProof);
      assert.throws(() => verifyConsistency(first, 2 * second, path, r1, r2), isBadProof);
    }
  }
});

test('type confusion is a BadProof', () => {
  const leaf = TREE.leafHash(3);
  const root = TREE.root(8);
  const path = TREE.inclusionProof(3, 8);
  verifyInclusion(leaf, 3, 8, path, root);
  for (const bad of ['3', 3n, 3.5, NaN, -1, 2 ** 53, null, undefined, true]) {
    assert.throws(() => verifyInclusion(leaf, bad, 8, path, root), isBadProof);
    assert.throws(() => verifyInclusion(leaf, 3, bad, path, root), isBadProof);
    assert.throws(() => verifyConsistency(bad, 8, [], root, root), isBadProof);
    assert.throws(() => verifyConsistency(5, bad, [], root, root), isBadProof);
  }
  assert.throws(() => verifyInclusion(Array.from(leaf), 3, 8, path, root), isBadProof);
  assert.throws(() => verifyInclusion(toHex(leaf), 3, 8, path, root), isBadProof);
  assert.throws(() => verifyInclusion(leaf, 3, 8, path.map(toHex), root), isBadProof);
  assert.throws(() => verifyInclusion(leaf, 3, 8, { length: 3, 0: path[0], 1: path[1], 2: path[2] }, root), isBadProof);
  assert.throws(() => verifyInclusion(leaf, 3, 8, path, null), isBadProof);
  const c = TREE.consistencyProof(5, 8);
  verifyConsistency(5, 8, c, TREE.root(5), root);
  assert.throws(() => verifyConsistency(5, 8, c, TREE.root(5), root.slice(1)), isBadProof);
  assert.throws(() => verifyConsistency(5, 8, c.map((x) => Array.from(x)), TREE.root(5), root), isBadProof);
});

// --- transparency-dev/merkle known answers ---------------------------------------------------
// From https://github.com/transparency-dev/merkle (Apache-2.0), as read at these commits:
// testonly/constants.go @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1 (leaves, node hashes, roots);
// proof/verify_test.go @ 02194e9afb6c1d95b5381350007963aa70fff472 (proofs, corruption probes);
// proof/proof_test.go @ 02a3e2029520f515596d5238c54fb0ac9e19bff4 (node ids of proofs);
// compact/range_test.go @ 09877c5f596708620ad7073ec17cdf85f38cc247 (TestGetRootHashGolden);
// rfc6962/rfc6962_test.go @ 78493b07ef9b552e3379abf9e23d4da26fbe797c (hasher answers).
// Same data as tests/keys/test_merkle_reference.py.
const LEAF_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657',
  '606162636465666768696a6b6c6d6e6f'].map(hex);

const NODE_HASHES = [
  ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1'],
  ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0'],
  ['d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];

// ROOTS[n] is the root of the first n leaves.
const ROOTS = ['e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'].map(hex);

// [leaf number (1-based, as in the Go file), tree size, path]
const INCLUSION_PROOFS = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [3, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [2, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
].map(([leaf, size, path]) => [leaf, size, path.map(hex)]);

const CONSISTENCY_PROOFS = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
].map(([a, b, path]) => [a, b, path.map(hex)]);

const SOME_HASH = hex('abacaba000000000000000000000000000000000000000000060061e00123456');

// compact/range_test.go TestGetRootHashGolden: [size, root in standard base64]
const GOLDEN_ROOTS = [
  [10, 'VjWMPSYNtCuCNlF/RLnQy6HcwSk6CIipfxm+hettA+4='],
  [15, 'j4SulYmocFuxdeyp12xXCIgK6PekBcxzAIj4zbQzNEI='],
  [16, 'c+4Uc6BCMOZf/v3NZK1kqTUJe+bBoFtOhP+P3SayKRE='],
  [100, 'dUh9hYH88p0CMoHkdr1wC2szbhcLAXOejWpINIooKUY='],
  [255, 'SmdsuKUqiod3RX2jyF2M6JnbdE4QuTwwipfAowI4/i0='],
  [256, 'qFI0t/tZ1MdOYgyPpPzHFiZVw86koScXy9q3FU5casA='],
  [1000, 'RXrgb8xHd55Y48FbfotJwCbV82Kx22LZfEbmBGAvwlQ='],
  [4095, 'cWRFdQhPcjn9WyBXE/r1f04ejxIm5lvg40DEpRBVS0w='],
  [4096, '6uU/phfHg1n/GksYT6TO9aN8EauMCCJRl3dIK0HDs2M='],
  [10000, 'VZcav65F9haHVRk3wre2axFoBXRNeUh/1d9d5FQfxIg='],
  [65535, 'iPuVYJhP6SEE4gUFp8qbafd2rYv9YTCDYqAxCj8HdLM='],
];

// Go's proof.Nodes as plan elements: ids[begin:end] (lowest level first) fold into one element.
const N = (level, index) => ({ level, index });
function goNodes(ids, begin = 0, end = 0) {
  if (begin >= end) return ids.map((n) => [n]);
  return [...ids.slice(0, begin).map((n) => [n]), ids.slice(begin, end).reverse(),
    ...ids.slice(end).map((n) => [n])];
}

// proof/proof_test.go TestInclusion: [size, index, plan]
const GO_INCLUSION_PLANS = [
  [1, 0, goNodes([])], [2, 0, goNodes([N(0, 1)])], [2, 1, goNodes([N(0, 0)])],
  [3, 1, goNodes([N(0, 0), N(0, 2)])],
  [7, 0, goNodes([N(0, 1), N(1, 1), N(0, 6), N(1, 2)], 2, 4)],
  [7, 1, goNodes([N(0, 0), N(1, 1), N(0, 6), N(1, 2)], 2, 4)],
  [7, 2, goNodes([N(0, 3), N(1, 0), N(0, 6), N(1, 2)], 2, 4)],
  [7, 3, goNodes([N(0, 2), N(1, 0), N(0, 6), N(1, 2)], 2, 4)],
  [7, 4, goNodes([N(0, 5), N(0, 6), N(2, 0)])], [7, 5, goNodes([N(0, 4), N(0, 6), N(2, 0)])],
  [7, 6, goNodes([N(1, 2), N(2, 0)])], [4, 2, goNodes([N(0, 3), N(1, 0)])],
  [5, 3, goNodes([N(0, 2), N(1, 0), N(0, 4)])], [6, 3, goNodes([N(0, 2), N(1, 0), N(1, 2)])],
  [6, 4, goNodes([N(0, 5), N(2, 0)])],
  [15, 10, goNodes([N(0, 11), N(1, 4), N(0, 14), N(1, 6), N(3, 0)], 2, 4)],
  [31, 24, goNodes([N(0, 25), N(1, 13), N(0, 30), N(1, 14), N(3, 2), N(4, 0)], 2, 4)],
  [95, 81, goNodes([N(0, 80), N(1, 41), N(2, 21), N(0, 94), N(1, 46), N(2, 22), N(4, 4), N(6, 0)], 3, 6)],
];

// proof/proof_test.go TestConsistency: [size1, size2, plan]
const GO_CONSISTENCY_PLANS = [
  [1, 2, goNodes([N(0, 1)])], [1, 4, goNodes([N(0, 1), N(1, 1)])],
  [1, 6, goNodes([N(0, 1), N(1, 1), N(1, 2)])], [2, 3, goNodes([N(0, 2)])],
  [2, 8, goNodes([N(1, 1), N(2, 1)])],
  [3, 7, goNodes([N(0, 2), N(0, 3), N(1, 0), N(0, 6), N(1, 2)], 3, 5)],
  [4, 7, goNodes([N(0, 6), N(1, 2)], 0, 2)],
  [5, 7, goNodes([N(0, 4), N(0, 5), N(0, 6), N(2, 0)])],
  [6, 7, goNodes([N(1, 2), N(0, 6), N(2, 0)])],
  [7, 8, goNodes([N(0, 6), N(0, 7), N(1, 2), N(2, 0)])],
  ...[1, 2, 3, 4, 5, 7, 8].map((n) => [n, n, goNodes([])]),
  [2, 4, goNodes([N(1, 1)])], [3, 5, goNodes([N(0, 2), N(0, 3), N(1, 0), N(0, 4)])],
  [3, 6, goNodes([N(0, 2), N(0, 3), N(1, 0), N(1, 2)])], [4, 6, goNodes([N(1, 2)])],
  [1, 7, goNodes([N(0, 1), N(1, 1), N(0, 6), N(1, 2)], 2, 4)],
  [10, 15, goNodes([N(1, 4), N(1, 5), N(0, 14), N(1, 6), N(3, 0)], 2, 4)],
  [24, 31, goNodes([N(3, 2), N(0, 30), N(1, 14), N(2, 6), N(4, 0)], 1, 4)],
  [81, 95, goNodes([N(0, 80), N(0, 81), N(1, 41), N(2, 21), N(0, 94), N(1, 46), N(2, 22), N(4, 4),
    N(6, 0)], 4, 7)],
];

const goTree = new MemoryTree();
for (const d of LEAF_INPUTS) goTree.append(d);

test('reference: hasher answers (rfc6962_test.go)', () => {
  const enc = new TextEncoder();
  assert.equal(toHex(EMPTY_ROOT), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(toHex(leafHash(new Uint8Array(0))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  assert.equal(toHex(leafHash(enc.encode('L123456'))), '395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56');
  assert.equal(toHex(nodeHash(enc.encode('N123'), enc.encode('N456'))),
    'aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb');
});

test('reference: roots and node hashes of the 8-leaf tree (constants.go)', () => {
  ROOTS.forEach((root, size) => assert.deepEqual(goTree.root(size), root));
  NODE_HASHES.forEach((level, l) => level.forEach((h, i) => {
    assert.equal(toHex(goTree.node({ level: l, index: i })), h);
  }));
});

test('reference: inclusion proofs and the corruption probes of verify_test.go', () => {
  for (const [leaf, size, path] of INCLUSION_PROOFS) {
    const index = leaf - 1;
    const lh = leafHash(LEAF_INPUTS[index]);
    const root = ROOTS[size];
    assert.deepEqual(goTree.inclusionProof(index, size), path);
    assert.deepEqual(rootFromInclusion(lh, index, size, path), root);
    verifyInclusion(lh, index, size, path, root);
    const probes = [
      [lh, index - 1, size, path, root], [lh, index + 1, size, path, root],
      [lh, index ^ 2, size, path, root], [lh, index, size * 2, path, root],
      [lh, index, Math.floor(size / 2), path, root],
      [new TextEncoder().encode('WrongLeaf'), index, size, path, root],
      [lh, index, size, path, EMPTY_ROOT], [lh, index, size, path, SOME_HASH],
      [lh, index, size, [...path, new Uint8Array(0)], root], [lh, index, size, [...path, root], root],
      [lh, index, size, [new Uint8Array(0), ...path], root], [lh, index, size, [root, ...path], root],
    ];
    path.forEach((p, i) => {
      const wrong = path.slice();
      wrong[i] = Uint8Array.from(p);
      wrong[i][0] ^= 8;
      probes.push([lh, index, size, wrong, root]);
    });
    if (path.length > 0) probes.push([lh, index, size, path.slice(0, -1), root]);
    if (path.length > 1) probes.push([lh, index, size, [path[0], SOME_HASH, ...path.slice(1)], root]);
    for (const probe of probes) assert.throws(() => verifyInclusion(...probe), isBadProof);
  }
});

test('reference: consistency proofs and the corruption probes of verify_test.go', () => {
  for (const [size1, size2, path] of CONSISTENCY_PROOFS) {
    const r1 = ROOTS[size1];
    const r2 = ROOTS[size2];
    assert.deepEqual(goTree.consistencyProof(size1, size2), path);
    verifyConsistency(size1, size2, path, r1, r2);
    if (path.length === 0) continue;
    const wrongRoot = new TextEncoder().encode('WrongRoot');
    const probes = [
      [size1 - 1, size2, path, r1, r2], [size1 + 1, size2, path, r1, r2],
      [size1 ^ 2, size2, path, r1, r2], [size1, size2 * 2, path, r1, r2],
      [size1, Math.floor(size2 / 2), path, r1, r2], [size1, size2, path, wrongRoot, r2],
      [size1, size2, path, r1, wrongRoot], [size1, size2, path, r2, r1], [size1, size2, [], r1, r2],
      [size1, size2, [...path, new Uint8Array(0)], r1, r2], [size1, size2, [...path, r1], r1, r2],
      [size1, size2, [...path, r2], r1, r2], [size1, size2, [new Uint8Array(0), ...path], r1, r2],
      [size1, size2, [r1, ...path], r1, r2], [size1, size2, [r2, ...path], r1, r2],
      [size1, size2, [path[0], ...path], r1, r2], [size1, size2, path.slice(0, -1), r1, r2],
    ];
    path.forEach((p, i) => {
      const wrong = path.slice();
      wrong[i] = Uint8Array.from(p);
      wrong[i][0] ^= 16;
      probes.push([size1, size2, wrong, r1, r2]);
    });
    for (const probe of probes) assert.throws(() => verifyConsistency(...probe), isBadProof);
  }
});

test('reference: size 0 is refused (Go accepts an empty first tree; PROTOCOL.md §7 does not)', () => {
  const [r1, r2] = [ROOTS[1], ROOTS[2]];
  verifyConsistency(1, 1, [], r2, r2);
  for (const [a, b, path, x, y] of [
    [0, 0, [], r1, r1], [0, 1, [], r1, r2], [1, 1, [], r1, r2], [1, 0, [], r1, r2], [2, 1, [], r1, r2],
    [1, 2, [], r1, r2], [1, 1, [EMPTY_ROOT], EMPTY_ROOT, EMPTY_ROOT],
  ]) {
    assert.throws(() => verifyConsistency(a, b, path, x, y), isBadProof);
  }
  for (const [index, size] of [[0, 0], [1, 0], [2, 1]]) {
    assert.throws(() => verifyInclusion(SOME_HASH, index, size, [], EMPTY_ROOT), isBadProof);
  }
});

test('reference: proof plans are the node ids of proof_test.go', () => {
  for (const [size, index, plan] of GO_INCLUSION_PLANS) {
    assert.deepEqual(inclusionPlan(index, size), plan, `${index}/${size}`);
  }
  for (const [size1, size2, plan] of GO_CONSISTENCY_PLANS) {
    assert.deepEqual(consistencyPlan(size1, size2), plan, `${size1}/${size2}`);
  }
});

test('reference: golden roots of larger trees (compact/range_test.go)', () => {
  const t = new MemoryTree();
  const last = GOLDEN_ROOTS[GOLDEN_ROOTS.length - 1][0];
  for (let i = 0; i < last; i += 1) t.append(new Uint8Array([i & 0xff, (i >> 8) & 0xff]));
  for (const [size, root] of GOLDEN_ROOTS) {
    assert.equal(Buffer.from(t.root(size)).toString('base64'), root, `size ${size}`);
  }
});
