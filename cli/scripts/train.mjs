#!/usr/bin/env node
// The training run of the CLI bundle (cli/scripts/bundle.mjs runs it after packing): a `kiln llb`
// of a Dockerfile that uses every instruction and, where this machine can, a small `kiln build`
// (FROM scratch, file ops only: no container, no registry), all in this process from the bundle.
// Then V8's code cache of the bundle is written: it holds the bytecode of every function these
// commands called, so a later `kiln` process skips compiling them.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBundle } from '../bin/load-bundle.js';

/** Every instruction, flag family and expansion form the converter knows, for the `kiln llb` run. */
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

const BUILD_DOCKERFILE = ['FROM scratch AS files', 'COPY a.txt dir/ /files/', 'FROM scratch', 'COPY --from=files /files /out', 'COPY --chmod=600 a.txt /a', ''].join('\n');

/** Runs the commands through the bundle's `main` with its output discarded. */
async function run(main, args) {
  const io = { stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: () => true } };
  return main(['node', 'kiln', ...args], io);
}

const bundle = loadBundle();
if (bundle === undefined) throw new Error('no bundle for the current tsc output: run cli/scripts/bundle.mjs');
const work = mkdtempSync(join(tmpdir(), 'kiln-train-'));
try {
  const ctx = join(work, 'ctx');
  mkdirSync(join(ctx, 'dir'), { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), TRAINING_DOCKERFILE);
  writeFileSync(join(ctx, 'Dockerfile.build'), BUILD_DOCKERFILE);
  writeFileSync(join(ctx, '.dockerignore'), '*.log\n!keep.log\n');
  writeFileSync(join(ctx, 'a.txt'), 'a\n');
  writeFileSync(join(ctx, 'dir', 'b.txt'), 'b\n');
  const llb = await run(bundle.main, ['llb', ctx, '--build-arg', 'V=2', '--session-id', 'train']);
  if (llb !== 0) throw new Error(`training: kiln llb exited ${llb}`);
  // A build needs what kiln build needs (root for overlay mounts); without it only llb trains.
  const args = ['build', ctx, '-f', join(ctx, 'Dockerfile.build'), '--root', join(work, 'root'), '--progress', 'plain', '--output', `type=local,dest=${join(work, 'out')}`];
  const built = await run(bundle.main, args);
  if (built !== 0) process.stderr.write(`kiln bundle training: the kiln build step exited ${built}; the code cache covers kiln llb only\n`);
  bundle.writeCache(true);
} finally {
  rmSync(work, { recursive: true, force: true });
}
