// Thin wrappers over the libsodium primitives the protocol uses (mirrors primitives.py).
// Importing this module waits for libsodium to be ready; other modules import `sodium`
// from here so they never touch it before initialisation.
import sodium from 'libsodium-wrappers-sumo';
import {
  BadSignature, DecryptionFailed, InvalidKey,
} from './errors.js';

await sodium.ready;

export { sodium };

export const SEED_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;
export const SEALBOX_OVERHEAD = 48;
const KEY_BYTES = 32;
const NONCE_BYTES = 24;
const SIGNATURE_BYTES = 64;

/** BLAKE2b with an n-byte digest, optionally keyed: H(data, n) / H(data, n, key). */
export function H(data, n = 32, key = null) {
  return sodium.crypto_generichash(n, data, key);
}

/** Constant-time equality of two byte arrays (false when lengths differ). */
export function equal(a, b) {
  return a.length === b.length && sodium.memcmp(a, b);
}

export function randomBytes(n) {
  return sodium.randombytes_buf(n);
}

export function concatBytes(...parts) {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

// --- Ed25519 --------------------------------------------------------------------------
export function signKeypair(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new InvalidKey('Ed25519 seed must be 32 bytes');
  }
  const kp = sodium.crypto_sign_seed_keypair(seed);
  return { pk: kp.publicKey, sk: kp.privateKey };
}

export function sign(seed, message) {
  return sodium.crypto_sign_detached(message, signKeypair(seed).sk);
}

export function verify(pk, message, signature) {
  if (pk.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) {
    throw new BadSignature('signature or key has the wrong size');
  }
  // Keys with a torsion component pass libsodium's verify; require a prime-order point.
  if (!sodium.crypto_core_ed25519_is_valid_point(pk)) {
    throw new BadSignature('public key is not a valid prime-order point');
  }
  let ok = false;
  try {
    ok = sodium.crypto_sign_verify_detached(signature, message, pk);
  } catch {
    ok = false;
  }
  if (!ok) throw new BadSignature('signature does not verify');
}

export function checkSignPk(pk) {
  if (!(pk instanceof Uint8Array) || pk.length !== PUBLIC_KEY_BYTES
      || !sodium.crypto_core_ed25519_is_valid_point(pk)) {
    throw new InvalidKey('Ed25519 public key rejected');
  }
}

// --- X25519 sealed boxes --------------------------------------------------------------
export function boxKeypair(sk) {
  if (!(sk instanceof Uint8Array) || sk.length !== KEY_BYTES) {
    throw new InvalidKey('X25519 secret key must be 32 bytes');
  }
  return { pk: sodium.crypto_scalarmult_base(sk), sk };
}

const PROBE = (() => {
  const p = new Uint8Array(32);
  p[0] = 1;
  return p;
})();

export function checkBoxPk(pk) {
  if (!(pk instanceof Uint8Array) || pk.length !== PUBLIC_KEY_BYTES) {
    throw new InvalidKey('X25519 public key must be 32 bytes');
  }
  try {
    // libsodium fails when the shared point is all zeros, i.e. for low-order points.
    sodium.crypto_scalarmult(PROBE, pk);
  } catch {
    throw new InvalidKey('X25519 public key has low order');
  }
}

export function seal(message, pk) {
  checkBoxPk(pk);
  return sodium.crypto_box_seal(message, pk);
}

export function sealOpen(sealed, pk, sk) {
  try {
    return sodium.crypto_box_seal_open(sealed, pk, sk);
  } catch {
    throw new DecryptionFailed('sealed box does not open');
  }
}

// --- XChaCha20-Poly1305-IETF ----------------------------------------------------------
export function aeadEncrypt(key, nonce, plaintext, aad) {
  if (key.length !== KEY_BYTES || nonce.length !== NONCE_BYTES) {
    throw new InvalidKey('AEAD key or nonce has the wrong size');
  }
  return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key);
}

export function aeadDecrypt(key, nonce, ciphertext, aad) {
  if (key.length !== KEY_BYTES || nonce.length !== NONCE_BYTES) {
    throw new DecryptionFailed('AEAD key or nonce has the wrong size');
  }
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, aad, nonce, key);
  } catch {
    throw new DecryptionFailed('AEAD does not open');
  }
}
