// The one error tree of the crypto core, mirroring postbox/crypto/errors.py.
// Every error's `name` is the stable cross-language error name used by the
// `reject` lists in tests/vectors/*.json. Messages never carry key material or plaintext.

export class CryptoError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CryptoError';
  }
}

const NAMES = [
  'EncodingError', 'NonCanonical', 'MalformedObject', 'BadPadding',
  'BadSignature', 'DecryptionFailed', 'InvalidKey', 'KeyIdMismatch',
  'CertificateInvalid', 'CertificateExpired', 'CertificateRevoked',
  'OrgCertificationMissing', 'IdentityChanged', 'WeakPassphrase',
  'UnsupportedParameters', 'BadRecoveryKey', 'StaleGeneration',
  'MalformedEnvelope', 'NotARecipient', 'KeySubstitution', 'KeyCommitmentMismatch',
  'ForkDetected', 'TruncatedStream', 'StreamFramingError', 'BlobLengthMismatch',
  'BlobHashMismatch', 'BadProof', 'StaleTreeHead', 'BrokenChain',
  'ReceiptMismatch',
];

// Named explicitly (not from the class name) so that bundling or minifying cannot change them.
function define(name) {
  const cls = class extends CryptoError {
    constructor(message) {
      super(message);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

const classes = Object.fromEntries(NAMES.map((n) => [n, define(n)]));

export const {
  EncodingError, NonCanonical, MalformedObject, BadPadding,
  BadSignature, DecryptionFailed, InvalidKey, KeyIdMismatch,
  CertificateInvalid, CertificateExpired, CertificateRevoked,
  OrgCertificationMissing, IdentityChanged, WeakPassphrase,
  UnsupportedParameters, BadRecoveryKey, StaleGeneration,
  MalformedEnvelope, NotARecipient, KeySubstitution, KeyCommitmentMismatch,
  ForkDetected, TruncatedStream, StreamFramingError, BlobLengthMismatch,
  BlobHashMismatch, BadProof, StaleTreeHead, BrokenChain,
  ReceiptMismatch,
} = classes;

export const ERROR_NAMES = Object.freeze(['CryptoError', ...NAMES]);
