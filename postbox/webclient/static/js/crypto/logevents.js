// Key-transparency log events and per-subject chains (PROTOCOL.md §7), mirroring
// postbox/crypto/logevents.py one to one. Pure: no I/O. Browser-safe, no Node APIs.
//
// Events: leaf = cj(event); event.prev = RFC 9162 leaf hash of the subject's previous event.
// verifyKeysResponse checks GET /api/v1/keys/{subject}: tree head, inclusion proofs, an
// unbroken chain from seq 0. It proves inclusion, not completeness: a server can withhold the
// tail of a chain from one client, which the owner's self-check and the auditor (monitor.js)
// catch.
import * as certs from './certs.js';
import * as merkle from './merkle.js';
import * as shapes from './shapes.js';
import {
  b64d, b64e, cj, parseCanonical,
} from './encoding.js';
import { BrokenChain } from './errors.js';
import { equal } from './primitives.js';
import {
  HASH, HASH_BYTES, MAX_STH_AGE_MS, PATH_SHAPE, SIG, TREE_HEAD_SHAPE, V1, checkFresh, checkHash,
  decodePath, verifyHeadSig, wire,
} from './transparency.js';

export const EVENT_TYPES = Object.freeze([
  'server_key', 'org_root', 'identity', 'key', 'revoke', 'member_add', 'member_remove', 'admin_key',
]);

// --- shapes ------------------------------------------------------------------------------
export const CHAIN_HEAD_SHAPE = shapes.obj({ seq: shapes.COUNT, hash: HASH });
export const BODY_SHAPES = Object.freeze({
  server_key: certs.SIGNED_SERVER_KEY_SHAPE,
  org_root: certs.SIGNED_ORG_ROOT_SHAPE,
  identity: certs.SIGNED_CERT_SHAPE,
  key: certs.SIGNED_CERT_SHAPE,
  admin_key: certs.SIGNED_CERT_SHAPE,
  revoke: certs.SIGNED_REVOCATION_SHAPE,
  member_add: certs.SIGNED_MEMBERSHIP_SHAPE,
  member_remove: certs.SIGNED_MEMBERSHIP_SHAPE,
});
const EVENT_FRAME = shapes.obj({
  v: V1,
  subject: shapes.ID,
  seq: shapes.COUNT,
  prev: shapes.nullable(HASH),
  type: shapes.oneOf(...EVENT_TYPES),
  ts: shapes.TIME,
  body: shapes.freeObject,
});

/** A log event: the closed frame, then the body shape its type names. */
export function EVENT_SHAPE(value, path) {
  EVENT_FRAME(value, path);
  BODY_SHAPES[value.type](value.body, `${path}.body`);
}

const PROOF_ENTRY_SHAPE = shapes.obj({ index: shapes.COUNT, leaf: shapes.b64(null), path: PATH_SHAPE });
const KEYS_RESPONSE_SHAPE = shapes.obj({
  sth: TREE_HEAD_SHAPE, sig: SIG, events: shapes.array(PROOF_ENTRY_SHAPE),
});

// --- events ------------------------------------------------------------------------------
export function makeEvent({
  subject, seq, prev, type, ts, body,
}) {
  const event = {
    v: 1,
    subject,
    seq,
    prev: prev === null || prev === undefined ? null : b64e(checkHash(prev, 'prev')),
    type,
    ts,
    body,
  };
  shapes.check(EVENT_SHAPE, event, 'event');
  return event;
}

/** The event after `previous` in a subject's chain (seq and prev filled in). */
export function nextEvent(previous, {
  subject, type, ts, body,
}) {
  if (previous === null || previous === undefined) {
    return makeEvent({
      subject, seq: 0, prev: null, type, ts, body,
    });
  }
  if (previous.subject !== subject) throw new BrokenChain('previous event of another subject');
  return makeEvent({
    subject, seq: previous.seq + 1, prev: eventHash(previous), type, ts, body,
  });
}

/** The leaf bytes of an event: cj(event). */
export function eventLeaf(event) {
  return cj(event);
}

/** The RFC 9162 leaf hash SHA-256(0x00 ‖ cj(event)), what the next prev holds. */
export function eventHash(event) {
  return merkle.leafHash(cj(event));
}

/** An event from its leaf bytes (canonical JSON, closed shape). */
export function parseLeaf(leaf) {
  const event = parseCanonical(leaf);
  shapes.check(EVENT_SHAPE, event, 'event');
  return event;
}

/** An unbroken chain from seq 0 (one subject, consecutive seqs, links, time). BrokenChain. */
export function checkChain(events, subject = null) {
  if (!Array.isArray(events) || events.length === 0) throw new BrokenChain('empty chain');
  const want = subject === null ? events[0].subject : subject;
  let prevHash = null;
  let prevTs = 0;
  events.forEach((event, i) => {
    if (event.subject !== want) throw new BrokenChain(`event ${i} is about another subject`);
    if (event.seq !== i) throw new BrokenChain(`expected seq ${i}, got ${event.seq}`);
    if (prevHash === null) {
      if (event.prev !== null) throw new BrokenChain('seq 0 has a prev');
    } else if (event.prev === null || !equal(b64d(event.prev, HASH_BYTES), prevHash)) {
      throw new BrokenChain(`seq ${i} does not link to seq ${i - 1}`);
    }
    if (event.ts < prevTs) throw new BrokenChain(`seq ${i} is older than seq ${i - 1}`);
    prevHash = eventHash(event);
    prevTs = event.ts;
  });
}

/** The {seq, hash} a bundle stores for the last event of its own chain. */
export function chainHead(events) {
  if (!Array.isArray(events) || events.length === 0) throw new BrokenChain('empty chain');
  const last = events[events.length - 1];
  return { seq: last.seq, hash: b64e(eventHash(last)) };
}

/**
 * Verify GET /api/v1/keys/{subject} = {sth, sig, events: [{index, leaf, path}]}: the tree
 * head (pinned log key, age), every inclusion proof (BadProof), an unbroken chain of
 * `subject` from seq 0 in increasing leaf order (BrokenChain). Returns {subject, sth,
 * events, indices, head}. The head is not compared with the caller's stored head: use
 * compareHeads (or advance) before trusting it.
 */
export function verifyKeysResponse(response, subject, logPk, { now, maxAgeMs = MAX_STH_AGE_MS }) {
  const r = wire(response);
  shapes.check(KEYS_RESPONSE_SHAPE, r, 'keys response');
  const { sth } = r;
  verifyHeadSig(sth, r.sig, logPk);
  checkFresh(sth, { now, maxAgeMs });
  const root = b64d(sth.root, HASH_BYTES);
  const events = [];
  const indices = [];
  for (const entry of r.events) {
    const leaf = b64d(entry.leaf);
    merkle.verifyInclusion(merkle.leafHash(leaf), entry.index, sth.size, decodePath(entry.path), root);
    if (indices.length && entry.index <= indices[indices.length - 1]) {
      throw new BrokenChain('events are not in log order');
    }
    events.push(parseLeaf(leaf));
    indices.push(entry.index);
  }
  checkChain(events, subject);
  return {
    subject, sth, events, indices, head: chainHead(events),
  };
}
