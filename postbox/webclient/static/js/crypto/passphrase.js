// Passphrase rules at creation and the strength estimate (PROTOCOL.md §4), mirroring
// postbox/crypto/passphrase.py one to one: the same checks in the same order, the same
// reason codes and the same integer algorithm (a cross-language test compares both on a
// corpus). bundle.js calls checkNewPassphrase when sealing under a new passphrase; key
// derivation itself takes any passphrase. Pure functions, no DOM, no globals holding secrets.
import * as crockford from './crockford.js';
import { WeakPassphrase } from './errors.js';
import { randomBytes } from './primitives.js';

// --- parameters ------------------------------------------------------------------------
/** A new passphrase needs an estimated strength of at least this many bits. */
export const STRENGTH_THRESHOLD_BITS = 60;
export const MAX_PASSPHRASE_CHARS = 1024; // code points after NFKC
export const GENERATED_PASSPHRASE_BYTES = 15; // 120 bits → 24 Crockford symbols
/** Reason codes carried as the message of WeakPassphrase. */
export const REASONS = Object.freeze([
  'empty', 'too_long', 'surrogate', 'non_bmp', 'private_use', 'unassigned', 'control',
  'too_weak',
]);

// --- rules at creation ------------------------------------------------------------------
// Unicode property escapes use the engine's own tables (Node 20: Unicode 15.1+; a browser's
// may be newer or older). Residual risk, as in passphrase.py: a code point assigned in one
// client's Unicode version but not in another's passes here and is "unassigned" (NFKC-
// unchanged) there; if it has a compatibility decomposition the two derive different keys.
const CATEGORY_CHECKS = [
  ['surrogate', /^\p{Cs}$/u],
  ['private_use', /^\p{Co}$/u],
  ['unassigned', /^\p{Cn}$/u],
  ['control', /^\p{Cc}$/u],
];

function codePointProblem(ch) {
  if (ch.codePointAt(0) > 0xffff) return 'non_bmp';
  for (const [reason, re] of CATEGORY_CHECKS) if (re.test(ch)) return reason;
  return null;
}

/**
 * The reason code a new passphrase is refused for, or null. In this order: 'empty'; then
 * for each code point of the passphrase as typed and then of its NFKC form, left to right,
 * the first of 'non_bmp' (> U+FFFF), 'surrogate' (Cs), 'private_use' (Co), 'unassigned'
 * (Cn), 'control' (Cc); then 'too_long' (> 1024 code points after NFKC); then 'too_weak'
 * (passphraseStrength below STRENGTH_THRESHOLD_BITS).
 */
export function passphraseProblem(passphrase) {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
  if (passphrase === '') return 'empty';
  const normalized = passphrase.normalize('NFKC');
  for (const text of [passphrase, normalized]) {
    for (const ch of text) {
      const problem = codePointProblem(ch);
      if (problem !== null) return problem;
    }
  }
  if ([...normalized].length > MAX_PASSPHRASE_CHARS) return 'too_long';
  if (passphraseStrength(passphrase) < STRENGTH_THRESHOLD_BITS) return 'too_weak';
  return null;
}

/** Throw WeakPassphrase (message = reason code) unless acceptable at creation. */
export function checkNewPassphrase(passphrase) {
  const problem = passphraseProblem(passphrase);
  if (problem !== null) throw new WeakPassphrase(problem);
}

// --- strength estimate ------------------------------------------------------------------
// Only ASCII is told apart: case mapping and letter categories of other scripts vary
// between Unicode versions, so every non-ASCII code point is one class.
export const POOL_LOWER = 26; // a-z
export const POOL_UPPER = 26; // A-Z
export const POOL_DIGIT = 10; // 0-9
export const POOL_SYMBOL = 33; // every other code point below U+0080
export const POOL_OTHER = 40; // any code point from U+0080
export const WORD_QUARTER_BITS = 40; // a common word costs 10 bits, whatever its length
const LEET = new Map([
  ['0', 'o'], ['1', 'i'], ['3', 'e'], ['4', 'a'], ['5', 's'], ['7', 't'], ['@', 'a'],
  ['$', 's'], ['!', 'i'],
]);

/** Very common passwords and base words (as in passphrase.py, written for this project). */
export const COMMON_WORDS = new Set(`
  abcd access admin administrator alexander amazon angel anna apple asdf asdfgh
  asdfghjkl ashley baby baseball batman bayern berlin bitte blink butterfly charlie
  cheese chelsea chocolate computer cookie daniel deutschland dragon eintracht
  familie flower football freedom fussball galatasaray geheim hallo hamburg hannah
  hello hockey hunter iloveyou internet istanbul jennifer jessica jordan junior
  killer kiev kyiv lasagne letmein liebe love lovely maggie master matrix michael
  michelle monkey mustang nicole ninja passw passwort password passwords pepper
  postbox postfach princess qazwsx qwer qwert qwertz qwerty qwertyuiop robert
  schalke schatz secret shadow soccer sommer starwars summer sunshine superman
  tigger trustno welcome whatever willkommen winter yxcvb zxcvbn zxcvbnm
  şifre sifre parola merhaba ankara пароль кохання сонечко привіт україна
`.split(/\s+/).filter((w) => w !== ''));
const WORD_LENGTHS = [...COMMON_WORDS].map((w) => [...w].length);
const MIN_WORD = Math.min(...WORD_LENGTHS);
const MAX_WORD = Math.max(...WORD_LENGTHS);

function asciiLower(cp) {
  return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
}

function charClassPool(cp) {
  if (cp >= 0x61 && cp <= 0x7a) return ['lower', POOL_LOWER];
  if (cp >= 0x41 && cp <= 0x5a) return ['upper', POOL_UPPER];
  if (cp >= 0x30 && cp <= 0x39) return ['digit', POOL_DIGIT];
  if (cp < 0x80) return ['symbol', POOL_SYMBOL];
  return ['other', POOL_OTHER];
}

/** floor(4 · log2(pool)) in integers: the largest k with 2^k ≤ pool^4 (exact doubles). */
function quarterLog2(pool) {
  const target = pool ** 4;
  let k = 0;
  while (2 ** (k + 1) <= target) k += 1;
  return k;
}

/**
 * A deterministic strength estimate in whole bits, identical to passphrase.py:
 *  1. s = code points of NFKC(passphrase); empty → 0.
 *  2. t = s with ASCII A-Z lower-cased only; u = t with the leet map
 *     0→o 1→i 3→e 4→a 5→s 7→t @→a $→s !→i.
 *  3. Pool P = sum over classes present in s of: a-z 26, A-Z 26, 0-9 10, other code points
 *     below U+0080 33, code points from U+0080 40; each counted character is worth
 *     b = floor(4·log2(P)) quarter bits (largest k with 2^k ≤ P^4).
 *  4. Scanning u from the left, at each position the longest word of COMMON_WORDS starting
 *     there is matched (its characters are skipped) and adds 40 quarter bits.
 *  5. Position i is patterned if t[i] == t[i-1], or t[i]-t[i-1] == t[i-1]-t[i-2] with
 *     |t[i]-t[i-1]| == 1, or the trigram t[i-2..i] already occurred starting at ≤ i-3.
 *  6. Every character neither matched nor patterned adds b.
 *  7. Result = total quarter bits // 4.
 * A floor against the commonest weak choices, not a guarantee.
 */
export function passphraseStrength(passphrase) {
  if (typeof passphrase !== 'string') throw new TypeError('passphrase must be a string');
  const s = Array.from(passphrase.normalize('NFKC'), (ch) => ch.codePointAt(0));
  const n = s.length;
  if (n === 0) return 0;
  const t = s.map(asciiLower);
  const u = t.map((cp) => {
    const ch = String.fromCodePoint(cp);
    return LEET.get(ch) ?? ch;
  });

  const pools = new Map(s.map(charClassPool));
  let pool = 0;
  for (const size of pools.values()) pool += size;
  const perChar = quarterLog2(pool);

  const matched = new Array(n).fill(false);
  let quarters = 0;
  let i = 0;
  while (i < n) {
    let length = 0;
    for (let size = Math.min(MAX_WORD, n - i); size >= MIN_WORD; size -= 1) {
      if (COMMON_WORDS.has(u.slice(i, i + size).join(''))) {
        length = size;
        break;
      }
    }
    if (length) {
      for (let j = i; j < i + length; j += 1) matched[j] = true;
      quarters += WORD_QUARTER_BITS;
      i += length;
    } else {
      i += 1;
    }
  }

  const seen = new Set();
  for (let k = 0; k < n; k += 1) {
    let patterned = k >= 1 && t[k] === t[k - 1];
    if (k >= 2) {
      const step = t[k] - t[k - 1];
      if (Math.abs(step) === 1 && step === t[k - 1] - t[k - 2]) patterned = true;
      const trigram = `${t[k - 2]},${t[k - 1]},${t[k]}`;
      if (seen.has(trigram)) patterned = true;
      seen.add(trigram);
    }
    if (!matched[k] && !patterned) quarters += perChar;
  }
  return Math.floor(quarters / 4);
}

// --- generated passphrases --------------------------------------------------------------
/**
 * A random passphrase: 6 groups of 4 lower-case Crockford symbols (120 bits). `entropy`
 * (15 bytes) fixes it for tests; fresh draws that fail the rules are redrawn (so the
 * result always passes), a given entropy that fails throws a RangeError.
 */
export function generatePassphrase({ entropy = null } = {}) {
  for (;;) {
    const raw = entropy ?? randomBytes(GENERATED_PASSPHRASE_BYTES);
    if (!(raw instanceof Uint8Array) || raw.length !== GENERATED_PASSPHRASE_BYTES) {
      throw new RangeError('entropy must be 15 bytes');
    }
    const phrase = crockford.group(crockford.encode(raw).toLowerCase(), 4, '-');
    if (passphraseProblem(phrase) === null) return phrase;
    if (entropy !== null) {
      throw new RangeError('this entropy gives a passphrase that fails the rules');
    }
  }
}
