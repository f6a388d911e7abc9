// tests/vectors/receipt.json: rebuild every signature, verify every case, refuse every reject.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  makeReceipt, signReceipt, verifyReceipt, verifyReceiptFor, signDelivery, verifyDeliveryChain,
  deliveryLink, signRead, verifyRead, readHash, signCountersign, verifyCountersign,
} from '../../postbox/webclient/static/js/crypto/receipts.js';
import { b64d, b64e, cj } from '../../postbox/webclient/static/js/crypto/encoding.js';
import * as domain from '../../postbox/webclient/static/js/crypto/domain.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import { concatBytes, signKeypair } from '../../postbox/webclient/static/js/crypto/primitives.js';

const VECTORS = JSON.parse(readFileSync(new URL('../vectors/receipt.json', import.meta.url), 'utf8'));
const ALL_CASES = [...VECTORS.cases, ...VECTORS.other_cases];
const ALL_REJECTS = [...VECTORS.reject, ...VECTORS.other_reject];
const byKind = (kind) => ALL_CASES.filter((c) => c.kind === kind);

test('every kind is covered', () => {
  assert.deepEqual(new Set(ALL_CASES.map((c) => c.kind)),
    new Set(['receipt', 'delivery_chain', 'read', 'countersign']));
  assert.deepEqual(new Set(ALL_REJECTS.map((c) => c.check)),
    new Set(['receipt', 'receipt_for', 'delivery_chain', 'read', 'countersign']));
});

for (const c of byKind('receipt')) {
  test(c.name, () => {
    const seed = b64d(c.server_seed);
    const pk = b64d(c.server_pk);
    assert.deepEqual(signKeypair(seed).pk, pk);
    const receipt = makeReceipt({
      message: c.message, from: c.from, digest: b64d(c.digest), accepted: c.accepted,
    });
    assert.deepEqual(receipt, c.receipt);
    assert.deepEqual(concatBytes(domain.RECEIPT, cj(receipt)), b64d(c.signed));
    const wire = signReceipt(receipt, seed);
    assert.deepEqual(wire, c.wire);
    assert.equal(wire.sig, c.sig);
    assert.equal(c.kid, deriveKid('sign', pk));
    assert.deepEqual(verifyReceipt(c.wire, pk), c.receipt);
    assert.deepEqual(verifyReceipt(cj(c.wire), pk), c.receipt);
    assert.deepEqual(verifyReceiptFor(c.wire, pk, {
      message: c.message, from: c.from, digest: b64d(c.digest),
    }), c.receipt);
  });
}

/** The legal clock's view of a chain, as gen_receipt.record_json builds it. */
function recordJson(r) {
  return {
    message: r.message,
    digest: b64e(r.digest),
    available: r.available,
    notified: [...r.notified.entries()],
    retrieved: [...r.retrieved.entries()],
    first_notified: r.firstNotified,
    first_retrieved: r.firstRetrieved,
    head: b64e(r.head),
  };
}

for (const c of byKind('delivery_chain')) {
  test(c.name, () => {
    const seed = b64d(c.server_seed);
    const pk = b64d(c.server_pk);
    assert.deepEqual(signKeypair(seed).pk, pk);
    const digest = b64d(c.digest);
    const rebuilt = [];
    for (const [event, at, by] of c.steps) {
      rebuilt.push(signDelivery({
        message: c.message, digest, event, at, by,
        previous: rebuilt.length ? rebuilt[rebuilt.length - 1] : null, receiptSeed: seed,
      }));
    }
    assert.deepEqual(rebuilt, c.chain);
    assert.deepEqual(c.chain.map((x) => b64e(deliveryLink(x))), c.links);
    const record = verifyDeliveryChain(c.chain, pk, { message: c.message, digest });
    assert.deepEqual(recordJson(record), c.record);
  });
}

for (const c of byKind('read')) {
  test(c.name, () => {
    const seed = b64d(c.reader_seed);
    assert.deepEqual(signKeypair(seed).pk, b64d(c.reader_pk));
    assert.deepEqual(b64d(c.reader_identity.pk), b64d(c.reader_pk));
    const r = c.read;
    const wire = signRead({
      message: r.message, digest: b64d(r.digest), mailbox: r.mailbox, reader: r.reader,
      sth: r.sth, read: r.read, readerSeed: seed,
    });
    assert.deepEqual(wire, c.wire);
    assert.deepEqual(concatBytes(domain.READ, cj(r)), b64d(c.signed));
    assert.deepEqual(verifyRead(c.wire, c.reader_identity), r);
  });
}

for (const c of byKind('countersign')) {
  test(c.name, () => {
    const seed = b64d(c.server_seed);
    const pk = b64d(c.server_pk);
    assert.equal(b64e(readHash(c.read_wire)), c.read_hash);
    const wire = signCountersign(c.read_wire, { received: c.countersign.received, receiptSeed: seed });
    assert.deepEqual(wire, c.wire);
    assert.deepEqual(concatBytes(domain.COUNTERSIGN, cj(c.countersign)), b64d(c.signed));
    assert.deepEqual(verifyCountersign(c.wire, c.read_wire, pk), c.countersign);
  });
}

function runReject(c) {
  switch (c.check) {
    case 'receipt':
      return verifyReceipt(c.wire === null ? b64d(c.body) : c.wire, b64d(c.server_pk));
    case 'receipt_for':
      return verifyReceiptFor(c.wire, b64d(c.server_pk), {
        message: c.message, from: c.from, digest: b64d(c.digest),
      });
    case 'delivery_chain':
      return verifyDeliveryChain(
        c.chain === null ? c.bodies.map((b) => b64d(b)) : c.chain,
        b64d(c.server_pk),
        { message: c.message, digest: c.digest === null ? null : b64d(c.digest) },
      );
    case 'read':
      return verifyRead(c.wire, c.reader_identity);
    case 'countersign':
      return verifyCountersign(c.wire, c.read_wire, b64d(c.server_pk));
    default:
      throw new Error(`unknown check ${c.check}`);
  }
}

for (const c of ALL_REJECTS) {
  test(`reject: ${c.name}`, () => {
    assert.throws(() => runReject(c), (e) => {
      assert.equal(e.name, c.error, e.message);
      return true;
    });
  });
}
