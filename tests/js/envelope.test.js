// The envelope in JavaScript: round trips, recipient checks in order, tamper tests.
import test from 'node:test';
import assert from 'node:assert/strict';
import { b64d, b64e, cj, utf8 } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { sealMessage, openMessage } from '../../postbox/webclient/static/js/crypto/envelope.js';
import { makeCert, makeRevocation, linkRotation, signCert } from '../../postbox/webclient/static/js/crypto/certs.js';
import { H, boxKeypair, seal, signKeypair } from '../../postbox/webclient/static/js/crypto/primitives.js';

const NOW = 1767225600000;
const YEAR = 365 * 24 * 3600 * 1000;
const seed = (label, n = 32) => H(utf8(`js-test/${label}`), n);
const id = (label) => b64e(seed(`id/${label}`, 16));
const ORG = id('org');

function party(label, kind, org) {
  const pid = id(label);
  const signSeed = seed(`sign/${label}`);
  const { pk } = signKeypair(signSeed);
  const identity = kind === 'team' ? null
    : makeCert({ subject: pid, kind, org, use: 'sign', pk, created: NOW });
  const encSk = seed(`enc/${label}`);
  const encPk = boxKeypair(encSk).pk;
  const enc = makeCert({ subject: pid, kind, org, use: 'encrypt', pk: encPk, created: NOW, expires: NOW + YEAR });
  return { id: pid, signSeed, identity, enc, keys: new Map([[enc.kid, { pk: encPk, sk: encSk }]]) };
}

const citizen = party('citizen', 'citizen', null);
const caseworker = party('caseworker', 'caseworker', ORG);
const team = party('team', 'team', ORG);

function content(subject = 'Termin', body = 'Guten Tag', extra = {}) {
  return {
    subject, body, format: 'text', form: null, attachments: [], in_reply_to: null,
    sth: { size: 7, root: b64e(seed('root')) }, ...extra,
  };
}

function citizenToTeam(opts = {}) {
  return sealMessage({
    content: content(), messageId: id('m1'), kind: 'message', from: citizen.id, signer: citizen.id,
    signerSeed: citizen.signSeed, to: [team.id], recipients: { [citizen.id]: citizen.enc, [team.id]: team.enc },
    created: NOW, ...opts,
  });
}

function openAsTeam(wire, opts = {}) {
  return openMessage(wire, {
    mailbox: team.id, keys: team.keys, sender: citizen.identity, sthCheck: () => {}, ...opts,
  });
}

const isErr = (name) => (e) => {
  assert.equal(e.name, name, e.message);
  return true;
};

test('round trip, sent copy and team reply', async () => {
  const s = citizenToTeam();
  assert.deepEqual(s.body, cj(s.wire));
  const got = await openAsTeam(s.body);
  assert.equal(got.content.subject, 'Termin');
  assert.deepEqual(got.digest, s.digest);
  const own = await openAsTeam(s.body, { mailbox: citizen.id, keys: citizen.keys });
  assert.deepEqual(own.content, got.content);
  const reply = sealMessage({
    content: content('Bescheid', 'bewilligt'), messageId: id('m2'), kind: 'decision', from: team.id,
    signer: caseworker.id, signerSeed: caseworker.signSeed, to: [citizen.id],
    recipients: new Map([[citizen.id, citizen.enc], [team.id, team.enc]]), caseId: id('case'), created: NOW,
  });
  const r = await openMessage(reply.body, {
    mailbox: citizen.id, keys: citizen.keys, sender: caseworker.identity, senderTeamOrg: ORG, sthCheck: async () => {},
  });
  assert.equal(r.fromTeam, true);
  await assert.rejects(openMessage(reply.body, {
    mailbox: citizen.id, keys: citizen.keys, sender: caseworker.identity, senderTeamOrg: id('other-org'), sthCheck: () => {},
  }), isErr('CertificateInvalid'));
});

test('checks run in protocol order', async () => {
  const s = citizenToTeam();
  await assert.rejects(openAsTeam(s.body, { mailbox: id('stranger') }), isErr('NotARecipient'));
  const evilSk = seed('evil');
  const evil = makeCert({ subject: team.id, kind: 'team', org: ORG, use: 'encrypt', pk: boxKeypair(evilSk).pk, created: NOW, expires: NOW + 1000 });
  const subst = citizenToTeam({ recipients: { [citizen.id]: citizen.enc, [team.id]: evil } });
  await assert.rejects(openAsTeam(subst.body), isErr('KeySubstitution'));
  await assert.rejects(openAsTeam(s.body, { sender: caseworker.identity }), isErr('CertificateInvalid'));
  const rev = makeRevocation({ subject: citizen.id, kid: citizen.identity.kid, at: NOW - 1, reason: 'compromised', signerSeed: citizen.signSeed });
  await assert.rejects(openAsTeam(s.body, { revocations: [rev.revoke] }), isErr('CertificateRevoked'));
  await assert.rejects(openAsTeam(citizenToTeam({ created: NOW - 5 }).body), isErr('CertificateExpired'));
  await assert.rejects(openAsTeam(s.body, { sthCheck: () => { const e = new Error('fork'); e.name = 'ForkDetected'; throw e; } }), isErr('ForkDetected'));
});

test('identity change needs a rotation link', async () => {
  const s = citizenToTeam();
  const oldSeed = seed('old-identity');
  const pinned = makeCert({ subject: citizen.id, kind: 'citizen', org: null, use: 'sign', pk: signKeypair(oldSeed).pk, created: NOW - 10 });
  await assert.rejects(openAsTeam(s.body, { pinned }), isErr('IdentityChanged'));
  const signed = signCert(citizen.identity, citizen.signSeed);
  await assert.rejects(openAsTeam(s.body, { pinned, senderSigned: signed }), isErr('IdentityChanged'));
  const linked = linkRotation(signed, oldSeed);
  assert.ok(await openAsTeam(s.body, { pinned, senderSigned: linked }));
});

test('commitment mismatch is named', async () => {
  const s = citizenToTeam();
  const wire = structuredClone(s.wire);
  const k = wire.keys.find((x) => x.mailbox === team.id);
  k.sealed = b64e(seal(seed('other-mk'), boxKeypair(seed('enc/team')).pk));
  await assert.rejects(openAsTeam(wire), isErr('KeyCommitmentMismatch'));
});

test('flipping any byte of nonce, ct, signature or sealed key is refused', async () => {
  const s = citizenToTeam();
  for (const field of ['nonce', 'signature']) {
    const raw = b64d(s.wire[field]);
    for (let i = 0; i < raw.length; i += 1) {
      const bad = raw.slice();
      bad[i] ^= 1;
      await assert.rejects(openAsTeam({ ...s.wire, [field]: b64e(bad) }), isErr('BadSignature'));
    }
  }
  const ct = b64d(s.wire.ct);
  for (let i = 0; i < ct.length; i += 7) {
    const bad = ct.slice();
    bad[i] ^= 1;
    await assert.rejects(openAsTeam({ ...s.wire, ct: b64e(bad) }), isErr('BadSignature'));
  }
  const idx = s.wire.keys.findIndex((k) => k.mailbox === team.id);
  const sealed = b64d(s.wire.keys[idx].sealed);
  for (let i = 0; i < sealed.length; i += 1) {
    const bad = sealed.slice();
    bad[i] ^= 1;
    const wire = structuredClone(s.wire);
    wire.keys[idx].sealed = b64e(bad);
    await assert.rejects(openAsTeam(wire), isErr('DecryptionFailed'));
  }
});

test('structural rejections', async () => {
  const s = citizenToTeam();
  const mutations = [
    (w) => w.header.rcpt.reverse(),
    (w) => w.keys.reverse(),
    (w) => { w.header.extra = 1; },
    (w) => { delete w.header.thread; },
    (w) => { w.header.v = 2; },
    (w) => { w.ct = b64e(new Uint8Array(10)); },
  ];
  for (const m of mutations) {
    const w = structuredClone(s.wire);
    m(w);
    await assert.rejects(openAsTeam(cj(w)), isErr('MalformedEnvelope'));
  }
  const spaced = utf8(new TextDecoder().decode(s.body).replace('{', '{ '));
  await assert.rejects(openAsTeam(spaced), isErr('NonCanonical'));
});

test('unicode and sizes round trip', async () => {
  for (const body of ['', 'ä', 'مرحبا 🙂 Привіт', 'x'.repeat(70000), '\u202e\u0000\u2028']) {
    const s = citizenToTeam({ content: content('Betreff 🙂', body) });
    const got = await openAsTeam(s.body);
    assert.equal(got.content.body, body);
  }
  assert.throws(() => citizenToTeam({ content: content('x', 'y', { form: { procedure: id('p'), version: 1, digest: b64e(seed('d', 64)), data: { n: 2 } } }) }),
    isErr('MalformedObject'));
});
