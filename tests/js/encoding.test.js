import test from 'node:test';
import assert from 'node:assert/strict';
import {
  b64e, b64d, cj, parseCanonical, u32, utf8,
} from '../../postbox/webclient/static/js/crypto/encoding.js';
import { padme, paddedLength, pad, unpad } from '../../postbox/webclient/static/js/crypto/padding.js';
import * as crockford from '../../postbox/webclient/static/js/crypto/crockford.js';
import * as domain from '../../postbox/webclient/static/js/crypto/domain.js';
import { ERROR_NAMES, NonCanonical } from '../../postbox/webclient/static/js/crypto/errors.js';

const dec = new TextDecoder();

test('cj sorts by UTF-16 code units and escapes like RFC 8785', () => {
  const v = { b: 1, a: [true, null, 'x\u2028\u007f\u0001"'], '\u{1F600}': 1, '\uE000': 2 };
  assert.equal(dec.decode(cj(v)), '{"a":[true,null,"x\u2028\u007f\\u0001\\""],"b":1,"\u{1F600}":1,"\uE000":2}');
});

test('cj rejects what canonical JSON cannot hold', () => {
  for (const bad of [1.5, -0, 2 ** 53, NaN, Infinity, '\ud800', { a: undefined }, new Date(0)]) {
    assert.throws(() => cj(bad), NonCanonical);
  }
  let deep = 1;
  for (let i = 0; i < 33; i += 1) deep = [deep];
  assert.throws(() => cj(deep), NonCanonical);
});

test('parseCanonical accepts only canonical bytes', () => {
  assert.deepEqual(parseCanonical(utf8('{"a":1}')), { a: 1 });
  for (const bad of ['{"a":1,"a":1}', '{"a":1.0}', '[-0]', ' {}', '{"a":"\\ud800"}',
    '[9007199254740992]', '\ufeff{}', '[1e2]', '{"b":1,"a":2}', '["\\u0041"]']) {
    assert.throws(() => parseCanonical(utf8(bad)), (e) => e.name === 'NonCanonical', bad);
  }
  assert.throws(() => parseCanonical(new Uint8Array([0x22, 0xff, 0x22])), (e) => e.name === 'NonCanonical');
});

test('b64 is strict', () => {
  assert.equal(b64e(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.deepEqual(b64d('-_8', 2), new Uint8Array([0xfb, 0xff]));
  for (const bad of ['-_9', '-_8=', 'a', 'ab+c', 'ab/c', 'ab c']) {
    assert.throws(() => b64d(bad), (e) => e.name === 'EncodingError', bad);
  }
  assert.throws(() => b64d('AAAA', 4), (e) => e.name === 'EncodingError');
  assert.deepEqual(u32(258), new Uint8Array([0, 0, 1, 2]));
});

test('padme matches the integer rule', () => {
  assert.deepEqual([0, 1, 2, 3, 9, 100, 1000, 65536, 65537, 2 ** 24 + 1].map(padme),
    [0, 1, 2, 3, 10, 104, 1024, 65536, 67584, 17301504]);
  assert.equal(paddedLength(0), 256);
  assert.equal(padme(2 ** 31 + 1), 2 ** 31 + 2 ** 26);
  const p = pad(utf8('abc'));
  assert.equal(p.length, 256);
  assert.equal(dec.decode(unpad(p)), 'abc');
  const bad = p.slice();
  bad[3] = 0x81;
  assert.throws(() => unpad(bad), (e) => e.name === 'BadPadding');
});

test('crockford round trip and lenient reading', () => {
  const bytes = new Uint8Array(20).map((_, i) => i * 13);
  const text = crockford.encode(bytes);
  assert.equal(text.length, 32);
  assert.deepEqual(crockford.decode(crockford.group(text).toLowerCase()), bytes);
  assert.deepEqual(crockford.decode('OOOOOOOO'), new Uint8Array(5));
  assert.throws(() => crockford.decode('UUUUUUUU'), (e) => e.name === 'EncodingError');
});

test('domain labels are prefix-free', () => {
  const labels = domain.ALL.map((l) => dec.decode(l));
  assert.equal(new Set(labels).size, labels.length);
  for (const a of labels) for (const b of labels) if (a !== b) assert.ok(!b.startsWith(a), `${a} / ${b}`);
});

test('error names are stable', () => {
  assert.ok(ERROR_NAMES.includes('KeyCommitmentMismatch'));
  assert.equal(new NonCanonical('x').name, 'NonCanonical');
});
