// Node side of tests/crypto/test_bundle_cross.py (run through tests/support/node.py): reads
// the JSON request from the file named by the last argument, writes one JSON answer on stdout:
//  - opens the pass bundle (by passphrase) and the recovery bundle (by the printed recovery
//    key) that Python sealed, and returns their private_keys and auth keys;
//  - seals its own pass and recovery bundles (fresh randomness) for Python to open;
//  - evaluates passphrase rules, login normalisation, origins, login signatures and fake
//    salts on Python's corpus, so that Python can compare them one by one.
import * as B from '../../../postbox/webclient/static/js/crypto/bundle.js';
import * as R from '../../../postbox/webclient/static/js/crypto/recovery.js';
import * as L from '../../../postbox/webclient/static/js/crypto/login.js';
import * as P from '../../../postbox/webclient/static/js/crypto/passphrase.js';
import { readFileSync } from 'node:fs';
import { b64d, b64e } from '../../../postbox/webclient/static/js/crypto/encoding.js';

function outcome(fn) {
  try {
    return { ok: fn() };
  } catch (e) {
    return { error: e.name };
  }
}

const req = JSON.parse(readFileSync(process.argv[process.argv.length - 1], 'utf8'));
const { account } = req;

const fromPy = B.openPassBundle(req.py_pass.bundle, req.py_pass.passphrase, account);
const rk = R.parseRecoveryKey(req.py_recovery.text);
const fromPyRecovery = R.openRecoveryBundle(req.py_recovery.bundle, rk, account);

const mine = B.sealPassBundle(req.node_seal.private_keys, req.node_seal.passphrase, account);
const myRk = R.generateRecoveryKey();
const myRecovery = R.sealRecoveryBundle(req.node_seal.private_keys, myRk, account);
const generated = P.generatePassphrase();

const answer = {
  py_pass: { private_keys: fromPy.privateKeys, auth_pk: b64e(fromPy.keys.authPk) },
  py_recovery: { private_keys: fromPyRecovery, auth_pk: b64e(R.recoveryKeys(rk).authPk) },
  node_pass: { bundle: mine.bundle, auth_pk: b64e(mine.keys.authPk) },
  node_recovery: {
    bundle: myRecovery.bundle,
    text: R.formatRecoveryKey(myRk),
    auth_pk: b64e(myRecovery.keys.authPk),
  },
  generated,
  constants: {
    common_words: [...P.COMMON_WORDS].sort(),
    numbers: [B.DEFAULT_OPS, B.DEFAULT_MEM, B.MIN_OPS, B.MAX_OPS, B.MIN_MEM, B.MAX_MEM,
      P.STRENGTH_THRESHOLD_BITS, P.MAX_PASSPHRASE_CHARS, P.POOL_LOWER, P.POOL_UPPER,
      P.POOL_DIGIT, P.POOL_SYMBOL, P.POOL_OTHER, P.WORD_QUARTER_BITS, B.FIRST_GEN, B.MAX_GEN],
    reasons: [...P.REASONS],
    separators: [...R.SEPARATORS].sort(),
  },
  strength: req.passphrases.map((p) => [P.passphraseStrength(p), P.passphraseProblem(p)]),
  logins: req.logins.map((l) => outcome(() => L.normalizeLogin(l))),
  origins: req.origins.map((o) => outcome(() => L.checkOrigin(o))),
  signatures: req.signatures.map((s) => outcome(() => b64e(L.signLogin(
    b64d(s.auth_seed), b64d(s.challenge), s.origin, s.login, s.method)))),
  fake_salts: req.fake_salts.map((f) => outcome(() => b64e(L.fakeSalt(b64d(f.k_fake), f.login)))),
};
process.stdout.write(JSON.stringify(answer));
