// The crypto core for the browser: one namespace per module, mirroring postbox/crypto/.
// `make install` bundles this file with libsodium-wrappers-sumo into static/dist/crypto.js.
export * as activation from './activation.js';
export * as attachment from './attachment.js';
export * as attachmentPipe from './attachment_pipe.js';
export * as attachmentStream from './attachment_stream.js';
export * as bundle from './bundle.js';
export * as certs from './certs.js';
export * as crockford from './crockford.js';
export * as domain from './domain.js';
export * as encoding from './encoding.js';
export * as envelope from './envelope.js';
export * as errors from './errors.js';
export * as keystate from './keystate.js';
export * as kid from './kid.js';
export * as logevents from './logevents.js';
export * as login from './login.js';
export * as merkle from './merkle.js';
export * as monitor from './monitor.js';
export * as padding from './padding.js';
export * as passphrase from './passphrase.js';
export * as primitives from './primitives.js';
export * as receipts from './receipts.js';
export * as recovery from './recovery.js';
export * as shapes from './shapes.js';
export * as transparency from './transparency.js';
