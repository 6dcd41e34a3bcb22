#!/usr/bin/env node
// `npm run build`, after `tsc -b`: packs the CLI (cli/dist/main.js and every package it loads) into
// one CommonJS file, cli/dist/kiln.cjs, and trains a V8 code cache for it (kiln.cjs.cache).
// cli/bin/kiln.js runs the bundle when it matches the current tsc output (see `stampOf` there);
// otherwise it runs dist/main.js as before.
//
// Why: a short command such as `kiln llb` spent most of its life starting up: resolving and
// compiling ~150 ES modules, then compiling each function lazily on its first call. One file
// resolves once, and the code cache holds the bytecode of every function the training run below
// called, so a run skips V8's parser and bytecode compiler for them. Node 20 has no module
// compile cache (22 has), so the cache goes through vm.Script's cachedData.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { BUNDLE, CACHE, STAMP, bundleIsFresh, stampOf } from '../bin/bundle-stamp.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cliDist = join(repo, 'cli', 'dist');

/** Every instruction, flag family and expansion form the converter knows, for the training run. */
const TRAINING_DOCKERFILE = [
  '# syntax=docker/dockerfile:1',
  'ARG V=1',
  'FROM scratch AS base',
  'ARG V',
  'ENV A=1 B="two words" PATH=/usr/bin:/bin',
  'LABEL org.example.v="${V}" other=x',
  'WORKDIR /app/${V}',
  'COPY --chown=1:2 --chmod=644 a.txt b/ ./dst/',
  'ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/x.tar.gz /x',
  'ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.11.6 /src',
  'RUN --mount=type=cache,target=/root/.cache,id=c --mount=type=bind,source=src,target=/s --mount=type=tmpfs,target=/t echo "a $A" > out && ls -la',
  'RUN --mount=type=secret,id=tok,required=false --mount=type=ssh --network=none --security=sandbox ["/bin/sh", "-c", "echo exec"]',
  'RUN <<EOF',
  'set -e',
  'echo heredoc ${V}',
  'EOF',
  'COPY <<-EOT /etc/conf',
  '\tkey=value',
  '\tEOT',
  'EXPOSE 80/tcp 443',
  'USER 1000:1000',
  'VOLUME ["/data"]',
  'STOPSIGNAL SIGTERM',
  'HEALTHCHECK --interval=30s --timeout=3s --start-period=1s CMD ["true"]',
  'SHELL ["/bin/sh", "-ec"]',
  'ONBUILD RUN echo onbuild',
  'FROM base AS second',
  'COPY --from=base --link /app /copy',
  'COPY --parents --exclude=*.tmp src/**/*.go /gosrc/',
  'RUN echo ${B:-default} ${A%%x} ${V/1/2} \\',
  '  && true',
  'FROM scratch',
  'COPY --from=second /copy /',
  'CMD ["run"]',
  'ENTRYPOINT ["/entry"]',
  'MAINTAINER someone',
  '',
].join('\n');


// Nothing changed since the last bundle (tests call this before every end-to-end file).
if (bundleIsFresh() && existsSync(CACHE) && !process.argv.includes('--force')) process.exit(0);

const tmp = `${BUNDLE}.${process.pid}.tmp`;
await build({
  entryPoints: [join(cliDist, 'main.js')],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Class and function names stay as written (error names, messages): esbuild would otherwise
  // rename colliding top-level names across modules.
  keepNames: true,
  // Smaller source to read and hash at start-up; names stay (stack traces, error names).
  minifyWhitespace: true,
  minifySyntax: true,
  // ASCII only (other characters escaped), so kiln.js reads it as latin1: no UTF-8 decoding.
  charset: 'ascii',
  // A native addon: loaded from node_modules at run time.
  external: ['better-sqlite3'],
  logLevel: 'warning',
  plugins: [
    {
      // The Dockerfile parser loads chevrotain's single-file build with a top-level await (its
      // package `exports` hide that file from static imports); a CommonJS bundle cannot await
      // at the top, so here the same file is imported statically.
      name: 'chevrotain-single-file',
      setup(b) {
        b.onLoad({ filter: /[\\/]frontends[\\/]dockerfile[\\/]dist[\\/]parser[\\/]chevrotain\.js$/ }, () => ({
          contents: `export { EmbeddedActionsParser, Lexer, createToken } from ${JSON.stringify(join(repo, 'node_modules', 'chevrotain', 'lib', 'chevrotain.min.mjs'))};`,
          loader: 'js',
        }));
      },
    },
  ],
});
renameSync(tmp, BUNDLE);
rmSync(CACHE, { force: true });
// Written last: until the stamp names this tsc output, kiln.js keeps running dist/main.js.
writeFileSync(STAMP, JSON.stringify(stampOf()));

// Training: one `kiln llb` of a Dockerfile that uses every instruction (no registry: FROM
// scratch and stages), with the bundle's code cache written when it ends.
const work = mkdtempSync(join(tmpdir(), 'kiln-train-'));
try {
  writeFileSync(join(work, 'Dockerfile'), TRAINING_DOCKERFILE);
  writeFileSync(join(work, '.dockerignore'), '*.log\n!keep.log\n');
  const r = spawnSync(process.execPath, [join(repo, 'cli', 'bin', 'kiln.js'), 'llb', work, '--build-arg', 'V=2', '--session-id', 'train'], {
    env: { ...process.env, KILN_DAEMON: '0', KILN_CODE_CACHE: 'write' },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`training run of the bundle failed (${r.status}):\n${r.stderr}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
