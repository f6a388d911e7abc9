// The client side of the key-transparency log (PROTOCOL.md §7), mirroring
// postbox/crypto/transparency.py one to one (camelCase names, option objects for Python's
// keyword arguments, the same checks in the same order, the same error names). Pure: no I/O.
// Browser-safe: SHA-256 through merkle.js (sodium.crypto_hash_sha256), no Node APIs.
//
// Tree heads: sth = {v, size, root, ts} signed by the log key over "postbox/v1/sth" ‖ cj(sth),
// served as {sth, sig, log_key} (log_key = b64 public key, must equal the pinned one).
// verifyTreeHead checks signature and age (≤ 24 h old, ≤ 5 min in the future, against a
// caller-given `now`); advance moves the stored head forward (smaller/older → StaleTreeHead,
// same size other root or a failing consistency proof → ForkDetected); compareHeads is the
// recipient's fork check of a message's sth.
//
// Events: leaf = cj(event); event.prev = RFC 9162 leaf hash of the subject's previous event.
// verifyKeysResponse checks GET /api/v1/keys/{subject}: tree head, inclusion proofs, an
// unbroken chain from seq 0.
//
// Replay (see transparency.py for the full rules): the first event fixes the chain kind —
// identity → account, team key → team, org_root → org, server_key → server. "Current" is
// decided by chain order: a later key supersedes earlier ones; revoking the newest key leaves
// no usable key. Identity changes must be linked (certs.verifyRotation) from a non-revoked
// identity, else IdentityChanged, unless accepted or pinned by the caller. Server-key
// endorsements live in the endorsing org's chain; the server's own chain is unendorsed.
//
// Monitoring: selfCheck (the owner's login check) and Auditor (duplicate seq, broken links).
import * as certs from './certs.js';
import * as domain from './domain.js';
import * as merkle from './merkle.js';
import * as shapes from './shapes.js';
import {
  KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj, parseCanonical,
} from './encoding.js';
import {
  BadProof, BrokenChain, CertificateInvalid, CertificateRevoked, CryptoError, ForkDetected,
  IdentityChanged, KeyIdMismatch, MalformedObject, OrgCertificationMissing, StaleTreeHead,
} from './errors.js';
import {
  checkSignPk, concatBytes, equal, sign, signKeypair, verify,
} from './primitives.js';

export const HASH_BYTES = merkle.HASH_BYTES;
/** Clients reject tree heads older than this (PROTOCOL.md §7). */
export const MAX_STH_AGE_MS = 24 * 3600 * 1000;
/** ... and heads dated further than this in the future. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
export const MAX_PATH = 64;
export const EVENT_TYPES = Object.freeze([
  'server_key', 'org_root', 'identity', 'key', 'revoke', 'member_add', 'member_remove', 'admin_key',
]);

// --- shapes ------------------------------------------------------------------------------
const V1 = shapes.constant(1);
const SIG = shapes.b64(SIGNATURE_BYTES);
const HASH = shapes.b64(HASH_BYTES);
export const TREE_HEAD_SHAPE = shapes.obj({
  v: V1, size: shapes.integer(1), root: HASH, ts: shapes.TIME,
});
export const SERVED_TREE_HEAD_SHAPE = shapes.obj({
  sth: TREE_HEAD_SHAPE, sig: SIG, log_key: shapes.b64(KEY_BYTES),
});
export const CHAIN_HEAD_SHAPE = shapes.obj({ seq: shapes.COUNT, hash: HASH });
const PATH_SHAPE = shapes.array(HASH, MAX_PATH);
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
const CONSISTENCY_RESPONSE_SHAPE = shapes.obj({
  first: shapes.integer(1), second: shapes.integer(1), path: PATH_SHAPE,
});
const INCLUSION_RESPONSE_SHAPE = shapes.obj({
  index: shapes.COUNT, size: shapes.integer(1), leaf: shapes.b64(null), path: PATH_SHAPE,
});
const STH_REF_SHAPE = shapes.obj({ size: shapes.integer(1), root: HASH });

function wire(value) {
  return value instanceof Uint8Array ? parseCanonical(value) : value;
}

function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_BYTES) {
    throw new MalformedObject(`${what} must be ${HASH_BYTES} bytes`);
  }
  return value;
}

/** A proof path from its wire form (a list of b64 hashes). */
export function decodePath(path) {
  shapes.check(PATH_SHAPE, path, 'path');
  return path.map((p) => b64d(p, HASH_BYTES));
}

function lookup(mapping, key) {
  if (mapping === null || mapping === undefined || key === null) return undefined;
  if (mapping instanceof Map) return mapping.get(key);
  return Object.hasOwn(mapping, key) ? mapping[key] : undefined;
}

// --- tree heads --------------------------------------------------------------------------
export function makeTreeHead({ size, root, ts }) {
  const sth = {
    v: 1, size, root: b64e(checkHash(root, 'root')), ts,
  };
  shapes.check(TREE_HEAD_SHAPE, sth, 'sth');
  return sth;
}

/** The log's side: the served form {sth, sig, log_key}. */
export function signTreeHead(sth, logSeed) {
  shapes.check(TREE_HEAD_SHAPE, sth, 'sth');
  const { pk } = signKeypair(logSeed);
  return { sth, sig: b64e(sign(logSeed, concatBytes(domain.STH, cj(sth)))), log_key: b64e(pk) };
}

function verifyHeadSig(sth, sig, logPk) {
  checkSignPk(logPk);
  verify(logPk, concatBytes(domain.STH, cj(sth)), b64d(sig, SIGNATURE_BYTES));
}

/** Reject a head older than maxAgeMs or dated more than 5 min after `now`. */
export function checkFresh(sth, { now, maxAgeMs = MAX_STH_AGE_MS }) {
  if (sth.ts < now - maxAgeMs) throw new StaleTreeHead('tree head is older than 24 hours');
  if (sth.ts > now + MAX_CLOCK_SKEW_MS) throw new StaleTreeHead('tree head is dated in the future');
}

/**
 * Verify GET /api/v1/transparency/sth under the pinned log key and check its age. Another
 * log_key than the pinned one throws KeyIdMismatch, a bad signature BadSignature.
 */
export function verifyTreeHead(served, logPk, { now, maxAgeMs = MAX_STH_AGE_MS }) {
  const s = wire(served);
  shapes.check(SERVED_TREE_HEAD_SHAPE, s, 'served tree head');
  if (!equal(b64d(s.log_key, KEY_BYTES), logPk)) {
    throw new KeyIdMismatch('tree head from another log key than the pinned one');
  }
  verifyHeadSig(s.sth, s.sig, logPk);
  checkFresh(s.sth, { now, maxAgeMs });
  return s.sth;
}

/**
 * The head to store after verifying `next` (signature and age already checked). `proof` is
 * the consistency proof from last.size to next.size (byte arrays), needed when the tree grew.
 */
export function advance(last, next, proof = null) {
  shapes.check(TREE_HEAD_SHAPE, next, 'sth');
  if (last === null || last === undefined) return next;
  shapes.check(TREE_HEAD_SHAPE, last, 'last sth');
  if (next.size < last.size) throw new StaleTreeHead('tree head smaller than the last one stored');
  const newRoot = b64d(next.root, HASH_BYTES);
  const lastRoot = b64d(last.root, HASH_BYTES);
  if (next.size === last.size && !equal(newRoot, lastRoot)) {
    throw new ForkDetected('two tree heads of the same size with different roots');
  }
  if (next.ts < last.ts) throw new StaleTreeHead('tree head older than the last one stored');
  if (next.size > last.size) {
    if (proof === null || proof === undefined) {
      throw new BadProof('a consistency proof is needed to advance the tree head');
    }
    try {
      merkle.verifyConsistency(last.size, next.size, proof, lastRoot, newRoot);
    } catch (e) {
      if (e?.name === 'BadProof') {
        throw new ForkDetected('new tree head is not an extension of the stored one');
      }
      throw e;
    }
  }
  return next;
}

/** verifyTreeHead then advance: the new head to store. */
export function verifySth(served, logPk, {
  now, last = null, proof = null, maxAgeMs = MAX_STH_AGE_MS,
}) {
  return advance(last, verifyTreeHead(served, logPk, { now, maxAgeMs }), proof);
}

/** The path of …/consistency?first=&second= after checking it answers that question. */
export function consistencyPath(response, first, second) {
  const r = wire(response);
  shapes.check(CONSISTENCY_RESPONSE_SHAPE, r, 'consistency response');
  if (r.first !== first || r.second !== second) {
    throw new BadProof('consistency proof for other tree sizes');
  }
  return decodePath(r.path);
}

/** Check …/inclusion?index=&size= against a verified head; returns the leaf bytes. */
export function verifyInclusionResponse(response, sth) {
  const r = wire(response);
  shapes.check(INCLUSION_RESPONSE_SHAPE, r, 'inclusion response');
  if (r.size !== sth.size) throw new BadProof('inclusion proof for another tree size');
  const leaf = b64d(r.leaf);
  merkle.verifyInclusion(
    merkle.leafHash(leaf), r.index, r.size, decodePath(r.path), b64d(sth.root, HASH_BYTES),
  );
  return leaf;
}

/**
 * The recipient's fork check of a message's sth (n, root) against its own verified head
 * (m, root_m): n > m → 'advance' (advance first, then call again); n = m → 'consistent' if
 * the roots are equal, else ForkDetected; n < m → 'need_proof' without `proof`, with it
 * 'consistent' or ForkDetected.
 */
export function compareHeads(messageSth, own, proof = null) {
  const ref = { size: messageSth?.size, root: messageSth?.root };
  shapes.check(STH_REF_SHAPE, ref, 'message sth');
  shapes.check(TREE_HEAD_SHAPE, own, 'own sth');
  const n = ref.size;
  const m = own.size;
  const rootN = b64d(ref.root, HASH_BYTES);
  const rootM = b64d(own.root, HASH_BYTES);
  if (n > m) return 'advance';
  if (n === m) {
    if (!equal(rootN, rootM)) throw new ForkDetected('the sender saw another tree of the same size');
    return 'consistent';
  }
  if (proof === null || proof === undefined) return 'need_proof';
  try {
    merkle.verifyConsistency(n, m, proof, rootN, rootM);
  } catch (e) {
    if (e?.name === 'BadProof') throw new ForkDetected("the sender's tree head is not a prefix of ours");
    throw e;
  }
  return 'consistent';
}

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

// --- replay --------------------------------------------------------------------------------
function find(entries, kid) {
  return entries.find((e) => e.cert.kid === kid) ?? null;
}

function validAt(entry, at, revocations) {
  if (entry === null) throw new CertificateInvalid("key is not in the subject's log chain");
  certs.checkValidAt(entry.cert, at, revocations);
  if (entry.supersededAt !== null && at >= entry.supersededAt) {
    throw new CertificateRevoked('superseded by a newer key');
  }
  return entry.cert;
}

/** A subject's key state after replaying its verified chain. Entries: {cert, seq, ts, supersededAt}. */
export class SubjectState {
  constructor(fields) {
    Object.assign(this, fields);
    Object.freeze(this);
  }

  get head() {
    return chainHead(this.events);
  }

  revokedBy(kid) {
    return this.revocations.find((r) => r.kid === kid) ?? null;
  }

  /** The current identity certificate, null if revoked (accounts only). */
  get identity() {
    const last = this.identities[this.identities.length - 1];
    if (last === undefined || this.revokedBy(last.cert.kid)) return null;
    return last.cert;
  }

  currentIdentity() {
    const cert = this.identity;
    if (cert === null) throw new CertificateRevoked('the subject has no current identity');
    return cert;
  }

  /** The key a sender may encrypt to: the newest key event, not revoked, valid at `now`. */
  currentEncryption(now) {
    if (this.encryption.length === 0) throw new CertificateInvalid('the subject has no encryption key');
    const newest = this.encryption[this.encryption.length - 1].cert;
    const revoked = this.revokedBy(newest.kid);
    if (revoked !== null) {
      throw new CertificateRevoked(`the newest encryption key is revoked (${revoked.reason})`);
    }
    certs.checkValidAt(newest, now);
    return newest;
  }

  /** The identity `kid` if it was this subject's identity at `at`. */
  identityValidAt(kid, at) {
    return validAt(find(this.identities, kid), at, this.revocations);
  }

  encryptionValidAt(kid, at) {
    return validAt(find(this.encryption, kid), at, this.revocations);
  }

  /** An org admin identity (org chains) that was current at `at`. */
  adminValidAt(kid, at) {
    return validAt(find(this.admins, kid), at, this.revocations);
  }

  /** The newest server key (server chains) or endorsement (org chains). */
  get serverKey() {
    return this.serverKeys.length ? this.serverKeys[this.serverKeys.length - 1] : null;
  }
}

const ALLOWED = Object.freeze({
  account: new Set(['identity', 'key', 'revoke']),
  team: new Set(['key', 'revoke', 'member_add', 'member_remove']),
  org: new Set(['admin_key', 'server_key', 'revoke']),
  server: new Set(['server_key']),
});

class Builder {
  constructor(subject, orgRoots, orgs, accepted) {
    this.subject = subject;
    this.kind = 'account';
    this.orgRoots = orgRoots;
    this.orgs = orgs;
    this.accepted = accepted;
    this.identities = [];
    this.encryption = [];
    this.admins = [];
    this.revocations = [];
    this.members = new Set();
    this.membershipAt = new Map();
    this.rotationPending = false;
    this.org = null;
    this.orgRoot = null;
    this.serverKeys = [];
  }

  revoked(kid) {
    return this.revocations.some((r) => r.kid === kid);
  }

  currentIdentity() {
    const last = this.identities[this.identities.length - 1];
    if (last === undefined || this.revoked(last.cert.kid)) {
      throw new CertificateRevoked('no current identity to sign with');
    }
    return last.cert;
  }

  orgAdmin(kid, at) {
    const org = lookup(this.orgs, this.org);
    if (org === undefined) throw new OrgCertificationMissing('no verified org chain for the admin signature');
    if (org.kind !== 'org' || org.subject !== this.org) {
      throw new OrgCertificationMissing("the org state given is not this org's chain");
    }
    return org.adminValidAt(kid, at);
  }

  static supersede(entries, index, ts) {
    entries[index] = { ...entries[index], supersededAt: ts };
  }

  static entry(cert, event) {
    return {
      cert, seq: event.seq, ts: event.ts, supersededAt: null,
    };
  }

  first(event) {
    const { body, type } = event;
    if (type === 'identity') {
      this.kind = 'account';
      this.identity(event, true);
    } else if (type === 'key') {
      if (body.cert.kind !== 'team') throw new BrokenChain('an account chain starts with its identity');
      this.kind = 'team';
      this.org = body.cert.org;
      this.teamKey(event);
    } else if (type === 'org_root') {
      this.kind = 'org';
      this.orgRootEvent(event);
    } else if (type === 'server_key') {
      this.kind = 'server';
      this.serverKey(event);
    } else {
      throw new BrokenChain(`a chain cannot start with ${type}`);
    }
  }

  apply(event) {
    const t = event.type;
    if (!ALLOWED[this.kind].has(t)) throw new CertificateInvalid(`${t} event in a ${this.kind} chain`);
    if (t === 'identity') this.identity(event, false);
    else if (t === 'key' && this.kind === 'team') this.teamKey(event);
    else if (t === 'key') this.accountKey(event);
    else if (t === 'revoke') this.revoke(event);
    else if (t === 'member_add' || t === 'member_remove') this.membership(event);
    else if (t === 'admin_key') this.adminKey(event);
    else this.serverKey(event);
  }

  identity(event, first) {
    const signed = event.body;
    const claimed = signed.cert;
    const orgRoot = claimed.org === null ? null : (lookup(this.orgRoots, claimed.org) ?? null);
    const cert = certs.verifyIdentityCert(signed, orgRoot);
    if (cert.subject !== this.subject || cert.kind === 'team') {
      throw new CertificateInvalid('identity certificate of another subject');
    }
    if (!first) {
      const old = this.identities[this.identities.length - 1].cert;
      if (!this.accepted.has(cert.kid)) {
        if (this.revoked(old.kid)) throw new IdentityChanged('new identity after the old one was revoked');
        try {
          certs.verifyRotation(signed, old);
        } catch (e) {
          if (e?.name === 'CertificateInvalid' || e?.name === 'BadSignature') {
            throw new IdentityChanged('new identity is not linked to the old one');
          }
          throw e;
        }
        if (cert.kind !== old.kind || cert.org !== old.org) {
          throw new CertificateInvalid('a rotation keeps the kind and the org');
        }
      }
      Builder.supersede(this.identities, this.identities.length - 1, event.ts);
    }
    this.org = cert.org;
    this.identities.push(Builder.entry(cert, event));
  }

  accountKey(event) {
    const cert = certs.verifyEncryptionCert(event.body, this.currentIdentity());
    if (this.encryption.length) Builder.supersede(this.encryption, this.encryption.length - 1, event.ts);
    this.encryption.push(Builder.entry(cert, event));
  }

  teamKey(event) {
    const signed = event.body;
    const claimed = signed.cert;
    if (claimed.subject !== this.subject || claimed.org !== this.org) {
      throw new CertificateInvalid('team certificate of another team or org');
    }
    const cert = certs.verifyTeamCert(signed, this.orgAdmin(signed.by, event.ts));
    if (this.encryption.length) Builder.supersede(this.encryption, this.encryption.length - 1, event.ts);
    this.encryption.push(Builder.entry(cert, event));
    this.rotationPending = false;
  }

  membership(event) {
    const signed = event.body;
    const admin = this.orgAdmin(signed.by, event.ts);
    const m = certs.verifyMembership(signed, admin, this.org);
    if (m.team !== this.subject) throw new CertificateInvalid('membership of another team');
    // The signed body does not say "add" or "remove" (the event type does), so a strictly
    // increasing `at` per member is what stops a server replaying one as the other.
    const lastAt = this.membershipAt.has(m.member) ? this.membershipAt.get(m.member) : -1;
    if (m.at <= lastAt) throw new CertificateInvalid('membership statement replayed or out of order');
    this.membershipAt.set(m.member, m.at);
    if (event.type === 'member_add') {
      if (this.members.has(m.member)) throw new CertificateInvalid('already a member');
      this.members.add(m.member);
    } else {
      if (!this.members.has(m.member)) throw new CertificateInvalid('not a member');
      this.members.delete(m.member);
      this.rotationPending = true;
    }
  }

  revoke(event) {
    const signed = event.body;
    const rev = signed.revoke;
    const { by } = signed;
    const at = event.ts;
    let signer;
    if (this.kind === 'org') {
      if (find(this.admins, rev.kid) === null) {
        throw new CertificateInvalid('revokes a key that is not an admin key of this org');
      }
      signer = validAt(find(this.admins, by), at, this.revocations);
    } else {
      if (rev.subject !== this.subject) throw new CertificateInvalid('revocation of another subject');
      const known = find(this.identities, rev.kid) ?? find(this.encryption, rev.kid);
      if (known === null) throw new CertificateInvalid('revokes a key that is not in the chain');
      if (find(this.identities, by) !== null) {
        signer = this.currentIdentity(); // the subject's own, current identity only
        if (signer.kid !== by) throw new CertificateInvalid('revocation signed by a superseded identity');
      } else {
        signer = this.orgAdmin(by, at);
      }
    }
    certs.verifyRevocation(signed, signer, this.org);
    if (this.revoked(rev.kid)) throw new CertificateInvalid('key revoked twice');
    this.revocations.push(rev);
  }

  adminKey(event) {
    const signed = event.body;
    const cert = certs.verifyIdentityCert(signed, this.orgRoot);
    if (cert.kind !== 'admin' || cert.org !== this.subject) {
      throw new CertificateInvalid("admin_key events carry this org's admin identities");
    }
    this.admins.forEach((entry, i) => {
      if (entry.cert.subject === cert.subject && entry.supersededAt === null) {
        Builder.supersede(this.admins, i, event.ts);
      }
    });
    this.admins.push(Builder.entry(cert, event));
  }

  orgRootEvent(event) {
    const root = certs.verifyOrgRoot(event.body);
    if (root.org !== this.subject) throw new CertificateInvalid('org root of another org');
    const pinned = lookup(this.orgRoots, this.subject);
    if (pinned === undefined || pinned === null) {
      throw new OrgCertificationMissing('no pinned org root for this org');
    }
    if (!equal(b64d(root.pk, KEY_BYTES), b64d(pinned.pk, KEY_BYTES))) {
      throw new IdentityChanged('the logged org root is not the pinned one');
    }
    this.org = this.subject;
    this.orgRoot = root;
  }

  serverKey(event) {
    const signed = event.body;
    if (this.kind === 'org') {
      if (signed.org !== this.subject) throw new CertificateInvalid('endorsement by another org');
      this.serverKeys.push(certs.verifyServerKey(signed, this.orgRoot));
    } else {
      if (signed.org !== null) {
        throw new CertificateInvalid("endorsements belong in the endorsing org's chain");
      }
      this.serverKeys.push(certs.verifyServerKey(signed));
    }
  }
}

/**
 * Replay a subject's verified chain (from verifyKeysResponse) into its state.
 * `orgRoots`: org id → the pinned org root (object or Map); `orgs`: org id → that org's
 * replayed SubjectState (for admin signatures); `acceptedIdentities`: identity kids the user
 * accepted despite a missing rotation link; `pinnedIdentity`: the kid the client pinned,
 * which must be in the chain (IdentityChanged otherwise) and counts as accepted.
 */
export function replay(events, {
  orgRoots = {}, orgs = {}, acceptedIdentities = [], pinnedIdentity = null,
} = {}) {
  checkChain(events);
  const accepted = new Set(acceptedIdentities);
  if (pinnedIdentity !== null) accepted.add(pinnedIdentity);
  const b = new Builder(events[0].subject, orgRoots, orgs, accepted);
  b.first(events[0]);
  for (const event of events.slice(1)) b.apply(event);
  if (pinnedIdentity !== null && find(b.identities, pinnedIdentity) === null) {
    throw new IdentityChanged("the pinned identity is not in the subject's chain");
  }
  return new SubjectState({
    subject: b.subject,
    kind: b.kind,
    events: Object.freeze([...events]),
    identities: Object.freeze(b.identities),
    encryption: Object.freeze(b.encryption),
    admins: Object.freeze(b.admins),
    revocations: Object.freeze(b.revocations),
    members: Object.freeze(new Set(b.members)),
    rotationPending: b.rotationPending,
    org: b.org,
    orgRoot: b.orgRoot,
    serverKeys: Object.freeze(b.serverKeys),
  });
}

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
