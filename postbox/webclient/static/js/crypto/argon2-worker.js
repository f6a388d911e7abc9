// Module worker that runs Argon2id off the main thread (PROTOCOL.md §4): the only thing it
// does is derivePassKeys from bundle.js. Start it with
//   new Worker(new URL('./argon2-worker.js', import.meta.url), { type: 'module' })
// (esbuild bundles it with libsodium later) and talk to it through requestDerivation() in
// bundle.js. Message in: {id, passphrase, salt: Uint8Array(16), ops, mem}; message out:
// {id, ok: true, kek, authSeed, authPk} (Uint8Arrays, transferred) or
// {id, ok: false, name, message} with the crypto core's error name. Nothing is kept between
// messages.
import { derivePassKeys } from './bundle.js';

// The worker's global scope (DedicatedWorkerGlobalScope), taken once at start.
const scope = self;

scope.addEventListener('message', (event) => {
  const { id, passphrase, salt, ops, mem } = event.data ?? {};
  let reply;
  let transfer = [];
  try {
    const keys = derivePassKeys(passphrase, salt, ops, mem);
    reply = { id, ok: true, kek: keys.kek, authSeed: keys.authSeed, authPk: keys.authPk };
    // A buffer may be listed only once (views can share one).
    transfer = [...new Set([keys.kek.buffer, keys.authSeed.buffer, keys.authPk.buffer])];
  } catch (err) {
    reply = { id, ok: false, name: err?.name ?? 'Error', message: String(err?.message ?? err) };
  }
  scope.postMessage(reply, transfer);
});
