// tests/vectors/keycert.json in JavaScript: rebuild every deterministic output byte for byte,
// verify every case, open every sealed team wrap, and reject every reject case with the
// named error (mirrors tests/crypto/test_keycert_vectors.py).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as certs from '../../postbox/webclient/static/js/crypto/certs.js';
import { b64d, b64e, cj, utf8 } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { ERROR_NAMES } from '../../postbox/webclient/static/js/crypto/errors.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import {
  H, boxKeypair, concatBytes, sealOpen, sign, signKeypair, sodium,
} from '../../postbox/webclient/static/js/crypto/primitives.js';

const V = JSON.parse(readFileSync(new URL('../vectors/keycert.json', import.meta.url), 'utf8'));
const SERVED = ['cert', 'sig', 'by', 'org_sig', 'prev', 'prev_sig'];
const label = (s) => utf8(s);

function served(c) {
  return Object.fromEntries(SERVED.map((k) => [k, c[k]]));
}

function throwsName(fn, name, msg) {
  assert.throws(fn, (e) => {
    assert.equal(e.name, name, `${msg}: got ${e.name}: ${e.message}`);
    return true;
  }, msg);
}

/** Every check a client runs on a served certificate of this kind (PROTOCOL §3). */
function verifyKeycert(c) {
  const signed = served(c);
  let orgRoot = null;
  if (c.org_root !== null) {
    orgRoot = certs.verifyOrgRoot(c.org_root);
    assert.equal(orgRoot.pk, c.org_pk);
  }
  if (c.check === 'identity') {
    const cert = certs.verifyIdentityCert(signed, orgRoot);
    if (c.prev_cert !== null) certs.verifyRotation(signed, c.prev_cert);
    return cert;
  }
  if (c.check === 'encryption') return certs.verifyEncryptionCert(signed, c.signer_cert);
  assert.equal(c.check, 'team');
  return certs.verifyTeamCert(signed, c.signer_cert);
}

test('file layout', () => {
  assert.deepEqual(Object.keys(V).sort(), ['cases', 'objects', 'objects_reject', 'reject']);
  for (const c of [...V.reject, ...V.objects_reject]) assert.ok(ERROR_NAMES.includes(c.error), c.error);
  assert.ok(V.cases.length >= 8 && V.reject.length >= 20 && V.objects.length >= 8);
});

for (const c of V.cases) {
  test(`keycert ${c.name}: verifies`, () => {
    assert.deepEqual(verifyKeycert(c), c.cert);
  });

  test(`keycert ${c.name}: rebuilds`, () => {
    const { cert } = c;
    const rebuilt = certs.makeCert({
      subject: cert.subject,
      kind: cert.kind,
      org: cert.org,
      use: cert.use,
      pk: b64d(cert.pk),
      created: cert.created,
      expires: cert.expires,
    });
    assert.deepEqual(rebuilt, cert);
    const signerSeed = b64d(c.signer_seed);
    assert.equal(b64e(signKeypair(signerSeed).pk), c.signer_pk);
    assert.equal(c.by, deriveKid('sign', b64d(c.signer_pk)));
    assert.equal(b64e(sign(signerSeed, concatBytes(label('postbox/v1/keycert'), cj(cert)))), c.sig);
    let signed = certs.signCert(rebuilt, signerSeed);
    if (c.org_sig !== null) {
      const orgSeed = b64d(c.org_seed);
      assert.equal(b64e(signKeypair(orgSeed).pk), c.org_pk);
      signed = certs.orgCertify(signed, orgSeed);
    }
    if (c.prev !== null) {
      const prevSeed = b64d(c.prev_seed);
      assert.equal(b64e(signKeypair(prevSeed).pk), c.prev_pk);
      assert.equal(c.prev, deriveKid('sign', b64d(c.prev_pk)));
      signed = certs.linkRotation(signed, prevSeed);
    }
    assert.deepEqual(signed, served(c));
  });
}

for (const c of V.reject) {
  test(`keycert reject ${c.name}: ${c.error}`, () => {
    throwsName(() => verifyKeycert(c), c.error, c.name);
  });
}

// --- other signed objects ------------------------------------------------------------------
function checkObject(o) {
  switch (o.type) {
    case 'org_root':
      return certs.verifyOrgRoot(o.org_root);
    case 'revocation':
      return certs.verifyRevocation(o.revoke, o.signer_cert, o.subject_org);
    case 'team_wrap':
      return certs.openTeamWrap(o.team_wrap, {
        teamCert: o.team_cert,
        memberPk: b64d(o.member_pk),
        memberSk: b64d(o.member_sk),
        byIdentity: o.by_cert,
        currentMembers: o.current_members,
      });
    case 'membership':
      return certs.verifyMembership(o.membership, o.admin_cert, o.team_org);
    case 'server_key':
      return certs.verifyServerKey(o.server_key, o.org_root);
    case 'procedure':
      return certs.verifyProcedure(o.procedure, o.admin_cert);
    default:
      throw new Error(`unknown type ${o.type}`);
  }
}

/** crypto_box_seal with the vector's fixed ephemeral key: nonce = H(epk ‖ pk, 24). */
function deterministicSeal(message, pk, ephSk) {
  const epk = boxKeypair(ephSk).pk;
  const nonce = H(concatBytes(epk, pk), 24);
  return concatBytes(epk, sodium.crypto_box_easy(message, nonce, pk, ephSk));
}

function rebuildObject(o) {
  switch (o.type) {
    case 'org_root': {
      const body = o.org_root.org_root;
      assert.deepEqual(certs.makeOrgRoot({
        org: body.org, name: body.name, rootSeed: b64d(o.org_seed), created: body.created,
      }), o.org_root);
      assert.equal(o.org_pk, body.pk);
      assert.equal(certs.orgFingerprint(body), o.fingerprint);
      assert.equal(certs.fingerprint(b64d(o.org_pk)), o.fingerprint);
      break;
    }
    case 'revocation': {
      const r = o.revoke.revoke;
      assert.deepEqual(certs.makeRevocation({
        subject: r.subject, kid: r.kid, at: r.at, reason: r.reason, signerSeed: b64d(o.signer_seed),
      }), o.revoke);
      break;
    }
    case 'team_wrap': {
      const wrap = o.team_wrap.team_wrap;
      const bySeed = b64d(o.by_seed);
      const made = certs.makeTeamWrap({
        teamCert: o.team_cert,
        teamSk: b64d(o.team_sk),
        member: o.member_cert.subject,
        memberEnc: o.member_cert,
        by: o.by_cert.subject,
        bySeed,
      });
      assert.deepEqual({ ...made.team_wrap, sealed: wrap.sealed }, wrap);
      assert.equal(made.by_kid, o.team_wrap.by_kid);
      assert.equal(b64e(sign(bySeed, concatBytes(label('postbox/v1/teamwrap'), cj(wrap)))), o.team_wrap.sig);
      const sealed = b64d(wrap.sealed);
      const memberPk = b64d(o.member_pk);
      assert.deepEqual(sealOpen(sealed, memberPk, b64d(o.member_sk)), b64d(o.team_sk));
      assert.deepEqual(deterministicSeal(b64d(o.team_sk), memberPk, b64d(o.eph_sk)), sealed);
      break;
    }
    case 'membership': {
      const m = o.membership.membership;
      assert.deepEqual(certs.signMembership({
        team: m.team, member: m.member, at: m.at, adminSeed: b64d(o.admin_seed),
      }), o.membership);
      break;
    }
    case 'server_key': {
      const k = o.server_key.server_key;
      const key = certs.makeServerKey({
        logPk: b64d(k.log_pk), receiptPk: b64d(k.receipt_pk), created: k.created,
      });
      assert.deepEqual(key, k);
      if (o.root_seed === null) {
        assert.deepEqual(o.server_key, { server_key: key, org: null, sig: null });
      } else {
        assert.deepEqual(certs.endorseServerKey(key, {
          org: o.server_key.org, rootSeed: b64d(o.root_seed),
        }), o.server_key);
      }
      break;
    }
    default: {
      const p = o.procedure.procedure;
      assert.deepEqual(certs.signProcedure(p, b64d(o.admin_seed)), o.procedure);
      assert.equal(b64e(certs.formDigest(p)), o.form_digest);
    }
  }
}

for (const o of V.objects) {
  test(`object ${o.name}: verifies and rebuilds`, () => {
    const result = checkObject(o);
    if (o.type === 'team_wrap') assert.deepEqual(result, b64d(o.team_sk));
    if (o.type === 'org_root') assert.deepEqual(result, o.org_root.org_root);
    rebuildObject(o);
  });
}

for (const o of V.objects_reject) {
  test(`object reject ${o.name}: ${o.error}`, () => {
    throwsName(() => checkObject(o), o.error, o.name);
  });
}
