// The browser bundle built by `make install` (esbuild → postbox/webclient/static/dist/) is
// self-contained and works: it carries libsodium and every module of the crypto core.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

const dist = new URL('../../postbox/webclient/static/dist/', import.meta.url);

test('the bundle exists and imports nothing from outside', () => {
  for (const name of ['crypto.js', 'argon2-worker.js']) {
    const file = new URL(name, dist);
    assert.ok(existsSync(file), `${name} missing: run make install`);
    const src = readFileSync(file, 'utf8');
    assert.doesNotMatch(src, /^\s*import\s.*from\s+['"](?!\.)/m, `${name} has a bare import`);
    assert.doesNotMatch(src, /require\(['"](fs|path|crypto)['"]\)/, `${name} requires a Node module`);
  }
});

test('the bundled core seals and opens a message', async () => {
  const c = await import(new URL('crypto.js', dist));
  const { b64e } = c.encoding;
  const { H, signKeypair, boxKeypair } = c.primitives;
  const seed = (s, n = 32) => H(new TextEncoder().encode(s), n);
  const id = (s) => b64e(seed(s, 16));
  const now = 1767225600000;
  const me = id('me');
  const team = id('team');
  const identity = c.certs.makeCert({ subject: me, kind: 'citizen', org: null, use: 'sign', pk: signKeypair(seed('s')).pk, created: now });
  const enc = c.certs.makeCert({ subject: me, kind: 'citizen', org: null, use: 'encrypt', pk: boxKeypair(seed('e')).pk, created: now, expires: now + 1e9 });
  const teamSk = seed('t');
  const teamCert = c.certs.makeCert({ subject: team, kind: 'team', org: id('org'), use: 'encrypt', pk: boxKeypair(teamSk).pk, created: now, expires: now + 1e9 });
  const content = { subject: 'Hallo', body: 'Welt', format: 'text', form: null, attachments: [], in_reply_to: null, sth: { size: 1, root: b64e(seed('r')) } };
  const sealed = c.envelope.sealMessage({
    content, messageId: id('m'), kind: 'message', from: me, signer: me, signerSeed: seed('s'), to: [team],
    recipients: { [me]: enc, [team]: teamCert }, created: now,
  });
  const opened = await c.envelope.openMessage(sealed.body, {
    mailbox: team, keys: new Map([[teamCert.kid, { pk: boxKeypair(teamSk).pk, sk: teamSk }]]), sender: identity, sthCheck: () => {},
  });
  assert.deepEqual(opened.content, content);
});
