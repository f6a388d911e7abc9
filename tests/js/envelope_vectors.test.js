// tests/vectors/envelope.json in JavaScript: rebuild deterministic outputs, open every case,
// and reject every reject case with the named error.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { b64d, b64e, cj } from '../../postbox/webclient/static/js/crypto/encoding.js';
import { sealMessage, openMessage } from '../../postbox/webclient/static/js/crypto/envelope.js';
import { deriveKid } from '../../postbox/webclient/static/js/crypto/kid.js';
import { sealOpen } from '../../postbox/webclient/static/js/crypto/primitives.js';

const V = JSON.parse(readFileSync(new URL('../vectors/envelope.json', import.meta.url), 'utf8'));

function keysOf(c) {
  const pk = b64d(c.recipient_pk);
  return new Map([[deriveKid('encrypt', pk), { pk, sk: b64d(c.recipient_sk) }]]);
}

function open(c, wire) {
  return openMessage(wire, {
    mailbox: c.recipient_mailbox,
    keys: keysOf(c),
    sender: c.signer_identity_cert,
    senderTeamOrg: c.sender_team_org,
    sthCheck: () => {},
  });
}

for (const c of V.cases) {
  test(`envelope vector ${c.name}: rebuild`, () => {
    const h = c.header;
    const sealed = sealMessage({
      content: c.content,
      messageId: h.id,
      kind: h.kind,
      from: h.from,
      signer: h.signer,
      signerSeed: b64d(c.signer_seed),
      to: h.to,
      recipients: Object.fromEntries(c.recipients.map((r) => [r.subject, r])),
      thread: h.thread,
      caseId: h.case,
      created: h.created,
      blobs: h.blobs,
      mk: b64d(c.mk),
      nonce: b64d(c.nonce),
    });
    assert.deepEqual(sealed.wire.header, c.wire.header);
    assert.equal(sealed.wire.ct, c.wire.ct);
    assert.equal(sealed.wire.signature, c.wire.signature);
    assert.equal(b64e(sealed.digest), c.digest);
    assert.deepEqual(sealed.wire.keys.map((k) => [k.mailbox, k.kid]), c.wire.keys.map((k) => [k.mailbox, k.kid]));
  });

  test(`envelope vector ${c.name}: open`, async () => {
    const opened = await open(c, cj(c.wire));
    assert.deepEqual(opened.content, c.content);
    assert.equal(b64e(opened.digest), c.digest);
    const mine = c.wire.keys.find((k) => k.mailbox === c.recipient_mailbox);
    assert.deepEqual(sealOpen(b64d(mine.sealed), b64d(c.recipient_pk), b64d(c.recipient_sk)), b64d(c.mk));
  });
}

for (const r of [...V.reject, ...V.project_reject]) {
  test(`envelope reject ${r.name} → ${r.error}`, async () => {
    const wire = r.body !== undefined ? b64d(r.body) : cj(r.wire);
    await assert.rejects(open(r, wire), (e) => {
      assert.equal(e.name, r.error, e.message);
      return true;
    });
  });
}
