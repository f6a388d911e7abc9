// tests/vectors/cj.json and padding.json in JavaScript.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64d, cj, parseCanonical } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { pad, paddedLength, unpad } from '../../postbox/webclient/static/js/crypto/padding.js';

const load = (name) => JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8'));
const CJ = load('cj');
const PADDING = load('padding');

test('cj cases encode to the stated bytes and parse back', () => {
  for (const c of CJ.cases) {
    const body = b64d(c.bytes);
    assert.deepEqual(cj(c.value), body, c.name);
    assert.deepEqual(parseCanonical(body), c.value, c.name);
  }
});

test('cj reject cases are refused with the named error', () => {
  for (const c of CJ.reject) {
    assert.throws(() => parseCanonical(b64d(c.bytes)), (e) => e.name === c.error, c.name);
  }
});

test('padded lengths', () => {
  for (const c of PADDING.cases) assert.equal(paddedLength(c.length), c.padded_length, c.name);
  for (const c of PADDING.cases.slice(0, 300)) {
    const data = new Uint8Array(c.length).fill(1);
    const padded = pad(data);
    assert.equal(padded.length, c.padded_length);
    assert.deepEqual(unpad(padded), data);
  }
});

test('padding reject cases are refused with the named error', () => {
  for (const c of PADDING.reject) {
    assert.throws(() => unpad(b64d(c.padded)), (e) => e.name === c.error, c.name);
  }
});
