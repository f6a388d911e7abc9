// Replaying a subject's verified key-transparency chain into its key state (PROTOCOL.md §7),
// mirroring postbox/crypto/keystate.py one to one (see there for the full rules). Pure: no
// I/O. Browser-safe, no Node APIs.
//
// The first event fixes the chain kind — identity → account, team key → team, org_root → org,
// server_key → server. "Current" is decided by chain order: a later key supersedes earlier
// ones; revoking the newest key leaves no usable key. Identity changes must be linked
// (certs.verifyRotation) from a non-revoked identity, else IdentityChanged, unless accepted or
// pinned by the caller. Server-key endorsements live in the endorsing org's chain; the server's
// own chain is unendorsed.
import * as certs from './certs.js';
import { KEY_BYTES, b64d } from './encoding.js';
import {
  BrokenChain, CertificateInvalid, CertificateRevoked, IdentityChanged, OrgCertificationMissing,
} from './errors.js';
import { equal } from './primitives.js';
import { chainHead, checkChain } from './logevents.js';

function lookup(mapping, key) {
  if (mapping === null || mapping === undefined || key === null) return undefined;
  if (mapping instanceof Map) return mapping.get(key);
  return Object.hasOwn(mapping, key) ? mapping[key] : undefined;
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
