// The message envelope (PROTOCOL.md §5), mirroring envelope.py: seal, structural checks,
// signature check, and open with every recipient check in the protocol's order.
import * as domain from './domain.js';
import * as S from './shapes.js';
import {
  b64d, b64e, cj, parseCanonical, u32,
  DIGEST_BYTES, KEY_BYTES, NONCE_BYTES, SEALED_KEY_BYTES, SIGNATURE_BYTES,
} from './encoding.js';
import {
  CertificateInvalid, IdentityChanged, InvalidKey, KeyCommitmentMismatch, KeySubstitution,
  MalformedEnvelope, MalformedObject, NotARecipient, CryptoError,
} from './errors.js';
import { deriveKid } from './kid.js';
import { MAX_CONTENT, MAX_FILE, pad, paddedLength, unpad } from './padding.js';
import {
  H, aeadDecrypt, aeadEncrypt, boxKeypair, concatBytes, equal, randomBytes, seal, sealOpen,
  sign, signKeypair, verify,
} from './primitives.js';
import { certPk, checkValidAt, verifyRotation } from './certs.js';
import { MAX_FILE_NAME_BYTES, blobLength, checkFileName } from './attachment.js';

export const KINDS = Object.freeze(['message', 'application', 'info_request', 'decision', 'withdrawal', 'fitconnect']);
export const MAX_RECIPIENTS = 100;
export const MAX_ATTACHMENTS = 100;
export const MAX_SUBJECT_BYTES = 1000;
export const MAX_TYPE_BYTES = 255;
export const AEAD_TAG_BYTES = 16;
export const MAX_CT_BYTES = paddedLength(MAX_CONTENT) + AEAD_TAG_BYTES;

const BLOB_SHAPE = S.obj({ id: S.ID, size: S.integer(1, 2 ** 32), hash: S.b64(KEY_BYTES) });
export const HEADER_SHAPE = S.obj({
  v: S.constant(1),
  id: S.ID,
  kind: S.oneOf(...KINDS),
  from: S.ID,
  signer: S.ID,
  sender_kid: S.KID,
  to: S.array(S.ID, MAX_RECIPIENTS),
  rcpt: S.array(S.obj({ mailbox: S.ID, kid: S.KID }), MAX_RECIPIENTS + 1),
  thread: S.nullable(S.ID),
  case: S.nullable(S.ID),
  created: S.TIME,
  blobs: S.array(BLOB_SHAPE, MAX_ATTACHMENTS),
  commit: S.b64(KEY_BYTES),
});
export const WIRE_SHAPE = S.obj({
  header: HEADER_SHAPE,
  nonce: S.b64(NONCE_BYTES),
  ct: S.b64(null),
  keys: S.array(S.obj({ mailbox: S.ID, kid: S.KID, sealed: S.b64(SEALED_KEY_BYTES) }), MAX_RECIPIENTS + 1),
  signature: S.b64(SIGNATURE_BYTES),
});
const FORM_SHAPE = S.obj({
  procedure: S.ID, version: S.integer(1), digest: S.b64(DIGEST_BYTES), data: S.freeObject,
});
const ATTACHMENT_SHAPE = S.obj({
  blob: S.ID,
  name: S.string(MAX_FILE_NAME_BYTES),
  type: S.string(MAX_TYPE_BYTES),
  size: S.integer(0, MAX_FILE),
  key: S.b64(KEY_BYTES),
});
export const CONTENT_SHAPE = S.obj({
  subject: S.string(MAX_SUBJECT_BYTES),
  body: S.string(),
  format: S.constant('text'),
  form: S.nullable(FORM_SHAPE),
  attachments: S.array(ATTACHMENT_SHAPE, MAX_ATTACHMENTS),
  in_reply_to: S.nullable(S.ID),
  // a verified tree head always has at least leaf 0, the server key
  sth: S.obj({ size: S.integer(1), root: S.b64(KEY_BYTES) }),
});

function rejectNumbers(node, path) {
  if (node === null || typeof node === 'boolean' || typeof node === 'string') return;
  if (typeof node === 'number') throw new MalformedObject(`${path}: form numbers are strings`);
  if (Array.isArray(node)) node.forEach((v, i) => rejectNumbers(v, `${path}[${i}]`));
  else for (const [k, v] of Object.entries(node)) rejectNumbers(v, `${path}.${k}`);
}

const ASCII = /^[\x00-\x7f]*$/;

/** Validate decrypted (or to-be-sealed) content. */
export function checkContent(content) {
  S.check(CONTENT_SHAPE, content, 'content');
  if (content.form !== null) rejectNumbers(content.form.data, 'content.form.data');
  content.attachments.forEach((a, i) => {
    try {
      checkFileName(a.name);
    } catch (e) {
      throw new MalformedObject(`content.attachments[${i}].name: ${e.message}`);
    }
    if (!ASCII.test(a.type)) throw new MalformedObject(`content.attachments[${i}].type: must be ASCII`);
  });
  return content;
}

function asciiCompare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0; // b64 strings are ASCII: UTF-16 order is ASCII order
}

// The manifest follows header.blobs in order, and each blob has the length that the file's
// stated size gives (PROTOCOL.md §6): a wrong length is caught before the blob is fetched.
function checkAttachmentsMatchBlobs(content, blobs) {
  const attIds = content.attachments.map((a) => a.blob);
  if (attIds.length !== blobs.length || attIds.some((id, i) => id !== blobs[i].id)) {
    throw new MalformedEnvelope('attachments must follow header.blobs in order');
  }
  content.attachments.forEach((a, i) => {
    if (blobs[i].size !== blobLength(a.size)) {
      throw new MalformedEnvelope("a blob's size does not match its file's size");
    }
  });
}

function checkHeaderRules(h) {
  if (h.to.length === 0) throw new MalformedEnvelope('no recipients');
  if (new Set(h.to).size !== h.to.length) throw new MalformedEnvelope('a mailbox appears twice in to');
  const expected = [...new Set([...h.to, h.from])].sort(asciiCompare);
  const got = h.rcpt.map((r) => r.mailbox);
  if (got.length !== expected.length || got.some((m, i) => m !== expected[i])) {
    throw new MalformedEnvelope('rcpt must list to + from once each, sorted');
  }
  const ids = h.blobs.map((b) => b.id);
  if (new Set(ids).size !== ids.length) throw new MalformedEnvelope('a blob appears twice');
  if ((h.kind === 'decision' || h.kind === 'withdrawal') && h.case === null) {
    throw new MalformedEnvelope(`a ${h.kind} belongs to a case`);
  }
}

/** Structural checks every party runs: closed shapes, rcpt/keys consistency, sizes. */
export function checkWire(wire) {
  try {
    S.check(WIRE_SHAPE, wire, 'envelope');
  } catch (e) {
    if (e instanceof MalformedObject) throw new MalformedEnvelope(e.message);
    throw e;
  }
  checkHeaderRules(wire.header);
  const rcpt = wire.header.rcpt;
  if (wire.keys.length !== rcpt.length
      || wire.keys.some((k, i) => k.mailbox !== rcpt[i].mailbox || k.kid !== rcpt[i].kid)) {
    throw new MalformedEnvelope('keys must match rcpt in order and values');
  }
  const ct = b64d(wire.ct);
  if (ct.length < 256 + AEAD_TAG_BYTES || ct.length > MAX_CT_BYTES) {
    throw new MalformedEnvelope('ciphertext length impossible for padded content');
  }
  return wire;
}

export function parseWire(bytes) {
  return checkWire(parseCanonical(bytes));
}

export function messageDigest(header, nonce, ct) {
  const h = cj(header);
  return H(concatBytes(domain.MESSAGE, u32(h.length), h, nonce, ct), DIGEST_BYTES);
}

export function wireDigest(wire) {
  return messageDigest(wire.header, b64d(wire.nonce, NONCE_BYTES), b64d(wire.ct));
}

export function keyCommitment(mk) {
  return H(domain.COMMIT, KEY_BYTES, mk);
}

/**
 * Seal `content` to every mailbox of `to` and to `from`.
 * `recipients` maps (object or Map) every mailbox of to + from to its current verified
 * encryption certificate; `blobs` are header entries {id,size,hash} in attachment order.
 */
export function sealMessage({
  content, messageId, kind, from, signer, signerSeed, to, recipients,
  thread = null, caseId = null, created, blobs = [], mk = null, nonce = null,
}) {
  checkContent(content);
  checkAttachmentsMatchBlobs(content, blobs);
  const key = mk ?? randomBytes(KEY_BYTES);
  const iv = nonce ?? randomBytes(NONCE_BYTES);
  if (key.length !== KEY_BYTES || iv.length !== NONCE_BYTES) throw new InvalidKey('mk or nonce has the wrong size');
  const lookup = recipients instanceof Map ? (m) => recipients.get(m) : (m) => recipients[m];
  const { pk: signerPk } = signKeypair(signerSeed);
  const mailboxes = [...new Set([...to, from])].sort(asciiCompare);
  const rcpt = [];
  const keys = [];
  for (const mailbox of mailboxes) {
    const cert = lookup(mailbox);
    if (!cert) throw new MalformedEnvelope('no encryption certificate for a recipient');
    if (cert.subject !== mailbox || cert.use !== 'encrypt') {
      throw new CertificateInvalid("certificate is not the mailbox's encryption key");
    }
    rcpt.push({ mailbox, kid: cert.kid });
    keys.push({ mailbox, kid: cert.kid, sealed: b64e(seal(key, certPk(cert))) });
  }
  const header = {
    v: 1,
    id: messageId,
    kind,
    from,
    signer,
    sender_kid: deriveKid('sign', signerPk),
    to: [...to],
    rcpt,
    thread,
    case: caseId,
    created,
    blobs: blobs.map((b) => ({ id: b.id, size: b.size, hash: b.hash })),
    commit: b64e(keyCommitment(key)),
  };
  try {
    S.check(HEADER_SHAPE, header, 'header');
  } catch (e) {
    if (e instanceof MalformedObject) throw new MalformedEnvelope(e.message);
    throw e;
  }
  checkHeaderRules(header);
  const ct = aeadEncrypt(key, iv, pad(cj(content)), cj(header));
  const digest = messageDigest(header, iv, ct);
  const wire = {
    header,
    nonce: b64e(iv),
    ct: b64e(ct),
    keys,
    signature: b64e(sign(signerSeed, digest)),
  };
  return { wire, body: cj(wire), digest };
}

/** Verify the envelope signature under the signer's identity certificate; return the digest. */
export function verifySignature(wire, signerIdentity) {
  const h = wire.header;
  if (signerIdentity.use !== 'sign' || signerIdentity.subject !== h.signer
      || signerIdentity.kid !== h.sender_kid) {
    throw new CertificateInvalid("sender_kid is not the signer's identity key");
  }
  const digest = wireDigest(wire);
  verify(certPk(signerIdentity), digest, b64d(wire.signature, SIGNATURE_BYTES));
  return digest;
}

function lookupKey(keys, kid) {
  if (keys instanceof Map) return keys.get(kid);
  return Object.hasOwn(keys, kid) ? keys[kid] : undefined;
}

function sameCert(a, b) {
  const x = cj(a);
  const y = cj(b);
  return x.length === y.length && equal(x, y);
}

/**
 * Open a message for `mailbox`, running every recipient check of §5 in order; resolves to
 * {header, content, digest, sender, fromTeam, attachments} only if all of them pass.
 * `keys`: Map (or object) kid → {pk, sk} of the certified encryption keys this mailbox holds.
 * `sender`: the signer's verified identity certificate; `senderSigned` its served form when
 * it differs from `pinned`; `senderTeamOrg`: the org owning `from` when it is a team.
 * `sthCheck(size, root)`: may be async; throws ForkDetected on a fork.
 */
export async function openMessage(wireIn, {
  mailbox, keys, sender, sthCheck, senderSigned = null, pinned = null, revocations = [],
  senderTeamOrg = null,
}) {
  if (typeof sthCheck !== 'function') throw new TypeError('sthCheck is required');
  const wire = wireIn instanceof Uint8Array ? parseWire(wireIn) : checkWire(wireIn);
  const h = wire.header;

  // 1. addressed to us
  if (!h.to.includes(mailbox) && mailbox !== h.from) {
    throw new NotARecipient('this mailbox is not a recipient of the message');
  }
  // 2. exactly one rcpt entry, the same kid in keys, a key we hold for this mailbox
  const entries = h.rcpt.filter((r) => r.mailbox === mailbox);
  const sealedEntries = wire.keys.filter((k) => k.mailbox === mailbox);
  if (entries.length !== 1 || sealedEntries.length !== 1) {
    throw new KeySubstitution('not exactly one rcpt entry for this mailbox');
  }
  const { kid } = entries[0];
  const held = lookupKey(keys, kid);
  if (sealedEntries[0].kid !== kid || !held) {
    throw new KeySubstitution('message sealed to a key this mailbox does not hold');
  }
  if (deriveKid('encrypt', held.pk) !== kid || !equal(boxKeypair(held.sk).pk, held.pk)) {
    throw new KeySubstitution('held key does not match its kid');
  }
  // 3. the sender certificate: subject = signer, verified by the caller, valid at created
  if (sender.use !== 'sign' || sender.subject !== h.signer) {
    throw new CertificateInvalid("sender certificate is not the signer's identity");
  }
  if (sender.kid !== h.sender_kid) throw new CertificateInvalid('sender_kid is not the given identity certificate');
  checkValidAt(sender, h.created, revocations);
  // 4. signer = from, unless from is a team owned by the signer's organisation
  const fromTeam = senderTeamOrg !== null;
  if (fromTeam) {
    if (sender.org === null || sender.org !== senderTeamOrg) {
      throw new CertificateInvalid("signer does not belong to the team's organisation");
    }
    if (sender.kind !== 'caseworker' && sender.kind !== 'connector') {
      throw new CertificateInvalid('only caseworkers and connectors write for a team');
    }
  } else if (h.signer !== h.from) {
    throw new CertificateInvalid('signer differs from the sending mailbox');
  }
  if (h.kind === 'decision' && (!fromTeam || sender.kind !== 'caseworker')) {
    throw new CertificateInvalid('a decision is signed by a caseworker writing for a team');
  }
  if (h.kind === 'withdrawal' && (fromTeam || sender.kind !== 'citizen')) {
    throw new CertificateInvalid("a withdrawal is signed by the case's citizen");
  }
  // 5. a change of the pinned identity must be linked to it
  if (pinned !== null && pinned.kid !== sender.kid) {
    if (pinned.subject !== sender.subject) throw new IdentityChanged('pinned identity belongs to another account');
    if (senderSigned === null || !sameCert(senderSigned.cert, sender)) {
      throw new IdentityChanged('signer identity changed and no link was given');
    }
    try {
      verifyRotation(senderSigned, pinned);
    } catch (e) {
      if (e instanceof CryptoError) throw new IdentityChanged('signer identity changed without a valid link');
      throw e;
    }
  }
  // 6. the signature
  const digest = verifySignature(wire, sender);
  // 7. the key commitment over the unsealed mk
  const mk = sealOpen(b64d(sealedEntries[0].sealed, SEALED_KEY_BYTES), held.pk, held.sk);
  if (mk.length !== KEY_BYTES || !equal(keyCommitment(mk), b64d(h.commit, KEY_BYTES))) {
    throw new KeyCommitmentMismatch('message key does not match the commitment');
  }
  // 8. AEAD
  const padded = aeadDecrypt(mk, b64d(wire.nonce, NONCE_BYTES), b64d(wire.ct), cj(h));
  // 9. padding and canonical content
  const content = checkContent(parseCanonical(unpad(padded)));
  checkAttachmentsMatchBlobs(content, h.blobs);
  // 10. the sender's tree head against our own view (fork alarm)
  await sthCheck(content.sth.size, b64d(content.sth.root, KEY_BYTES));
  const attachments = content.attachments.map((a, i) => ({
    blob: a.blob,
    name: a.name,
    type: a.type,
    size: a.size,
    key: b64d(a.key, KEY_BYTES),
    blobSize: h.blobs[i].size,
    blobHash: b64d(h.blobs[i].hash, KEY_BYTES),
  }));
  return { header: h, content, digest, sender, fromTeam, attachments };
}
