// Signed receipts and delivery records (PROTOCOL.md §8), mirroring postbox/crypto/receipts.py
// one to one (camelCase names, option objects for Python's keyword arguments, the same checks
// in the same order and the same error names). Browser-safe: no Node APIs.
//
// Four signed objects, each served as {<name>: {…}, sig, kid}:
// - submission receipt {v, message, from, digest, accepted}, server receipt key,
//   "postbox/v1/receipt" ‖ cj(receipt); verifyReceiptFor is the sender's check against the
//   digest it computed itself;
// - delivery events {v, message, digest, event, at, by, prev}, receipt key,
//   "postbox/v1/delivery", chained per message with prev = H(cj(previous event) ‖ raw sig);
// - read receipt {v, message, digest, mailbox, reader, sth, read}, the reader's identity key,
//   "postbox/v1/read";
// - countersignature {v, read: H(cj(read) ‖ sig), received}, receipt key, "postbox/v1/countersign".
//
// Every verify function takes the pinned key explicitly, checks the closed shape, then that
// `kid` is derived from the pinned key (KeyIdMismatch), then the signature (BadSignature).
// A wire body given as a Uint8Array must be canonical JSON (NonCanonical).
//
// Delivery order rule: exactly one `available` first (prev null); every later event links to
// the one before, names the same message and digest, and is not earlier. `notified` and
// `retrieved` follow in either order (notifications leave through an asynchronous outbox, so
// a recipient online may fetch first; the legal clock needs both instants as they happened).
// `retrieved` is the first retrieval per account: `by` required, once per `by`. `notified`
// has `by` = the notified mailbox or null, once per `by` value. Anything else: BrokenChain.
import * as domain from './domain.js';
import * as shapes from './shapes.js';
import {
  DIGEST_BYTES, KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj, parseCanonical,
} from './encoding.js';
import {
  BrokenChain, CertificateInvalid, KeyIdMismatch, MalformedObject, ReceiptMismatch,
} from './errors.js';
import { deriveKid } from './kid.js';
import { certPk } from './certs.js';
import {
  H, checkSignPk, concatBytes, equal, sign, signKeypair, verify,
} from './primitives.js';

/** BLAKE2b-256 links between delivery events and from a countersignature to its read receipt. */
export const LINK_BYTES = 32;
export const ROOT_BYTES = KEY_BYTES;
export const DELIVERY_EVENTS = Object.freeze(['available', 'notified', 'retrieved']);

// --- shapes ------------------------------------------------------------------------------
const V1 = shapes.constant(1);
const SIG = shapes.b64(SIGNATURE_BYTES);
const DIGEST = shapes.b64(DIGEST_BYTES);
const LINK = shapes.b64(LINK_BYTES);

export const RECEIPT_SHAPE = shapes.obj({
  v: V1, message: shapes.ID, from: shapes.ID, digest: DIGEST, accepted: shapes.TIME,
});
export const SIGNED_RECEIPT_SHAPE = shapes.obj({ receipt: RECEIPT_SHAPE, sig: SIG, kid: shapes.KID });
export const DELIVERY_SHAPE = shapes.obj({
  v: V1,
  message: shapes.ID,
  digest: DIGEST,
  event: shapes.oneOf(...DELIVERY_EVENTS),
  at: shapes.TIME,
  by: shapes.nullable(shapes.ID),
  prev: shapes.nullable(LINK),
});
export const SIGNED_DELIVERY_SHAPE = shapes.obj({ delivery: DELIVERY_SHAPE, sig: SIG, kid: shapes.KID });
/** The {size, root} tree-head reference of read receipts and message content. */
export const STH_REF_SHAPE = shapes.obj({ size: shapes.integer(1), root: shapes.b64(ROOT_BYTES) });
export const READ_SHAPE = shapes.obj({
  v: V1,
  message: shapes.ID,
  digest: DIGEST,
  mailbox: shapes.ID,
  reader: shapes.ID,
  sth: STH_REF_SHAPE,
  read: shapes.TIME,
});
export const SIGNED_READ_SHAPE = shapes.obj({ read: READ_SHAPE, sig: SIG, kid: shapes.KID });
export const COUNTERSIGN_SHAPE = shapes.obj({ v: V1, read: LINK, received: shapes.TIME });
export const SIGNED_COUNTERSIGN_SHAPE = shapes.obj({
  countersign: COUNTERSIGN_SHAPE, sig: SIG, kid: shapes.KID,
});

// --- helpers -----------------------------------------------------------------------------
function wire(value) {
  return value instanceof Uint8Array ? parseCanonical(value) : value;
}

function checkDigest(digest) {
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES) {
    throw new MalformedObject(`digest must be ${DIGEST_BYTES} bytes`);
  }
  return b64e(digest);
}

function signObject(name, label, body, seed) {
  const { pk } = signKeypair(seed);
  return { [name]: body, sig: b64e(sign(seed, concatBytes(label, cj(body)))), kid: deriveKid('sign', pk) };
}

function verifySigned(signed, name, label, pk) {
  checkSignPk(pk);
  if (signed.kid !== deriveKid('sign', pk)) {
    throw new KeyIdMismatch(`${name} is signed by another key than the pinned one`);
  }
  verify(pk, concatBytes(label, cj(signed[name])), b64d(signed.sig, SIGNATURE_BYTES));
}

// --- submission receipts -------------------------------------------------------------------
export function makeReceipt({
  message, from, digest, accepted,
}) {
  const receipt = {
    v: 1, message, from, digest: checkDigest(digest), accepted,
  };
  shapes.check(RECEIPT_SHAPE, receipt, 'receipt');
  return receipt;
}

/** The server's side: sign a submission receipt with the receipt key. */
export function signReceipt(receipt, receiptSeed) {
  shapes.check(RECEIPT_SHAPE, receipt, 'receipt');
  return signObject('receipt', domain.RECEIPT, receipt, receiptSeed);
}

/** Verify a submission receipt under the pinned receipt key; returns the receipt. */
export function verifyReceipt(signed, receiptPk) {
  const s = wire(signed);
  shapes.check(SIGNED_RECEIPT_SHAPE, s, 'signed receipt');
  verifySigned(s, 'receipt', domain.RECEIPT, receiptPk);
  return s.receipt;
}

/**
 * The sender's check: the server receipted exactly the envelope it sent. `digest` is the
 * 64-byte envelope digest the sender computed itself; a valid receipt for another message
 * id, mailbox or digest throws ReceiptMismatch.
 */
export function verifyReceiptFor(signed, receiptPk, { message, from, digest }) {
  const expected = b64d(checkDigest(digest), DIGEST_BYTES);
  const receipt = verifyReceipt(signed, receiptPk);
  const sameDigest = equal(b64d(receipt.digest, DIGEST_BYTES), expected);
  if (!sameDigest || receipt.message !== message || receipt.from !== from) {
    throw new ReceiptMismatch('the receipt is not for the envelope that was sent');
  }
  return receipt;
}

// --- delivery events -------------------------------------------------------------------------
/** H(cj(event) ‖ sig): what the next event's prev must be. */
export function deliveryLink(signed) {
  return H(concatBytes(cj(signed.delivery), b64d(signed.sig, SIGNATURE_BYTES)), LINK_BYTES);
}

/** The server's side: sign the next event of a message's delivery chain. */
export function signDelivery({
  message, digest, event, at, by, previous, receiptSeed,
}) {
  const delivery = {
    v: 1,
    message,
    digest: checkDigest(digest),
    event,
    at,
    by,
    prev: previous === null || previous === undefined ? null : b64e(deliveryLink(previous)),
  };
  shapes.check(DELIVERY_SHAPE, delivery, 'delivery');
  return signObject('delivery', domain.DELIVERY, delivery, receiptSeed);
}

/** Verify one delivery event (its signature only; chains: verifyDeliveryChain). */
export function verifyDelivery(signed, receiptPk) {
  const s = wire(signed);
  shapes.check(SIGNED_DELIVERY_SHAPE, s, 'signed delivery');
  verifySigned(s, 'delivery', domain.DELIVERY, receiptPk);
  return s.delivery;
}

function minOf(map) {
  let out = null;
  for (const v of map.values()) if (out === null || v < out) out = v;
  return out;
}

/**
 * Verify a message's whole delivery chain (signatures, links and the order rule) and
 * summarise it for the legal clock: {message, digest, available, notified: Map(by → at),
 * retrieved: Map(account → at), firstNotified, firstRetrieved, events, head}. With
 * `message`/`digest`, a chain about another message throws ReceiptMismatch.
 */
export function verifyDeliveryChain(chain, receiptPk, { message = null, digest = null } = {}) {
  if (!Array.isArray(chain) || chain.length === 0) {
    throw new BrokenChain("a delivery chain has at least its 'available' event");
  }
  const events = [];
  const notified = new Map();
  const retrieved = new Map();
  let link = null;
  let firstDigest = null;
  chain.forEach((item, i) => {
    const s = wire(item);
    const d = verifyDelivery(s, receiptPk);
    const thisDigest = b64d(d.digest, DIGEST_BYTES);
    if (i === 0) {
      if (d.event !== 'available' || d.prev !== null) {
        throw new BrokenChain("a delivery chain starts with 'available' and no prev");
      }
      firstDigest = thisDigest;
    } else {
      const prev = events[events.length - 1];
      if (d.prev === null || !equal(b64d(d.prev, LINK_BYTES), link)) {
        throw new BrokenChain(`delivery event ${i} does not link to the one before`);
      }
      if (d.message !== prev.message || !equal(thisDigest, firstDigest)) {
        throw new BrokenChain(`delivery event ${i} is about another message`);
      }
      if (d.at < prev.at) throw new BrokenChain(`delivery event ${i} is earlier than the one before`);
      if (d.event === 'available') throw new BrokenChain('a message is made available once');
      if (d.event === 'notified') {
        if (notified.has(d.by)) throw new BrokenChain('notified twice for the same mailbox');
        notified.set(d.by, d.at);
      } else {
        if (d.by === null) throw new BrokenChain('a retrieval names the retrieving account');
        if (retrieved.has(d.by)) {
          throw new BrokenChain('only the first retrieval per account is recorded');
        }
        retrieved.set(d.by, d.at);
      }
    }
    events.push(d);
    link = deliveryLink(s);
  });
  const first = events[0];
  if (message !== null && first.message !== message) {
    throw new ReceiptMismatch('delivery chain of another message');
  }
  if (digest !== null && !equal(firstDigest, b64d(checkDigest(digest), DIGEST_BYTES))) {
    throw new ReceiptMismatch('delivery chain of another envelope digest');
  }
  return {
    message: first.message,
    digest: firstDigest,
    available: first.at,
    notified,
    retrieved,
    firstNotified: minOf(notified),
    firstRetrieved: minOf(retrieved),
    events,
    head: link,
  };
}

// --- read receipts -----------------------------------------------------------------------------
/**
 * The reader's side: sign that `reader` read `message` in `mailbox` at `read`; `sth` is the
 * newest tree head the reader verified ({size, root}).
 */
export function signRead({
  message, digest, mailbox, reader, sth, read, readerSeed,
}) {
  const body = {
    v: 1,
    message,
    digest: checkDigest(digest),
    mailbox,
    reader,
    sth: { size: sth.size, root: sth.root },
    read,
  };
  shapes.check(READ_SHAPE, body, 'read');
  return signObject('read', domain.READ, body, readerSeed);
}

/**
 * Verify a read receipt under the reader's verified identity certificate (an identity of
 * read.reader). Whether it was current at read.read is the caller's check
 * (SubjectState.identityValidAt in keystate.js).
 */
export function verifyRead(signed, readerIdentity) {
  const s = wire(signed);
  shapes.check(SIGNED_READ_SHAPE, s, 'signed read receipt');
  const r = s.read;
  if (readerIdentity.use !== 'sign' || readerIdentity.subject !== r.reader) {
    throw new CertificateInvalid('not the identity certificate of the reader');
  }
  verifySigned(s, 'read', domain.READ, certPk(readerIdentity));
  return r;
}

/** H(cj(read) ‖ sig): the countersignature's reference to a read receipt. */
export function readHash(signed) {
  return H(concatBytes(cj(signed.read), b64d(signed.sig, SIGNATURE_BYTES)), LINK_BYTES);
}

/** The server's side: countersign a read receipt on arrival. */
export function signCountersign(signedRead, { received, receiptSeed }) {
  shapes.check(SIGNED_READ_SHAPE, signedRead, 'signed read receipt');
  const body = { v: 1, read: b64e(readHash(signedRead)), received };
  shapes.check(COUNTERSIGN_SHAPE, body, 'countersign');
  return signObject('countersign', domain.COUNTERSIGN, body, receiptSeed);
}

/**
 * Verify a countersignature under the pinned receipt key and bind it to `signedRead` (only
 * hashed here; verify it with verifyRead). Another read receipt's countersignature throws
 * ReceiptMismatch.
 */
export function verifyCountersign(signed, signedRead, receiptPk) {
  const s = wire(signed);
  shapes.check(SIGNED_COUNTERSIGN_SHAPE, s, 'signed countersign');
  verifySigned(s, 'countersign', domain.COUNTERSIGN, receiptPk);
  const r = wire(signedRead);
  shapes.check(SIGNED_READ_SHAPE, r, 'signed read receipt');
  if (!equal(b64d(s.countersign.read, LINK_BYTES), readHash(r))) {
    throw new ReceiptMismatch('countersignature of another read receipt');
  }
  return s.countersign;
}
