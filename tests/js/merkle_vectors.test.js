// tests/vectors/merkle.json in JS: every root and proof rebuilt and verified, every reject refused.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64d, b64e } from '../../postbox/webclient/static/js/crypto/encoding.js';
import {
  MemoryTree, leafHash, verifyConsistency, verifyInclusion,
} from '../../postbox/webclient/static/js/crypto/merkle.js';

const VECTORS = JSON.parse(readFileSync(new URL('../vectors/merkle.json', import.meta.url), 'utf8'));

for (const c of VECTORS.cases) {
  test(`case ${c.name}`, () => {
    const leaves = c.leaves.map((x) => b64d(x));
    assert.deepEqual(leaves.map((d) => b64e(leafHash(d))), c.leaf_hashes);
    const tree = new MemoryTree();
    for (const d of leaves) tree.append(d);
    const roots = c.roots.map((r) => b64d(r, 32));
    roots.forEach((root, i) => assert.deepEqual(tree.root(i + 1), root));
    for (const { index, size, path } of c.inclusion) {
      const p = path.map((x) => b64d(x, 32));
      assert.deepEqual(tree.inclusionProof(index, size), p);
      verifyInclusion(leafHash(leaves[index]), index, size, p, roots[size - 1]);
    }
    for (const { first, second, path } of c.consistency) {
      const p = path.map((x) => b64d(x, 32));
      assert.deepEqual(tree.consistencyProof(first, second), p);
      verifyConsistency(first, second, p, roots[first - 1], roots[second - 1]);
    }
    assert.equal(c.inclusion.length, 153);
    assert.equal(c.consistency.length, 153);
  });
}

test('every reject case is refused with its error', () => {
  assert.ok(VECTORS.reject.length > 30);
  for (const r of VECTORS.reject) {
    const path = r.path.map((x) => b64d(x));
    const run = r.kind === 'inclusion'
      ? () => verifyInclusion(b64d(r.leaf_hash), r.index, r.size, path, b64d(r.root))
      : () => verifyConsistency(r.first, r.second, path, b64d(r.first_root), b64d(r.second_root));
    assert.throws(run, (e) => e.name === r.error, r.name);
  }
});
