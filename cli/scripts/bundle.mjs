#!/usr/bin/env node
// `npm run build`, after `tsc -b`: packs the CLI (cli/dist/main.js and every package it loads) into
// one CommonJS file, cli/dist/kiln.cjs, and trains a V8 code cache for it (kiln.cjs.cache).
// cli/bin/kiln.js runs the bundle (cli/bin/load-bundle.js) when it matches the current tsc output
// (cli/bin/bundle-stamp.js); otherwise it runs dist/main.js as before.
//
// Why: a short command such as `kiln llb` spent most of its life starting up: resolving and
// compiling ~150 ES modules, then compiling each function lazily on its first call. One file
// resolves once, and the code cache holds the bytecode of every function the training run below
// called, so a run skips V8's parser and bytecode compiler for them. Node 20 has no module
// compile cache (22 has), so the cache goes through vm.Script's cachedData.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { BUNDLE, CACHE, CLIENT, STAMP, bundleIsFresh, stampOf } from '../bin/bundle-stamp.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cliDist = join(repo, 'cli', 'dist');

// kiln's frontend image entry (cli/src/frontend-main.ts) as one standalone file: what a frontend
// image runs with plain `node frontend.cjs` from a directory holding nothing else (docs/llbbridge.md).
const FRONTEND = join(cliDist, 'frontend.cjs');

// Nothing changed since the last bundle (tests call this before every end-to-end file).
if (bundleIsFresh() && existsSync(CACHE) && existsSync(FRONTEND) && !process.argv.includes('--force')) process.exit(0);

const tmp = `${BUNDLE}.${process.pid}.tmp`;
const clientTmp = `${CLIENT}.${process.pid}.tmp`;
const frontendTmp = `${FRONTEND}.${process.pid}.tmp`;

// The Dockerfile parser loads chevrotain's single-file build with a top-level await (its package
// `exports` hide that file from static imports); a CommonJS bundle cannot await at the top, so
// here the same file is imported statically.
const chevrotainSingleFile = {
  name: 'chevrotain-single-file',
  setup(b) {
    b.onLoad({ filter: /[\\/]frontends[\\/]dockerfile[\\/]dist[\\/]parser[\\/]chevrotain\.js$/ }, () => ({
      contents: `export { Lexer, createToken } from ${JSON.stringify(join(repo, 'node_modules', 'chevrotain', 'lib', 'chevrotain.min.mjs'))};`,
      loader: 'js',
    }));
  },
};

// The stamp is what the compiled output was before esbuild read it, and it is written only if it
// still is afterwards: a `tsc -b` running meanwhile (it writes .tsbuildinfo after the .js files)
// would otherwise leave a bundle of half-old code stamped as the new output.
let stamp;
for (let attempt = 1; ; attempt++) {
  stamp = JSON.stringify(stampOf());
  await pack();
  if (JSON.stringify(stampOf()) === stamp) break;
  rmSync(tmp, { force: true });
  rmSync(clientTmp, { force: true });
  rmSync(frontendTmp, { force: true });
  if (attempt === 3) throw new Error('the compiled output kept changing while bundling (a tsc -b at the same time): run npm run build again');
}

async function pack() {
  // The daemon client alone (cli/bin/kiln.js asks a running daemon before it loads the CLI), so
  // that kiln.js, CommonJS, can load it without Node's ES module loader.
  await build({
    entryPoints: [join(cliDist, 'daemon', 'client.js')],
    outfile: clientTmp,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minifyWhitespace: true,
    logLevel: 'warning',
  });
  // Settings of both the CLI bundle and the frontend entry.
  const common = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // No keepNames: its __name() call per function and class (1,700 of them) cost 26 ms of every
    // start. Nothing reads a function's name: error classes set theirs, and only stack traces
    // show esbuild's renames of top-level names that collide across modules (parse2, ...).
    // A smaller source to read at start-up; identifiers stay (stack traces).
    minifyWhitespace: true,
    minifySyntax: true,
    // ASCII only (other characters escaped), so kiln.js reads it as latin1: no UTF-8 decoding.
    charset: 'ascii',
    logLevel: 'warning',
    // @kiln/ts-dsl finds its own files from import.meta.url, and from the running script where a
    // CommonJS bundle leaves import.meta empty (load/package-files.ts): expected, not worth a warning.
    logOverride: { 'empty-import-meta': 'silent' },
    // kiln.js runs the bundle as a vm.Script, which has no loader for import(): a dynamic import
    // of a module left outside the bundle (node:https, loaded lazily) becomes a require().
    supported: { 'dynamic-import': false },
    plugins: [chevrotainSingleFile],
  };
  await build({
    ...common,
    entryPoints: [join(cliDist, 'main.js')],
    outfile: tmp,
    // A native addon: loaded from node_modules at run time. undici too: only a registry with TLS
    // settings (the config file's ca/keypair/insecure) loads it, and in the bundle its 0.75 MB
    // would be read by every command.
    external: ['better-sqlite3', 'undici'],
  });
  // The frontend entry: the same settings, but nothing left outside the file (no better-sqlite3:
  // the frontends need no cache store), so it runs where only this file is.
  await build({
    ...common,
    stdin: {
      contents: "import { runFrontendProcess } from './frontend-main.js';\nvoid runFrontendProcess();\n",
      resolveDir: cliDist,
      sourcefile: 'frontend-entry.js',
      loader: 'js',
    },
    outfile: frontendTmp,
    banner: { js: '#!/usr/bin/env node' },
  });
  // The first line names the content (a hash of the rest): each code cache starts with the line of
  // the bundle it was made from, and the loader uses only a cache of this very bundle (V8 itself
  // compares only the source length).
  const code = readFileSync(tmp, 'latin1');
  writeFileSync(tmp, `/*kiln-bundle ${createHash('sha256').update(code, 'latin1').digest('hex')}*/\n${code}`, 'latin1');
}

renameSync(clientTmp, CLIENT);
renameSync(frontendTmp, FRONTEND);
renameSync(tmp, BUNDLE);
// Caches of the old bundle (the trained one, and those of runs with other node options).
for (const f of readdirSync(dirname(BUNDLE))) if (/^kiln\.cjs\.(?:[0-9a-f]{8}\.)?cache$/.test(f)) rmSync(join(dirname(BUNDLE), f), { force: true });
// Written last: until the stamp names this tsc output, kiln.js keeps running dist/main.js.
writeFileSync(STAMP, stamp);

// Training (cli/scripts/train.mjs): a few commands run from the bundle, then its code cache is
// written.
// Without NODE_OPTIONS: the trained cache is the one of plain runs (kiln.cjs.cache); under other
// flags the training would write a cache only runs with those flags use.
const env = { ...process.env };
delete env.NODE_OPTIONS;
const r = spawnSync(process.execPath, [join(repo, 'cli', 'scripts', 'train.mjs')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
if (r.status !== 0) {
  // No stamp: kiln.js keeps running dist/main.js, and the next build bundles and trains again
  // (a stamped bundle without its trained cache would count as done).
  rmSync(STAMP, { force: true });
  throw new Error(`training run of the bundle failed (${r.status})`);
}
