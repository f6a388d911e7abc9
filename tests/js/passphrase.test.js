// Passphrase rules at creation, strength estimate and generated passphrases in JavaScript
// (passphrase.js), mirroring tests/crypto/test_passphrase.py.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as P from '../../postbox/webclient/static/js/crypto/passphrase.js';

const GOOD = 'Mein Hund heißt Bello und frisst Äpfel';

// --- rules at creation ------------------------------------------------------------------
test('new passphrases are refused with a reason code', () => {
  const cases = [
    ['', 'empty'],
    ['ein langer sicherer Satz \u{1F600} mit Emoji', 'non_bmp'],
    ['ein langer sicherer Satz \ud800 mit Surrogat', 'surrogate'],
    ['ein langer sicherer Satz \ue000 privat genutzt', 'private_use'],
    ['ein langer sicherer Satz \u0378 nicht vergeben', 'unassigned'],
    ['ein langer sicherer Satz \u0007 mit Klingel', 'control'],
    ['ein langer sicherer Satz\nmit Zeilenumbruch', 'control'],
    ['x'.repeat(600) + 'y'.repeat(600), 'too_long'],
    ['Sommer2024!', 'too_weak'],
    ['password', 'too_weak'],
    ['P@$$w0rd!', 'too_weak'],
    ['a'.repeat(31), 'too_weak'],
    ['abcdefghijklmnopqrstuvwxyz', 'too_weak'],
    ['passwortpasswortpasswort', 'too_weak'],
    ['ｐａｓｓｗｏｒｄ', 'too_weak'],
  ];
  for (const [p, reason] of cases) {
    assert.equal(P.passphraseProblem(p), reason, p);
    assert.throws(() => P.checkNewPassphrase(p), (e) => e.name === 'WeakPassphrase' && e.message === reason);
    assert.ok(P.REASONS.includes(reason));
  }
  assert.equal(P.passphraseProblem(`a\ue000b\u{1F600}${GOOD}`), 'private_use');
  assert.equal(P.passphraseProblem(`\u0007\ue000${GOOD}`), 'control');
});

test('good passphrases in many scripts pass', () => {
  for (const p of [GOOD, 'correct horse battery staple', "Işık İstanbul'da; şeker, ğ ve ı",
    'كلمة السر لا تنسى أبدا يا صديقي', 'Їжак і ґанок: є ще їжа',
    'ｐａｓｓ\u3000ｗｏｒｔ\u3000ＡＢＣ１２３\u3000ｘｙｚ']) {
    assert.equal(P.passphraseProblem(p), null, p);
    P.checkNewPassphrase(p);
  }
});

// --- strength estimate ------------------------------------------------------------------
// The same table as tests/crypto/test_passphrase.py.
const STRENGTH = [
  ['', 0], ['a', 4], ['aa', 4], ['abc', 9], ['password', 10], ['P@ssw0rd', 10],
  ['Sommer2024!', 42], ['passwordpassword', 20], ['1234567890qwertz', 25],
  ['correct horse battery staple', 149], ['Tr0ub4dor&3', 71], ['Größenwahnsinn', 84],
  ['ｐａｓｓ ｗｏｒｔ', 46], ['Їжак ґанок єнот', 90], ['كلمة مرور طويلة جدا', 108],
  ['şifreşifre', 20], ['abcabcabcabc', 18], ['zyxwvutsrq', 9],
  ['000g-40r4-0m30-e209-185g-r38e', 162],
];

test('strength estimate table (identical to Python)', () => {
  for (const [p, bits] of STRENGTH) assert.equal(P.passphraseStrength(p), bits, p);
  assert.equal(P.passphraseStrength('PASSWORD'), P.passphraseStrength('password'));
  assert.ok(P.passphraseStrength('p4$$w0rd') <= 12);
});

// --- generated passphrases --------------------------------------------------------------
test('generated passphrases', () => {
  const entropy = Uint8Array.from({ length: 15 }, (_, i) => i);
  assert.equal(P.generatePassphrase({ entropy }), '000g-40r4-0m30-e209-185g-r38e');
  for (let i = 0; i < 20; i += 1) {
    const p = P.generatePassphrase();
    assert.match(p, /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){5}$/);
    assert.equal(P.passphraseProblem(p), null);
  }
  assert.throws(() => P.generatePassphrase({ entropy: new Uint8Array(14) }), RangeError);
  assert.throws(() => P.generatePassphrase({ entropy: new Uint8Array(15) }), RangeError);
});
