// Monitoring the key-transparency log (PROTOCOL.md §7), mirroring postbox/crypto/monitor.py
// one to one: selfCheck (the owner's login check) and Auditor (duplicate seq, broken links).
// They catch a server withholding the tail of a subject's chain from one client, which a keys
// response alone cannot show. Pure: no I/O. Browser-safe, no Node APIs.
import * as merkle from './merkle.js';
import * as shapes from './shapes.js';
import { b64d } from './encoding.js';
import { CryptoError, ForkDetected } from './errors.js';
import { equal } from './primitives.js';
import {
  CHAIN_HEAD_SHAPE, chainHead, checkChain, eventHash, parseLeaf,
} from './logevents.js';
import { HASH_BYTES } from './transparency.js';

// --- the owner's self-check ----------------------------------------------------------------------
/**
 * The owner's check at login: its chain still holds the event the bundle remembers
 * ({seq, hash}: leaf hash) — else ForkDetected — and which later key events it did not
 * create: identity/key/admin_key events whose kid is not in ownKids, revoke events signed by a
 * key not in ownKids. Returns {head, foreign: [{seq, type, kid}], ok}.
 */
export function selfCheck(events, remembered, ownKids) {
  checkChain(events);
  let start = 0;
  if (remembered !== null && remembered !== undefined) {
    shapes.check(CHAIN_HEAD_SHAPE, remembered, 'chain');
    const { seq } = remembered;
    if (seq >= events.length) throw new ForkDetected('the log no longer shows events this account has seen');
    if (!equal(eventHash(events[seq]), b64d(remembered.hash, HASH_BYTES))) {
      throw new ForkDetected('the event this account remembers was replaced');
    }
    start = seq + 1;
  }
  const own = new Set(ownKids);
  const foreign = [];
  for (const event of events.slice(start)) {
    const t = event.type;
    let kid;
    if (t === 'identity' || t === 'key' || t === 'admin_key') kid = event.body.cert.kid;
    else if (t === 'revoke') kid = event.body.by;
    else continue;
    if (!own.has(kid)) foreign.push({ seq: event.seq, type: t, kid });
  }
  return { head: chainHead(events), foreign, ok: foreign.length === 0 };
}

// --- the auditor ---------------------------------------------------------------------------
/**
 * Scans the whole log leaf by leaf (in index order) for structural alarms: a leaf that is
 * not a valid event ('malformed'), leaf 0 not a server_key at seq 0 ('first_leaf'), two
 * events with the same (subject, seq) ('duplicate_seq'), a seq gap ('seq_gap'), a prev that
 * is not the previous event's leaf hash ('broken_link'), time going backwards ('time').
 * Keeps one entry per subject and a Merkle frontier, so root() can be compared with
 * verified tree heads (checkHead). Signatures are checked per subject by replay.
 */
export class Auditor {
  #tips = new Map();
  #frontier = []; // hashes of the perfect subtrees of [0, size), biggest first
  #size = 0;

  findings = [];

  get size() {
    return this.#size;
  }

  root() {
    return this.#frontier.length ? merkle.fold(this.#frontier) : merkle.EMPTY_ROOT;
  }

  #append(hash) {
    let h = hash;
    let i = this.#size;
    while (i % 2 === 1) {
      h = merkle.nodeHash(this.#frontier.pop(), h);
      i = (i - 1) / 2;
    }
    this.#frontier.push(h);
    this.#size += 1;
  }

  /** Audit the next leaf; returns the findings it raised (also kept in `findings`). */
  add(leaf) {
    const index = this.#size;
    const h = merkle.leafHash(leaf);
    this.#append(h);
    const found = [];
    let event;
    try {
      event = parseLeaf(leaf);
    } catch (e) {
      if (!(e instanceof CryptoError)) throw e;
      found.push({
        kind: 'malformed', index, subject: null, seq: null, detail: e.message,
      });
      this.findings.push(...found);
      return found;
    }
    const { subject, seq } = event;
    const note = (kind, detail) => found.push({
      kind, index, subject, seq, detail,
    });
    if (index === 0 && (event.type !== 'server_key' || seq !== 0)) {
      note('first_leaf', "leaf 0 must be the log's server_key event");
    }
    const tip = this.#tips.get(subject);
    const expected = tip === undefined ? 0 : tip.nextSeq;
    if (seq < expected) {
      note('duplicate_seq', `a second event with seq ${seq}`);
    } else if (seq > expected) {
      note('seq_gap', `expected seq ${expected}`);
    } else {
      const { prev } = event;
      if (tip === undefined) {
        if (prev !== null) note('broken_link', 'seq 0 has a prev');
      } else if (prev === null || !equal(b64d(prev, HASH_BYTES), tip.hash)) {
        note('broken_link', `prev is not the leaf hash of seq ${seq - 1}`);
      }
      if (tip !== undefined && event.ts < tip.ts) note('time', "older than the subject's previous event");
      this.#tips.set(subject, { nextSeq: seq + 1, hash: h, ts: event.ts });
    }
    this.findings.push(...found);
    return found;
  }

  extend(leaves) {
    const found = [];
    for (const leaf of leaves) found.push(...this.add(leaf));
    return found;
  }

  /** Compare a verified tree head with the leaves audited so far (equal sizes only). */
  checkHead(sth) {
    if (sth.size !== this.#size) throw new RangeError("audit up to the head's size first");
    if (!equal(this.root(), b64d(sth.root, HASH_BYTES))) {
      throw new ForkDetected('the leaves served do not hash to the signed root');
    }
  }
}

/** Audit a whole log from leaf 0. */
export function auditLeaves(leaves) {
  return new Auditor().extend(leaves);
}
