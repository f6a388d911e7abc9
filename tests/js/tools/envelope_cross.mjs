// Cross-language check, driven by tests/crypto/test_envelope_cross.py:
//   node envelope_cross.mjs open <in.json>   open Python-sealed messages, print results
//   node envelope_cross.mjs seal <in.json>   seal messages described by Python, print wires
import { readFileSync } from 'node:fs';
import { b64d, b64e, cj } from '../../../postbox/webclient/static/js/crypto/encoding.js';
import { sealMessage, openMessage } from '../../../postbox/webclient/static/js/crypto/envelope.js';
import { deriveKid } from '../../../postbox/webclient/static/js/crypto/kid.js';

const [mode, path] = process.argv.slice(2);
const input = JSON.parse(readFileSync(path, 'utf8'));
const out = [];
if (mode === 'open') {
  for (const m of input.messages) {
    const pk = b64d(m.recipient_pk);
    try {
      const opened = await openMessage(b64d(m.body), {
        mailbox: m.mailbox,
        keys: new Map([[deriveKid('encrypt', pk), { pk, sk: b64d(m.recipient_sk) }]]),
        sender: m.sender,
        senderTeamOrg: m.sender_team_org,
        sthCheck: () => {},
      });
      out.push({ ok: true, content: b64e(cj(opened.content)), digest: b64e(opened.digest) });
    } catch (e) {
      out.push({ ok: false, error: e.name });
    }
  }
} else if (mode === 'seal') {
  for (const m of input.messages) {
    const sealed = sealMessage({ ...m.args, signerSeed: b64d(m.args.signerSeed) });
    out.push({ body: b64e(sealed.body), digest: b64e(sealed.digest) });
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(JSON.stringify(out));
