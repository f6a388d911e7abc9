// Key certificates and the other signed key objects of PROTOCOL.md §3, §7 and §9,
// mirroring postbox/crypto/certs.py one to one (camelCase names, option objects where
// Python takes keyword arguments, plain JSON objects exactly like Python's dicts, the same
// checks in the same order and the same error names).
//
// Everything here is create-and-verify over closed v1 objects: key certificates (identity:
// self-signed, org-certified for staff; encryption: signed by the subject's identity; team
// encryption: signed by an org admin's identity), identity rotation links (prev/prev_sig),
// the org root and its fingerprint, revocations, team key wraps, memberships, server-key
// endorsements and procedures. Verification functions take the already-verified signer
// certificate as an argument and return the verified object; they never fetch anything.
// Whether the signer's certificate itself is current is the caller's job (checkValidAt and
// the transparency log). Browser-safe: no Node APIs.
import * as crockford from './crockford.js';
import * as domain from './domain.js';
import * as shapes from './shapes.js';
import {
  DIGEST_BYTES, KEY_BYTES, SEALED_KEY_BYTES, SIGNATURE_BYTES, b64d, b64e, cj,
} from './encoding.js';
import {
  CertificateExpired, CertificateInvalid, CertificateRevoked, KeyIdMismatch,
  KeySubstitution, MalformedObject, OrgCertificationMissing,
} from './errors.js';
import { deriveKid } from './kid.js';
import {
  H, boxKeypair, checkBoxPk, checkSignPk, concatBytes, equal, seal, sealOpen, sign,
  signKeypair, verify,
} from './primitives.js';

export const KINDS = Object.freeze(['citizen', 'caseworker', 'connector', 'admin', 'team']);
/** Identity certificates of these kinds must carry the org root's signature. */
export const ORG_CERTIFIED_KINDS = Object.freeze(['caseworker', 'connector', 'admin']);
export const ALGS = Object.freeze({ sign: 'ed25519', encrypt: 'x25519-sealbox' });
/** An encryption certificate is valid for at most two years (same constant as Python). */
// two calendar years are at most 731 days (clients create them for at most 730)
export const MAX_ENCRYPT_VALIDITY_MS = 731 * 24 * 3600 * 1000;
export const FINGERPRINT_BYTES = 20;
export const MAX_NAME_BYTES = 200;

// --- shapes ------------------------------------------------------------------------------
const V1 = shapes.constant(1);
const SIG = shapes.b64(SIGNATURE_BYTES);
const PK = shapes.b64(KEY_BYTES);

export const CERT_SHAPE = shapes.obj({
  v: V1,
  subject: shapes.ID,
  kind: shapes.oneOf(...KINDS),
  org: shapes.nullable(shapes.ID),
  use: shapes.oneOf('sign', 'encrypt'),
  alg: shapes.oneOf(...Object.values(ALGS)),
  kid: shapes.KID,
  pk: PK,
  created: shapes.TIME,
  expires: shapes.nullable(shapes.TIME),
});
export const SIGNED_CERT_SHAPE = shapes.obj({
  cert: CERT_SHAPE,
  sig: SIG,
  by: shapes.KID,
  org_sig: shapes.nullable(SIG),
  prev: shapes.nullable(shapes.KID),
  prev_sig: shapes.nullable(SIG),
});
export const ORG_ROOT_SHAPE = shapes.obj({
  v: V1,
  org: shapes.ID,
  name: shapes.string(MAX_NAME_BYTES),
  pk: PK,
  created: shapes.TIME,
});
export const SIGNED_ORG_ROOT_SHAPE = shapes.obj({ org_root: ORG_ROOT_SHAPE, sig: SIG });
export const REVOCATION_SHAPE = shapes.obj({
  v: V1,
  subject: shapes.ID,
  kid: shapes.KID,
  at: shapes.TIME,
  reason: shapes.oneOf('superseded', 'compromised', 'left'),
});
export const SIGNED_REVOCATION_SHAPE = shapes.obj({
  revoke: REVOCATION_SHAPE, sig: SIG, by: shapes.KID,
});
export const TEAM_WRAP_SHAPE = shapes.obj({
  v: V1,
  team: shapes.ID,
  team_kid: shapes.KID,
  member: shapes.ID,
  member_kid: shapes.KID,
  by: shapes.ID,
  sealed: shapes.b64(SEALED_KEY_BYTES),
});
export const SIGNED_TEAM_WRAP_SHAPE = shapes.obj({
  team_wrap: TEAM_WRAP_SHAPE, sig: SIG, by_kid: shapes.KID,
});
export const MEMBERSHIP_SHAPE = shapes.obj({
  v: V1, team: shapes.ID, member: shapes.ID, at: shapes.TIME,
});
export const SIGNED_MEMBERSHIP_SHAPE = shapes.obj({
  membership: MEMBERSHIP_SHAPE, sig: SIG, by: shapes.KID,
});
export const SERVER_KEY_SHAPE = shapes.obj({
  v: V1, log_pk: PK, receipt_pk: PK, created: shapes.TIME,
});
export const SIGNED_SERVER_KEY_SHAPE = shapes.obj({
  server_key: SERVER_KEY_SHAPE,
  org: shapes.nullable(shapes.ID),
  sig: shapes.nullable(SIG),
});
export const DOCUMENT_SHAPE = shapes.obj({
  name: shapes.string(100), required: shapes.enumBool(), max_size: shapes.COUNT,
});
export const PROCEDURE_SHAPE = shapes.obj({
  v: V1,
  org: shapes.ID,
  id: shapes.ID,
  version: shapes.integer(1),
  schema: shapes.freeObject,
  labels: shapes.freeObject,
  documents: shapes.array(DOCUMENT_SHAPE, 50),
});
export const SIGNED_PROCEDURE_SHAPE = shapes.obj({
  procedure: PROCEDURE_SHAPE, sig: SIG, by: shapes.KID,
});

function signedBytes(label, obj) {
  return concatBytes(label, cj(obj));
}

function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// --- key certificates -----------------------------------------------------------------------
/** Build (and check) a certificate body; the kid is derived, never chosen. */
export function makeCert({
  subject, kind, org, use, pk, created, expires = null,
}) {
  if (!Object.hasOwn(ALGS, use)) throw new MalformedObject('cert.use: expected sign or encrypt');
  const cert = {
    v: 1,
    subject,
    kind,
    org,
    use,
    alg: ALGS[use],
    kid: deriveKid(use, pk),
    pk: b64e(pk),
    created,
    expires,
  };
  checkCert(cert);
  return cert;
}

/** Validate a certificate body against every rule of PROTOCOL.md §3. */
export function checkCert(cert) {
  shapes.check(CERT_SHAPE, cert, 'cert');
  const pk = b64d(cert.pk, KEY_BYTES);
  if (cert.alg !== ALGS[cert.use]) throw new CertificateInvalid('alg does not match use');
  if (deriveKid(cert.use, pk) !== cert.kid) throw new KeyIdMismatch('kid is not derived from pk');
  if (cert.kind === 'team' && cert.use !== 'encrypt') {
    throw new CertificateInvalid('teams have no signing key');
  }
  if (cert.kind !== 'citizen' && cert.org === null) {
    throw new CertificateInvalid(`a ${cert.kind} certificate needs an org`);
  }
  if (cert.use === 'encrypt') {
    if (cert.expires === null) throw new CertificateInvalid('encryption certificates must expire');
    if (!(cert.created < cert.expires && cert.expires <= cert.created + MAX_ENCRYPT_VALIDITY_MS)) {
      throw new CertificateInvalid('encryption certificates are valid for at most 2 years');
    }
    checkBoxPk(pk);
  } else {
    if (cert.expires !== null && cert.expires <= cert.created) {
      throw new CertificateInvalid('expires before it is created');
    }
    checkSignPk(pk);
  }
  return cert;
}

export function certPk(cert) {
  return b64d(cert.pk, KEY_BYTES);
}

/** Sign a certificate body with an identity key (self, the subject's, or an org admin's). */
export function signCert(cert, signerSeed) {
  checkCert(cert);
  const { pk: signerPk } = signKeypair(signerSeed);
  return {
    cert,
    sig: b64e(sign(signerSeed, signedBytes(domain.KEYCERT, cert))),
    by: deriveKid('sign', signerPk),
    org_sig: null,
    prev: null,
    prev_sig: null,
  };
}

/** Add the org root's signature (postbox/v1/orgcert) to a staff identity certificate. */
export function orgCertify(signed, rootSeed) {
  const sig = sign(rootSeed, signedBytes(domain.ORGCERT, signed.cert));
  return { ...signed, org_sig: b64e(sig) };
}

/** Link a new identity certificate to the one it replaces (postbox/v1/rotate). */
export function linkRotation(signed, oldSeed) {
  const { pk: oldPk } = signKeypair(oldSeed);
  const sig = sign(oldSeed, signedBytes(domain.ROTATE, signed.cert));
  return { ...signed, prev: deriveKid('sign', oldPk), prev_sig: b64e(sig) };
}

function checkSignedCert(signed) {
  shapes.check(SIGNED_CERT_SHAPE, signed, 'signed certificate');
  checkCert(signed.cert);
  return signed;
}

function verifyOrgSig(s, orgRoot) {
  const { cert } = s;
  if (s.org_sig === null) {
    if (ORG_CERTIFIED_KINDS.includes(cert.kind)) {
      throw new OrgCertificationMissing(`a ${cert.kind} identity must be org-certified`);
    }
    return;
  }
  if (orgRoot === null || orgRoot === undefined) {
    throw new OrgCertificationMissing('no pinned org root to check the org signature with');
  }
  if (cert.org !== orgRoot.org) {
    throw new OrgCertificationMissing("org signature from another organisation's root");
  }
  verify(
    b64d(orgRoot.pk, KEY_BYTES),
    signedBytes(domain.ORGCERT, cert),
    b64d(s.org_sig, SIGNATURE_BYTES),
  );
}

/**
 * Verify a self-signed identity certificate (and its org certification when required).
 * `orgRoot` is the verified, pinned org root of cert.org; it is required for caseworkers,
 * connectors and admins, and used for any certificate carrying org_sig.
 */
export function verifyIdentityCert(signed, orgRoot = null) {
  const s = checkSignedCert(signed);
  const { cert } = s;
  if (cert.use !== 'sign') throw new CertificateInvalid('not an identity certificate');
  if (s.by !== cert.kid) throw new CertificateInvalid('an identity certificate must be self-signed');
  if ((s.prev === null) !== (s.prev_sig === null)) {
    throw new CertificateInvalid('prev and prev_sig go together');
  }
  verify(certPk(cert), signedBytes(domain.KEYCERT, cert), b64d(s.sig, SIGNATURE_BYTES));
  verifyOrgSig(s, orgRoot);
  return cert;
}

/** Check that a new identity certificate is linked to `oldIdentity` by its old key. */
export function verifyRotation(signed, oldIdentity) {
  const s = checkSignedCert(signed);
  if (s.cert.use !== 'sign') throw new CertificateInvalid('only identity certificates are linked by rotation');
  if (s.prev === null || s.prev_sig === null) {
    throw new CertificateInvalid('identity is not linked to a previous one');
  }
  if (s.prev !== oldIdentity.kid || oldIdentity.use !== 'sign') {
    throw new CertificateInvalid('linked to another identity');
  }
  if (s.cert.subject !== oldIdentity.subject) throw new CertificateInvalid('rotation across subjects');
  verify(
    certPk(oldIdentity),
    signedBytes(domain.ROTATE, s.cert),
    b64d(s.prev_sig, SIGNATURE_BYTES),
  );
}

/** Verify an account's encryption certificate against its verified identity certificate. */
export function verifyEncryptionCert(signed, identity) {
  const s = checkSignedCert(signed);
  const { cert } = s;
  if (cert.use !== 'encrypt' || cert.kind === 'team') {
    throw new CertificateInvalid('not an account encryption certificate');
  }
  if (s.org_sig !== null || s.prev !== null || s.prev_sig !== null) {
    throw new CertificateInvalid('encryption certificates carry only the identity signature');
  }
  if (identity.use !== 'sign' || s.by !== identity.kid) {
    throw new CertificateInvalid("not signed by the subject's identity key");
  }
  if (identity.subject !== cert.subject || identity.kind !== cert.kind || identity.org !== cert.org) {
    throw new CertificateInvalid('identity and encryption certificates disagree');
  }
  verify(certPk(identity), signedBytes(domain.KEYCERT, cert), b64d(s.sig, SIGNATURE_BYTES));
  return cert;
}

/** Verify a team encryption certificate against a verified org admin identity. */
export function verifyTeamCert(signed, adminIdentity) {
  const s = checkSignedCert(signed);
  const { cert } = s;
  if (cert.kind !== 'team' || cert.use !== 'encrypt') {
    throw new CertificateInvalid('not a team encryption certificate');
  }
  if (s.org_sig !== null || s.prev !== null || s.prev_sig !== null) {
    throw new CertificateInvalid('team certificates carry only the admin signature');
  }
  if (adminIdentity.kind !== 'admin' || adminIdentity.use !== 'sign') {
    throw new CertificateInvalid('team keys are certified by an org admin key');
  }
  if (adminIdentity.org !== cert.org || s.by !== adminIdentity.kid) {
    throw new CertificateInvalid("certified by another organisation's admin");
  }
  verify(certPk(adminIdentity), signedBytes(domain.KEYCERT, cert), b64d(s.sig, SIGNATURE_BYTES));
  return cert;
}

/** Throw unless `cert` was valid at time `at` (created, not expired, not revoked). */
export function checkValidAt(cert, at, revocations = []) {
  if (at < cert.created) throw new CertificateExpired('used before the certificate was created');
  if (cert.expires !== null && at >= cert.expires) throw new CertificateExpired('certificate expired');
  for (const r of revocations) {
    if (r.subject === cert.subject && r.kid === cert.kid && r.at <= at) {
      throw new CertificateRevoked(`revoked (${r.reason})`);
    }
  }
}

// --- org root ----------------------------------------------------------------------------
export function makeOrgRoot({
  org, name, rootSeed, created,
}) {
  const { pk } = signKeypair(rootSeed);
  const root = {
    v: 1, org, name, pk: b64e(pk), created,
  };
  shapes.check(ORG_ROOT_SHAPE, root, 'org_root');
  return { org_root: root, sig: b64e(sign(rootSeed, signedBytes(domain.ORGROOT, root))) };
}

export function verifyOrgRoot(signed) {
  shapes.check(SIGNED_ORG_ROOT_SHAPE, signed, 'signed org root');
  const root = signed.org_root;
  const pk = b64d(root.pk, KEY_BYTES);
  checkSignPk(pk);
  verify(pk, signedBytes(domain.ORGROOT, root), b64d(signed.sig, SIGNATURE_BYTES));
  return root;
}

/** Safety code of a public key: H(pk, 20) as 8 groups of 4 Crockford characters. */
export function fingerprint(pk) {
  return crockford.group(crockford.encode(H(pk, FINGERPRINT_BYTES)));
}

export function orgFingerprint(root) {
  return fingerprint(b64d(root.pk, KEY_BYTES));
}

// --- revocations -------------------------------------------------------------------------
export function makeRevocation({
  subject, kid, at, reason, signerSeed,
}) {
  const rev = {
    v: 1, subject, kid, at, reason,
  };
  shapes.check(REVOCATION_SHAPE, rev, 'revoke');
  const { pk: signerPk } = signKeypair(signerSeed);
  return {
    revoke: rev,
    sig: b64e(sign(signerSeed, signedBytes(domain.REVOKE, rev))),
    by: deriveKid('sign', signerPk),
  };
}

/** Verify a revocation signed by the subject's identity or by an admin of its org. */
export function verifyRevocation(signed, signer, subjectOrg) {
  shapes.check(SIGNED_REVOCATION_SHAPE, signed, 'signed revocation');
  const rev = signed.revoke;
  if (signer.use !== 'sign' || signed.by !== signer.kid) {
    throw new CertificateInvalid('revocation not signed by the given identity');
  }
  const isSubject = signer.subject === rev.subject;
  const isAdmin = signer.kind === 'admin' && signer.org !== null
    && signer.org === (subjectOrg ?? null);
  if (!(isSubject || isAdmin)) {
    throw new CertificateInvalid('only the subject or an admin of its org may revoke');
  }
  verify(certPk(signer), signedBytes(domain.REVOKE, rev), b64d(signed.sig, SIGNATURE_BYTES));
  return rev;
}

// --- team key wraps ------------------------------------------------------------------------
/** Wrap a team's secret key to one member's encryption key, signed by a current member. */
export function makeTeamWrap({
  teamCert, teamSk, member, memberEnc, by, bySeed,
}) {
  if (teamCert.kind !== 'team' || teamCert.use !== 'encrypt') {
    throw new CertificateInvalid('not a team encryption certificate');
  }
  const { pk: teamPk } = boxKeypair(teamSk);
  if (!equal(teamPk, certPk(teamCert))) {
    throw new KeySubstitution('team secret key does not match the team certificate');
  }
  if (memberEnc.subject !== member || memberEnc.use !== 'encrypt') {
    throw new CertificateInvalid('member certificate does not belong to the member');
  }
  const wrap = {
    v: 1,
    team: teamCert.subject,
    team_kid: teamCert.kid,
    member,
    member_kid: memberEnc.kid,
    by,
    sealed: b64e(seal(teamSk, certPk(memberEnc))),
  };
  shapes.check(TEAM_WRAP_SHAPE, wrap, 'team_wrap');
  const { pk: byPk } = signKeypair(bySeed);
  return {
    team_wrap: wrap,
    sig: b64e(sign(bySeed, signedBytes(domain.TEAMWRAP, wrap))),
    by_kid: deriveKid('sign', byPk),
  };
}

function isMember(currentMembers, id) {
  if (currentMembers instanceof Set) return currentMembers.has(id);
  return Array.from(currentMembers).includes(id);
}

/**
 * Verify a team wrap and return the team's secret key. Accepted only if `by` is a current
 * member, the signature verifies under that member's verified identity, the wrap is for
 * this member's key, and the unwrapped key's public half equals the certified team key
 * (else a key-substitution alarm). `currentMembers` is an array or a Set of account ids.
 */
export function openTeamWrap(signed, {
  teamCert, memberPk, memberSk, byIdentity, currentMembers,
}) {
  shapes.check(SIGNED_TEAM_WRAP_SHAPE, signed, 'signed team wrap');
  const wrap = signed.team_wrap;
  if (!isMember(currentMembers, wrap.by)) {
    throw new CertificateInvalid('team wrap made by someone who is not a current member');
  }
  if (byIdentity.subject !== wrap.by || byIdentity.use !== 'sign') {
    throw new CertificateInvalid("team wrap signer certificate is not the wrapper's identity");
  }
  if (signed.by_kid !== byIdentity.kid) throw new CertificateInvalid('team wrap signed by another key');
  verify(certPk(byIdentity), signedBytes(domain.TEAMWRAP, wrap), b64d(signed.sig, SIGNATURE_BYTES));
  if (wrap.team !== teamCert.subject || wrap.team_kid !== teamCert.kid) {
    throw new KeySubstitution('team wrap is for another team key');
  }
  if (wrap.member_kid !== deriveKid('encrypt', memberPk)) {
    throw new KeySubstitution('team wrap is sealed to another member key');
  }
  const teamSk = sealOpen(b64d(wrap.sealed, SEALED_KEY_BYTES), memberPk, memberSk);
  if (teamSk.length !== KEY_BYTES) throw new MalformedObject('team wrap does not hold a 32-byte key');
  const { pk: teamPk } = boxKeypair(teamSk);
  if (!equal(teamPk, certPk(teamCert))) {
    throw new KeySubstitution('unwrapped team key is not the certified team key');
  }
  return teamSk;
}

// --- memberships (member_add / member_remove bodies) ----------------------------------------
export function signMembership({
  team, member, at, adminSeed,
}) {
  const m = {
    v: 1, team, member, at,
  };
  shapes.check(MEMBERSHIP_SHAPE, m, 'membership');
  const { pk } = signKeypair(adminSeed);
  return {
    membership: m,
    sig: b64e(sign(adminSeed, signedBytes(domain.MEMBER, m))),
    by: deriveKid('sign', pk),
  };
}

export function verifyMembership(signed, adminIdentity, teamOrg) {
  shapes.check(SIGNED_MEMBERSHIP_SHAPE, signed, 'signed membership');
  if (adminIdentity.kind !== 'admin' || adminIdentity.use !== 'sign' || adminIdentity.org !== teamOrg) {
    throw new CertificateInvalid("memberships are signed by an admin of the team's org");
  }
  if (signed.by !== adminIdentity.kid) throw new CertificateInvalid('membership signed by another key');
  verify(
    certPk(adminIdentity),
    signedBytes(domain.MEMBER, signed.membership),
    b64d(signed.sig, SIGNATURE_BYTES),
  );
  return signed.membership;
}

// --- server key endorsement ----------------------------------------------------------------
export function makeServerKey({ logPk, receiptPk, created }) {
  const sk = {
    v: 1, log_pk: b64e(logPk), receipt_pk: b64e(receiptPk), created,
  };
  shapes.check(SERVER_KEY_SHAPE, sk, 'server_key');
  checkSignPk(logPk);
  checkSignPk(receiptPk);
  return sk;
}

/** An org root's signature over the server's log and receipt keys (serverkey). */
export function endorseServerKey(serverKey, { org, rootSeed }) {
  shapes.check(SERVER_KEY_SHAPE, serverKey, 'server_key');
  const sig = sign(rootSeed, signedBytes(domain.SERVERKEY, serverKey));
  return { server_key: serverKey, org, sig: b64e(sig) };
}

/**
 * Check an endorsement; with `orgRoot`, require that root's valid signature. Leaf 0 of the
 * log carries the server key with org and sig null: its trust comes from the clients'
 * pinned configuration, later endorsements by each org root.
 */
export function verifyServerKey(signed, orgRoot = null) {
  shapes.check(SIGNED_SERVER_KEY_SHAPE, signed, 'signed server key');
  const key = signed.server_key;
  checkSignPk(b64d(key.log_pk, KEY_BYTES));
  checkSignPk(b64d(key.receipt_pk, KEY_BYTES));
  if ((signed.org === null) !== (signed.sig === null)) {
    throw new CertificateInvalid('org and sig go together');
  }
  if (orgRoot !== null && orgRoot !== undefined) {
    if (signed.org !== orgRoot.org || signed.sig === null) {
      throw new OrgCertificationMissing('server key not endorsed by this organisation');
    }
    verify(
      b64d(orgRoot.pk, KEY_BYTES),
      signedBytes(domain.SERVERKEY, key),
      b64d(signed.sig, SIGNATURE_BYTES),
    );
  }
  return key;
}

// --- procedures --------------------------------------------------------------------------
const NUMERIC_TYPES = new Set(['number', 'integer']);
// schema keywords whose values are (or list) instance values, which may not be numbers
const VALUE_KEYWORDS = ['const', 'default', 'enum', 'examples'];

// Form data carries no JSON numbers (numbers are strings), so schemas may not ask for any.
// True if `value` is, or contains at any depth, a JSON number.
function hasNumber(value) {
  if (typeof value === 'number') return true;
  if (Array.isArray(value)) return value.some(hasNumber);
  if (isPlainObject(value)) return Object.values(value).some(hasNumber);
  return false;
}

function checkSchemaTypes(node, path) {
  if (isPlainObject(node)) {
    const t = Object.hasOwn(node, 'type') ? node.type : null;
    const types = Array.isArray(t) ? t : [t];
    if (types.some((x) => typeof x === 'string' && NUMERIC_TYPES.has(x))) {
      throw new MalformedObject(`${path}: schemas use no JSON numbers (use strings)`);
    }
    for (const keyword of VALUE_KEYWORDS) {
      if (!Object.hasOwn(node, keyword)) continue;
      if (hasNumber(node[keyword])) {
        throw new MalformedObject(`${path}.${keyword}: schemas use no JSON numbers`);
      }
    }
    for (const [k, v] of Object.entries(node)) checkSchemaTypes(v, `${path}.${k}`);
  } else if (Array.isArray(node)) {
    node.forEach((v, i) => checkSchemaTypes(v, `${path}[${i}]`));
  }
}

export function checkProcedure(procedure) {
  shapes.check(PROCEDURE_SHAPE, procedure, 'procedure');
  cj(procedure); // free-form members must be canonical JSON (this also bounds the depth to 32)
  checkSchemaTypes(procedure.schema, 'procedure.schema');
  return procedure;
}

export function signProcedure(procedure, adminSeed) {
  checkProcedure(procedure);
  const { pk } = signKeypair(adminSeed);
  return {
    procedure,
    sig: b64e(sign(adminSeed, signedBytes(domain.PROCEDURE, procedure))),
    by: deriveKid('sign', pk),
  };
}

/** Verify a procedure definition before rendering it: an admin of its org signed it. */
export function verifyProcedure(signed, adminIdentity) {
  shapes.check(SIGNED_PROCEDURE_SHAPE, signed, 'signed procedure');
  const p = checkProcedure(signed.procedure);
  if (adminIdentity.kind !== 'admin' || adminIdentity.use !== 'sign' || adminIdentity.org !== p.org) {
    throw new CertificateInvalid('procedures are signed by an admin of their org');
  }
  if (signed.by !== adminIdentity.kid) throw new CertificateInvalid('procedure signed by another key');
  verify(certPk(adminIdentity), signedBytes(domain.PROCEDURE, p), b64d(signed.sig, SIGNATURE_BYTES));
  return p;
}

/** H("postbox/v1/form" ‖ cj(procedure), 64): binds a submitted form to its definition. */
export function formDigest(procedure) {
  return H(concatBytes(domain.FORM, cj(procedure)), DIGEST_BYTES);
}
