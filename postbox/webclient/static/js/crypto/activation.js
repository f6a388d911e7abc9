// Activation codes (PROTOCOL.md §9), mirroring postbox/crypto/activation.py.
//
// code = 20 random bytes, printed as 32 Crockford symbols in 8 groups of 4 (or a QR code).
// The server stores only act_auth = H(key=code, "postbox/v1/act-auth"); the activating
// client presents act_auth and sends
//   act_mac = H(key=H(key=code, "postbox/v1/act-mac"), cj(identity cert), 32)
// over its new identity certificate body; the inviting side, which holds the code, checks it.
// No checksum: a mistyped code fails at the server's act_auth comparison.
import * as crockford from './crockford.js';
import * as domain from './domain.js';
import { checkCert } from './certs.js';
import { CODE_BYTES, KEY_BYTES, cj } from './encoding.js';
import { BadRecoveryKey, BadSignature, CertificateInvalid } from './errors.js';
import { H, equal, randomBytes } from './primitives.js';
import { cleanSymbols } from './recovery.js';

export const CODE_SYMBOLS = 32;
export const GROUP = 4;
export const MAC_BYTES = 32;

function checkCode(code) {
  if (!(code instanceof Uint8Array) || code.length !== CODE_BYTES) {
    throw new BadRecoveryKey('an activation code is 20 bytes');
  }
  return code;
}

/** 20 fresh random bytes (or `code`, checked, for vectors). */
export function generateCode({ code = null } = {}) {
  return checkCode(code ?? randomBytes(CODE_BYTES));
}

/** XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX (upper case, for printing). */
export function formatCode(code) {
  return crockford.group(crockford.encode(checkCode(code)), GROUP, '-');
}

/** The 20-byte code from what the user typed; BadRecoveryKey if malformed. */
export function parseCode(text) {
  const symbols = cleanSymbols(text);
  if (symbols.length !== CODE_SYMBOLS) {
    throw new BadRecoveryKey(`an activation code has ${CODE_SYMBOLS} characters`);
  }
  return crockford.decode(symbols);
}

/** H(key=code, "postbox/v1/act-auth"): what the server stores and is shown. */
export function actAuth(code) {
  return H(domain.ACT_AUTH, 32, checkCode(code));
}

/** Server side: constant-time comparison; BadSignature when they differ. */
export function checkActAuth(stored, presented) {
  if (!(presented instanceof Uint8Array) || presented.length !== KEY_BYTES
      || !equal(stored, presented)) {
    throw new BadSignature('activation code does not match');
  }
}

function identityCertBytes(identityCert) {
  const cert = checkCert(identityCert);
  if (cert.use !== 'sign') {
    throw new CertificateInvalid('an activation MAC covers an identity (sign) certificate');
  }
  return cj(cert);
}

/** H(key=H(key=code, "postbox/v1/act-mac"), cj(identity cert), 32); the cert body is checked. */
export function actMac(code, identityCert) {
  const macKey = H(domain.ACT_MAC, 32, checkCode(code));
  return H(identityCertBytes(identityCert), MAC_BYTES, macKey);
}

/** Throw BadSignature unless `mac` is actMac(code, identityCert) (constant time). */
export function verifyActMac(code, identityCert, mac) {
  const expected = actMac(code, identityCert);
  if (!(mac instanceof Uint8Array) || mac.length !== MAC_BYTES || !equal(expected, mac)) {
    throw new BadSignature('activation MAC does not match');
  }
}
