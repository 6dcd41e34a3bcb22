import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../io.js';

/** Stages, COPY --from, ENV, WORKDIR, LABEL: the build path without containers or images. */
const WARMUP_DOCKERFILE = [
  'FROM scratch AS files',
  'COPY a.txt dir/ /files/',
  'FROM scratch',
  'ENV A=1 B="two words"',
  'WORKDIR /app',
  'COPY --from=files /files /app/files',
  'COPY --chmod=600 a.txt /a',
  'LABEL org.example.warm=1',
  'CMD ["/app/run"]',
  '',
].join('\n');

/**
 * Runs a few small builds in this process, on a throw-away root, before the daemon serves: a
 * fresh daemon's first build otherwise ran the frontend, gateway, solver and file ops as cold
 * code (about 55 ms more before its first step than the same build once warm). The daemon's
 * own root and cache are not touched. Failures only cost the warm-up.
 */
export async function warmUpBuildPath(run: (argv: readonly string[], io: CliIo) => Promise<number>, rounds = 3): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-warmup-'));
  try {
    const ctx = join(dir, 'ctx');
    await mkdir(join(ctx, 'dir'), { recursive: true });
    await writeFile(join(ctx, 'Dockerfile'), WARMUP_DOCKERFILE);
    await writeFile(join(ctx, 'a.txt'), 'a\n');
    await writeFile(join(ctx, 'dir', 'b.txt'), 'b\n');
    const io: CliIo = {
      stdin: (async function* () {})(),
      stdout: { write: () => true },
      stderr: { write: () => true },
      cwd: dir,
      env: { ...process.env, KILN_DAEMON: '0' },
      interrupts: { on: () => () => undefined, giveUp: () => undefined },
    };
    for (let i = 0; i < rounds; i++) {
      // --no-cache after the first round: the steps run again rather than hit the cache.
      await run(['node', 'kiln', 'build', ctx, '--root', join(dir, 'root'), '--progress', 'plain', ...(i > 0 ? ['--no-cache'] : []), '--output', `type=local,dest=${join(dir, `out${i}`)}`], io);
    }
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
