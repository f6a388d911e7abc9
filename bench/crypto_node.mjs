// Node half of bench/crypto.py: envelope seal + open and Argon2id with the JavaScript core.
//   node bench/crypto_node.mjs <seconds-per-envelope-run> <argon2-runs>
// Prints one JSON line: {"envelope_ops_s_node", "argon2id_s_node", ...}.
import { b64e } from '../postbox/webclient/static/js/crypto/encoding.js';
import { makeCert } from '../postbox/webclient/static/js/crypto/certs.js';
import { sealMessage, openMessage } from '../postbox/webclient/static/js/crypto/envelope.js';
import { derivePassKeys, DEFAULT_OPS, DEFAULT_MEM } from '../postbox/webclient/static/js/crypto/bundle.js';
import { H, boxKeypair, signKeypair } from '../postbox/webclient/static/js/crypto/primitives.js';

const [seconds = '2', argonRuns = '3'] = process.argv.slice(2);
const NOW = Date.now();
const seed = (s, n = 32) => H(new TextEncoder().encode(`bench/${s}`), n);
const id = (s) => b64e(seed(s, 16));

function party(label, kind, org) {
  const pid = id(label);
  const signSeed = seed(`sign/${label}`);
  const sk = seed(`enc/${label}`);
  const pk = boxKeypair(sk).pk;
  return {
    id: pid,
    signSeed,
    identity: kind === 'team' ? null : makeCert({ subject: pid, kind, org, use: 'sign', pk: signKeypair(signSeed).pk, created: NOW - 1000 }),
    enc: makeCert({ subject: pid, kind, org, use: 'encrypt', pk, created: NOW - 1000, expires: NOW + 1e10 }),
    keys: new Map(),
    pk,
    sk,
  };
}

const org = id('org');
const caseworker = party('caseworker', 'caseworker', org);
const team = party('team', 'team', org);
const alice = party('alice', 'citizen', null);
const bob = party('bob', 'citizen', null);
for (const p of [team, alice, bob]) p.keys.set(p.enc.kid, { pk: p.pk, sk: p.sk });
const body = 'x'.repeat(4096);
const recipients = { [team.id]: team.enc, [alice.id]: alice.enc, [bob.id]: bob.enc };

async function once(i) {
  const content = { subject: 'Bench', body, format: 'text', form: null, attachments: [], in_reply_to: null, sth: { size: 1, root: b64e(seed('root')) } };
  const sealed = sealMessage({
    content, messageId: id(`m${i}`), kind: 'message', from: team.id, signer: caseworker.id,
    signerSeed: caseworker.signSeed, to: [alice.id, bob.id], recipients, created: NOW,
  });
  await openMessage(sealed.body, {
    mailbox: alice.id, keys: alice.keys, sender: caseworker.identity, senderTeamOrg: org, sthCheck: () => {},
  });
}

for (let i = 0; i < 20; i += 1) await once(i); // warm-up
let n = 0;
const start = performance.now();
while (performance.now() - start < Number(seconds) * 1000) {
  await once(n);
  n += 1;
}
const envelopeOps = n / ((performance.now() - start) / 1000);

derivePassKeys('warm up the WASM memory', seed('salt', 16), DEFAULT_OPS, DEFAULT_MEM);
const times = [];
for (let i = 0; i < Number(argonRuns); i += 1) {
  const t = performance.now();
  derivePassKeys(`correct horse battery staple ${i}`, seed(`salt${i}`, 16), DEFAULT_OPS, DEFAULT_MEM);
  times.push((performance.now() - t) / 1000);
}
times.sort((a, b) => a - b);
process.stdout.write(`${JSON.stringify({
  envelope_ops_s_node: Math.round(envelopeOps),
  argon2id_s_node: Number(times[Math.floor(times.length / 2)].toFixed(3)),
  argon2id_runs_node: times.length,
})}\n`);
