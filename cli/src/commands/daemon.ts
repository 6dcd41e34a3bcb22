import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { daemonSocketPath } from '../daemon/protocol.js';
import { KilnDaemon } from '../daemon/server.js';
import { warmUpBuildPath } from '../daemon/warmup.js';
import { GC_KEEP_STORAGE_ENV } from '../engine/auto-gc.js';
import { gcPolicyFor } from '../engine/gc-policy.js';
import { formatBytes } from '@kiln/solver';

/**
 * Registers `kiln daemon [--root DIR] [--addr unix:///PATH]`: serves this root's builds until
 * SIGINT/SIGTERM. `kiln build`, `solve`, `du` and `prune` use it when it runs (same root, same
 * socket: `KILN_HOST` or the default) and run in their own process otherwise; `KILN_DAEMON=0`
 * opts a command out.
 */
export function registerDaemon(program: Command, io: CliIo, run: (argv: readonly string[], io: CliIo) => Promise<number>): void {
  program
    .command('daemon')
    .description('serve builds of one kiln root from a long-lived process (like buildkitd)')
    .option('--root <dir>', 'kiln state directory (default: $KILN_ROOT, /var/lib/kiln for root)')
    .option('--addr <address>', 'unix socket to listen on (default: $KILN_HOST, /run/kiln/kilnd.sock for root)')
    .option('--gc-keep-storage <size>', `automatic GC cap after builds (default: $${GC_KEEP_STORAGE_ENV}, else 10% of the root's filesystem, at most 20GB; 0 or off: no automatic GC)`)
    .action(async (flags: { root?: string; addr?: string; gcKeepStorage?: string }) => {
      const env = callerEnv(io);
      const socket = callerPath(io, daemonSocketPath(flags.addr === undefined ? env : { ...env, KILN_HOST: flags.addr }, process.getuid?.(), tmpdir()));
      const root = kilnRoot(flags.root, io).path;
      const log = (line: string): void => void io.stderr.write(`kiln daemon: ${line}\n`);
      const gc = gcPolicyFor(flags.gcKeepStorage ?? env[GC_KEEP_STORAGE_ENV], root);
      const daemon = await KilnDaemon.listen({ root, socket, run, log, ...(gc === undefined ? {} : { gc }) });
      // The commands clients run most, loaded now rather than on the first request, and the
      // Dockerfile frontend's one-time setup (lexer, JSON grammar) done on a tiny file.
      await Promise.all([import('./build.js'), import('./solve.js')]);
      const { convertDockerfile } = await import('@kiln/dockerfile');
      await convertDockerfile('FROM scratch\nENV A=1\nCOPY --from=scratch / /\nCMD ["true"]\n', {}).catch(() => undefined);
      // And a few small builds on a throw-away root: the first client's build runs warm code.
      await warmUpBuildPath(run).catch(() => undefined);
      log(`serving ${root} on unix://${socket} (pid ${process.pid}); automatic GC ${gc === undefined ? 'off' : `keeps the cache under ${formatBytes(gc.keepBytes)}`}`);
      await new Promise<void>((resolve) => {
        const stop = (sig: NodeJS.Signals): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          log(`${sig}: stopping`);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await daemon.close();
    });
}
