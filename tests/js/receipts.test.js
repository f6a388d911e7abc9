// Receipts, delivery chains, read receipts and countersignatures (PROTOCOL.md §8): unit
// tests of receipts.js beside the shared vectors (receipt_vectors.test.js).
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  makeReceipt, signReceipt, verifyReceipt, verifyReceiptFor, signDelivery, verifyDelivery,
  verifyDeliveryChain, deliveryLink, signRead, verifyRead, readHash, signCountersign,
  verifyCountersign,
} from '../../postbox/webclient/static/js/crypto/receipts.js';
import { makeCert } from '../../postbox/webclient/static/js/crypto/certs.js';
import { CryptoError } from '../../postbox/webclient/static/js/crypto/errors.js';
import { b64d, b64e, cj, utf8 } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import { H, concatBytes, signKeypair } from '../../postbox/webclient/static/js/crypto/primitives.js';

const NOW = 1_767_225_600_000;
const seed = (label) => H(utf8(`test/receipts/${label}`), 32);
const id = (n) => b64e(new Uint8Array(16).fill(n));
const SERVER_SEED = seed('server');
const SERVER_PK = signKeypair(SERVER_SEED).pk;
const OTHER_SEED = seed('other');
const OTHER_PK = signKeypair(OTHER_SEED).pk;
const MESSAGE = id(1);
const FROM = id(2);
const A = id(3);
const B = id(5);
const MAILBOX = id(4);
const DIGEST = H(utf8('an envelope'), 64);
const clone = (x) => structuredClone(x);
const throwsName = (fn, name) => assert.throws(fn, (e) => e.name === name, name);

function receipt() {
  return signReceipt(makeReceipt({
    message: MESSAGE, from: FROM, digest: DIGEST, accepted: NOW,
  }), SERVER_SEED);
}

function flip(text) {
  const raw = b64d(text);
  raw[0] ^= 1;
  return b64e(raw);
}

test('submission receipt: round trip, wire bytes, the sender check', () => {
  const signed = receipt();
  assert.equal(signed.kid, deriveKid('sign', SERVER_PK));
  const r = verifyReceipt(signed, SERVER_PK);
  assert.deepEqual(r, {
    v: 1, message: MESSAGE, from: FROM, digest: b64e(DIGEST), accepted: NOW,
  });
  assert.deepEqual(verifyReceipt(cj(signed), SERVER_PK), r);
  assert.deepEqual(verifyReceiptFor(signed, SERVER_PK, { message: MESSAGE, from: FROM, digest: DIGEST }), r);
  for (const change of [{ message: id(9) }, { from: id(9) }, { digest: H(utf8('other'), 64) }]) {
    throwsName(() => verifyReceiptFor(signed, SERVER_PK, {
      message: MESSAGE, from: FROM, digest: DIGEST, ...change,
    }), 'ReceiptMismatch');
  }
});

test('submission receipt: tampering, keys, shapes, canonical wire', () => {
  const signed = receipt();
  for (const [member, value] of [['message', id(9)], ['from', id(9)],
    ['digest', b64e(new Uint8Array(64).fill(9))], ['accepted', NOW + 1]]) {
    const t = clone(signed);
    t.receipt[member] = value;
    throwsName(() => verifyReceipt(t, SERVER_PK), 'BadSignature');
  }
  throwsName(() => verifyReceipt(signed, OTHER_PK), 'KeyIdMismatch');
  const forged = { ...signReceipt(signed.receipt, OTHER_SEED), kid: signed.kid };
  throwsName(() => verifyReceipt(forged, SERVER_PK), 'BadSignature');
  const bad = clone(signed);
  bad.sig = flip(bad.sig);
  throwsName(() => verifyReceipt(bad, SERVER_PK), 'BadSignature');
  const extra = clone(signed);
  extra.receipt.note = 'x';
  throwsName(() => verifyReceipt(extra, SERVER_PK), 'MalformedObject');
  throwsName(() => verifyReceipt(concatBytes(cj(signed), utf8(' ')), SERVER_PK), 'NonCanonical');
  throwsName(() => makeReceipt({
    message: MESSAGE, from: FROM, digest: DIGEST.slice(0, 32), accepted: NOW,
  }), 'MalformedObject');
});

function chain(steps, { seedBytes = SERVER_SEED, message = MESSAGE, digest = DIGEST } = {}) {
  const out = [];
  for (const [event, at, by] of steps) {
    out.push(signDelivery({
      message, digest, event, at, by, previous: out.length ? out[out.length - 1] : null,
      receiptSeed: seedBytes,
    }));
  }
  return out;
}

test('delivery chains: allowed orders and the legal clock summary', () => {
  const allowed = [
    [['available', NOW, null]],
    [['available', NOW, FROM], ['notified', NOW + 5, MAILBOX]],
    [['available', NOW, null], ['retrieved', NOW + 1, A]],
    [['available', NOW, null], ['notified', NOW + 1, null], ['retrieved', NOW + 9, A]],
    [['available', NOW, null], ['retrieved', NOW, A], ['notified', NOW + 2, null]],
    [['available', NOW, null], ['notified', NOW, MAILBOX], ['notified', NOW, B],
      ['retrieved', NOW + 3, B], ['retrieved', NOW + 4, A]],
  ];
  for (const steps of allowed) {
    const c = chain(steps);
    const record = verifyDeliveryChain(c, SERVER_PK, { message: MESSAGE, digest: DIGEST });
    assert.equal(record.available, NOW);
    assert.deepEqual(record.events.map((e) => e.event), steps.map((s) => s[0]));
    const notified = steps.filter((s) => s[0] === 'notified').map((s) => s[1]);
    const retrieved = steps.filter((s) => s[0] === 'retrieved').map((s) => s[1]);
    assert.equal(record.firstNotified, notified.length ? Math.min(...notified) : null);
    assert.equal(record.firstRetrieved, retrieved.length ? Math.min(...retrieved) : null);
    assert.deepEqual(record.head, deliveryLink(c[c.length - 1]));
    assert.deepEqual(record.digest, DIGEST);
    assert.deepEqual(verifyDeliveryChain(c.map((x) => cj(x)), SERVER_PK).events, record.events);
  }
});

test('delivery chains: the link is BLAKE2b-256 of the event and its raw signature', () => {
  const [first, second] = chain([['available', NOW, null], ['notified', NOW, null]]);
  const link = H(concatBytes(cj(first.delivery), b64d(first.sig)), 32);
  assert.equal(second.delivery.prev, b64e(link));
});

test('delivery chains: the order rule and the links', () => {
  const bad = [
    [['notified', NOW, null]],
    [['retrieved', NOW, A]],
    [['available', NOW, null], ['available', NOW, null]],
    [['available', NOW, null], ['retrieved', NOW, null]],
    [['available', NOW, null], ['retrieved', NOW, A], ['retrieved', NOW + 1, A]],
    [['available', NOW, null], ['notified', NOW, null], ['notified', NOW + 1, null]],
    [['available', NOW, null], ['notified', NOW - 1, null]],
  ];
  for (const steps of bad) throwsName(() => verifyDeliveryChain(chain(steps), SERVER_PK), 'BrokenChain');
  const [a, n, r] = chain([['available', NOW, null], ['notified', NOW, null], ['retrieved', NOW, A]]);
  for (const broken of [[a, r], [n, a, r], [a, r, n], [a, n, n], []]) {
    throwsName(() => verifyDeliveryChain(broken, SERVER_PK), 'BrokenChain');
  }
  const other = signDelivery({
    message: id(9), digest: DIGEST, event: 'notified', at: NOW, by: null, previous: a, receiptSeed: SERVER_SEED,
  });
  throwsName(() => verifyDeliveryChain([a, other], SERVER_PK), 'BrokenChain');
  throwsName(() => verifyDeliveryChain([a], SERVER_PK, { message: id(9) }), 'ReceiptMismatch');
  throwsName(() => verifyDeliveryChain([a], SERVER_PK, { digest: H(utf8('x'), 64) }), 'ReceiptMismatch');
  throwsName(() => verifyDeliveryChain([a, n, r], OTHER_PK), 'KeyIdMismatch');
  const t = clone([a, n, r]);
  t[1].delivery.at += 1;
  throwsName(() => verifyDeliveryChain(t, SERVER_PK), 'BadSignature');
  throwsName(() => verifyDelivery(utf8('{"delivery": 1}'), SERVER_PK), 'NonCanonical');
});

const READER_SEED = seed('reader');
const READER_PK = signKeypair(READER_SEED).pk;
const READER = id(7);
const READER_CERT = makeCert({
  subject: READER, kind: 'citizen', org: null, use: 'sign', pk: READER_PK, created: NOW,
});

function read() {
  return signRead({
    message: MESSAGE, digest: DIGEST, mailbox: READER, reader: READER,
    sth: { size: 7, root: b64e(new Uint8Array(32).fill(7)) }, read: NOW + 60_000, readerSeed: READER_SEED,
  });
}

test('read receipts: round trip and rejects', () => {
  const signed = read();
  const r = verifyRead(signed, READER_CERT);
  assert.equal(r.reader, READER);
  assert.equal(signed.kid, READER_CERT.kid);
  assert.deepEqual(verifyRead(cj(signed), READER_CERT), r);
  const otherPk = signKeypair(seed('other-reader')).pk;
  const stranger = makeCert({
    subject: id(8), kind: 'citizen', org: null, use: 'sign', pk: READER_PK, created: NOW,
  });
  throwsName(() => verifyRead(signed, stranger), 'CertificateInvalid');
  const impostor = makeCert({
    subject: READER, kind: 'citizen', org: null, use: 'sign', pk: otherPk, created: NOW,
  });
  throwsName(() => verifyRead(signed, impostor), 'KeyIdMismatch');
  const t = clone(signed);
  t.read.read += 1;
  throwsName(() => verifyRead(t, READER_CERT), 'BadSignature');
  t.read.sth.size = 0;
  throwsName(() => verifyRead(t, READER_CERT), 'MalformedObject');
});

test('countersignatures bind the read receipt', () => {
  const r = read();
  const cs = signCountersign(r, { received: NOW + 61_000, receiptSeed: SERVER_SEED });
  assert.equal(cs.countersign.read, b64e(H(concatBytes(cj(r.read), b64d(r.sig)), 32)));
  assert.deepEqual(readHash(r), H(concatBytes(cj(r.read), b64d(r.sig)), 32));
  const body = verifyCountersign(cs, r, SERVER_PK);
  assert.equal(body.received, NOW + 61_000);
  assert.deepEqual(verifyCountersign(cj(cs), cj(r), SERVER_PK), body);
  throwsName(() => verifyCountersign(cs, r, OTHER_PK), 'KeyIdMismatch');
  const otherRead = clone(r);
  otherRead.sig = flip(otherRead.sig);
  throwsName(() => verifyCountersign(cs, otherRead, SERVER_PK), 'ReceiptMismatch');
  const t = clone(cs);
  t.countersign.received += 1;
  throwsName(() => verifyCountersign(t, r, SERVER_PK), 'BadSignature');
});

test('every single-byte flip of the canonical wire bytes is refused', () => {
  const r = read();
  const cs = signCountersign(r, { received: NOW, receiptSeed: SERVER_SEED });
  const checks = [
    [cj(receipt()), (b) => verifyReceipt(b, SERVER_PK)],
    [cj(chain([['available', NOW, null]])[0]), (b) => verifyDeliveryChain([b], SERVER_PK)],
    [cj(r), (b) => verifyRead(b, READER_CERT)],
    [cj(cs), (b) => verifyCountersign(b, r, SERVER_PK)],
  ];
  for (const [body, verifyFn] of checks) {
    verifyFn(body);
    for (let i = 0; i < body.length; i += 1) {
      for (const mask of [0x01, 0x20]) {
        const b = body.slice();
        b[i] ^= mask;
        assert.throws(() => verifyFn(b), (e) => e instanceof CryptoError, `byte ${i}`);
      }
    }
  }
});
