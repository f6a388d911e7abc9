// Bundles the browser modules with esbuild into postbox/webclient/static/dist/ (ignored by
// git). Pages run under a CSP without inline scripts or import maps, so each entry point
// becomes one self-contained ES module that includes libsodium-wrappers-sumo from npm.
import { build } from 'esbuild';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, 'static', 'dist');
await mkdir(outdir, { recursive: true });

await build({
  entryPoints: {
    crypto: join(here, 'static', 'js', 'crypto', 'index.js'),
    'argon2-worker': join(here, 'static', 'js', 'crypto', 'argon2-worker.js'),
  },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
console.log(`bundled the crypto core into ${outdir}`);
