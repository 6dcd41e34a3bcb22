import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { daemonSocketPath } from '../daemon/protocol.js';
import { KilnDaemon } from '../daemon/server.js';
import { warmUpBuildPath } from '../daemon/warmup.js';
import { GC_KEEP_STORAGE_ENV } from '../engine/auto-gc.js';
import { commandConfig } from '../engine/config.js';
import { EngineError } from '../engine/errors.js';
import { resolveGcPolicy, type GcPolicy } from '../engine/gc-policy.js';
import { formatBytes } from '@kiln/solver';
import { callerUid } from '@kiln/runtime';

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
    .option('--gc-keep-storage <size>', `automatic GC cap after builds (default: $${GC_KEEP_STORAGE_ENV}, else the config file's [worker.oci], else 10% of the root's filesystem, at most 20GB; 0 or off: no automatic GC)`)
    // `kiln daemon stop` and the like are answered below with how to stop one, not commander's
    // "too many arguments"
    .allowExcessArguments(true)
    .action(async (flags: { root?: string; addr?: string; gcKeepStorage?: string }, cmd: Command) => {
      const extra = cmd.args[0];
      if (extra !== undefined) {
        throw new EngineError('KLN0709', `kiln daemon takes no subcommand (got "${extra}"): it starts a daemon`, {
          hint: 'a daemon stops on SIGINT or SIGTERM: Ctrl-C in its terminal, or kill PID (its "serving" line names the pid)',
        });
      }
      const env = callerEnv(io);
      checkListenAddress(flags.addr ?? env['KILN_HOST'], flags.addr === undefined ? 'KILN_HOST' : '--addr');
      const socket = callerPath(io, daemonSocketPath(flags.addr === undefined ? env : { ...env, KILN_HOST: flags.addr }, callerUid(), tmpdir()));
      const root = kilnRoot(flags.root, io).path;
      const log = (line: string): void => void io.stderr.write(`kiln daemon: ${line}\n`);
      // The config file, read once as buildkitd reads its own: its registries and GC serve every client.
      const config = commandConfig(io);
      let gc: GcPolicy | undefined;
      try {
        gc = resolveGcPolicy({ flag: flags.gcKeepStorage, env: env[GC_KEEP_STORAGE_ENV], file: config.gc }, root);
      } catch (e) {
        // "invalid size" alone named neither the flag nor the variable it came from
        if (!(e instanceof EngineError)) throw e;
        throw new EngineError(e.code, `${flags.gcKeepStorage !== undefined ? '--gc-keep-storage' : GC_KEEP_STORAGE_ENV}: ${e.message}`, { ...(e.hint === undefined ? {} : { hint: e.hint }), cause: e });
      }
      const daemon = await KilnDaemon.listen({ root, socket, run, log, hosts: config.registry, configDigest: config.digest, ...(gc === undefined ? {} : { gc }) });
      // The commands clients run most, loaded now rather than on the first request, and the
      // Dockerfile frontend's one-time setup (lexer, JSON grammar) done on a tiny file.
      await Promise.all([import('./build.js'), import('./solve.js')]);
      const { convertDockerfile } = await import('@kiln/dockerfile');
      await convertDockerfile('FROM scratch\nENV A=1\nCOPY --from=scratch / /\nCMD ["true"]\n', {}).catch(() => undefined);
      // And a few small builds on a throw-away root: the first client's build runs warm code.
      await warmUpBuildPath(run).catch(() => undefined);
      const cfg = config.path === undefined ? 'no config file' : `config ${config.path}`;
      log(`serving ${root} on unix://${socket} (pid ${process.pid}); ${cfg}; automatic GC ${gc === undefined ? 'off' : gc.keepBytes > 0 ? `keeps the cache under ${formatBytes(gc.keepBytes)}` : 'by the free-space rules of the config file'}`);
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

/**
 * The daemon listens on a unix socket only: `unix:///path` or a bare path. Another scheme
 * (`tcp://127.0.0.1:1234`, as BUILDKIT_HOST takes) would otherwise be read as a relative path,
 * and the daemon would make a directory `tcp:` and listen in it.
 */
export function checkListenAddress(addr: string | undefined, what: '--addr' | 'KILN_HOST'): void {
  if (addr === undefined || addr === '' || addr.startsWith('unix://')) return;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(addr)?.[1];
  if (scheme === undefined) return;
  throw new EngineError('KLN0709', `${what} ${addr}: kiln daemon listens on a unix socket only, not ${scheme}://`, {
    hint: 'give --addr unix:///PATH (or a path); clients reach it through the same KILN_HOST',
  });
}
