// Login signatures (PROTOCOL.md §2, §4), mirroring postbox/crypto/login.py.
//
//   label ‖ challenge (32 raw bytes) ‖ u32(len(origin)) ‖ origin (ASCII) ‖ login (UTF-8)
// label = "postbox/v1/login" (method 'pass') or "postbox/v1/recovery-login" ('recovery');
// origin = the RFC 6454 ASCII serialization the client believes it talks to
// (window.location.origin), so a phishing origin cannot replay the signature.
// The signed login is always normalizeLogin(login). Unknown names get the salt
// H(key=K_fake, login, 16) (fakeSalt) and the default parameters.
import * as domain from './domain.js';
import { CHALLENGE_BYTES, KEY_BYTES, SALT_BYTES, u32, utf8 } from './encoding.js';
import { EncodingError, InvalidKey, MalformedObject } from './errors.js';
import { H, concatBytes, sign, verify } from './primitives.js';

export const METHODS = Object.freeze(['pass', 'recovery']);
export const LABELS = Object.freeze({ pass: domain.LOGIN, recovery: domain.RECOVERY_LOGIN });
export const MAX_LOGIN_BYTES = 254;
export const MAX_HOST_CHARS = 253;
export const DEFAULT_PORTS = Object.freeze({ http: 80, https: 443 });
/** Stripped from both ends of a login name; the same as login.py's LOGIN_TRIM. */
export const LOGIN_TRIM = ' \t\r\n';

const TRIM = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const BAD_LOGIN_CHAR = /[\p{Cc}\p{Cs}]/u;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const ORIGIN = new RegExp(
  `^(https?)://(${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::([1-9][0-9]{0,4}))?$`,
);

/**
 * The canonical login name: trim LOGIN_TRIM; NFC; if it contains '@', lower-case
 * (toLowerCase: Unicode default case mapping, locale-independent) everything after the last
 * '@' and NFC again. MalformedObject when empty, over 254 UTF-8 bytes, or with control
 * characters or lone surrogates.
 */
export function normalizeLogin(login) {
  if (typeof login !== 'string') throw new MalformedObject('login: expected a string');
  let name = login.replace(TRIM, '').normalize('NFC');
  const at = name.lastIndexOf('@');
  if (at >= 0) name = (name.slice(0, at + 1) + name.slice(at + 1).toLowerCase()).normalize('NFC');
  if (name === '') throw new MalformedObject('login: empty');
  if (BAD_LOGIN_CHAR.test(name)) {
    throw new MalformedObject('login: control character or lone surrogate');
  }
  if (utf8(name).length > MAX_LOGIN_BYTES) {
    throw new MalformedObject(`login: longer than ${MAX_LOGIN_BYTES} bytes`);
  }
  return name;
}

/**
 * Accept only an RFC 6454 ASCII serialization of an http(s) origin: lower-case scheme and
 * host (LDH labels, xn-- A-labels, IPv4, or a bracketed lower-case IPv6 literal), a port
 * without leading zeros ≤ 65535 and not the scheme's default, nothing else.
 */
export function checkOrigin(origin) {
  if (typeof origin !== 'string') throw new MalformedObject('origin: expected a string');
  const m = ORIGIN.exec(origin);
  if (m === null) throw new MalformedObject('origin: not an ASCII origin serialization');
  const [, scheme, host, port] = m;
  if (host.length > MAX_HOST_CHARS) throw new MalformedObject('origin: host too long');
  if (port !== undefined && (Number(port) > 65535 || Number(port) === DEFAULT_PORTS[scheme])) {
    throw new MalformedObject("origin: port out of range or the scheme's default");
  }
  return origin;
}

/** The signed bytes of §2 (login normalised; origin checked; challenge 32 bytes). */
export function loginMessage(challenge, origin, login, method) {
  if (!METHODS.includes(method)) throw new MalformedObject('method: expected pass or recovery');
  if (!(challenge instanceof Uint8Array) || challenge.length !== CHALLENGE_BYTES) {
    throw new EncodingError('challenge must be 32 bytes');
  }
  const originBytes = utf8(checkOrigin(origin));
  return concatBytes(LABELS[method], challenge, u32(originBytes.length), originBytes,
    utf8(normalizeLogin(login)));
}

/** Ed25519 signature by the auth key ('pass') or the recovery auth key ('recovery'). */
export function signLogin(authSeed, challenge, origin, login, method) {
  return sign(authSeed, loginMessage(challenge, origin, login, method));
}

/** Throw BadSignature unless `signature` is the login signature of §2. */
export function verifyLogin(authPk, signature, challenge, origin, login, method) {
  verify(authPk, loginMessage(challenge, origin, login, method), signature);
}

/** H(key=K_fake, normalizeLogin(login), 16): the salt served for unknown names. */
export function fakeSalt(kFake, login) {
  if (!(kFake instanceof Uint8Array) || kFake.length !== KEY_BYTES) {
    throw new InvalidKey('K_fake must be 32 bytes');
  }
  return H(utf8(normalizeLogin(login)), SALT_BYTES, kFake);
}
