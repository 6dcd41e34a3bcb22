import { Command, CommanderError } from 'commander';
import { BrokenPipeError, ReportedError, afterStdout, callerEnv, callerPath, reportError, type CliIo, processIo } from './io.js';
import { commandOf, configFlagOf } from './daemon/protocol.js';
import { versionLine } from './version.js';

type Register = (program: Command, io: CliIo) => void;

/**
 * The commands, each in its own module under `commands/`. Modules load lazily: a run of
 * `kiln llb` does not pay for loading the solver and runtime that `kiln build` needs.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<Register>]> = [
  ['dump-llb', async () => (await import('./commands/dump-llb.js')).registerDumpLlb],
  ['llb', async () => (await import('./commands/llb.js')).registerLlb],
  ['build', async () => (await import('./commands/build.js')).registerBuild],
  ['bake', async () => (await import('./commands/bake.js')).registerBake],
  ['check', async () => (await import('./commands/check.js')).registerCheck],
  ['solve', async () => (await import('./commands/solve.js')).registerSolve],
  ['du', async () => (await import('./commands/du.js')).registerDu],
  ['prune', async () => (await import('./commands/prune.js')).registerPrune],
  ['images', async () => (await import('./commands/images.js')).registerImages],
  ['push', async () => (await import('./commands/images.js')).registerImages],
  ['save', async () => (await import('./commands/images.js')).registerImages],
  ['rmi', async () => (await import('./commands/images.js')).registerImages],
  ['load', async () => (await import('./commands/images.js')).registerImages],
  ['pull', async () => (await import('./commands/images.js')).registerImages],
  ['tag', async () => (await import('./commands/images.js')).registerImages],
  ['imagetools', async () => (await import('./commands/imagetools.js')).registerImagetools],
  ['rebase', async () => (await import('./commands/rebase.js')).registerRebase],
  ['history', async () => (await import('./commands/history.js')).registerHistory],
  ['inspect', async () => (await import('./commands/inspect.js')).registerInspect],
  ['binfmt', async () => (await import('./commands/binfmt.js')).registerBinfmt],
  [
    'daemon',
    async () => {
      const { registerDaemon } = await import('./commands/daemon.js');
      return (program, io) => registerDaemon(program, io, main);
    },
  ],
];

/** Runs the kiln command line and resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  return await afterStdout(io, await run(argv, io));
}

async function run(argv: readonly string[], io0: CliIo): Promise<number> {
  // --config FILE is KILN_CONFIG for this command (its env is where every command looks).
  const config = configFlagOf(argv);
  const io = config === undefined ? io0 : { ...io0, env: { ...callerEnv(io0), KILN_CONFIG: callerPath(io0, config) } };
  const program = new Command('kiln')
    .description('Build container images from LLB, Dockerfiles and TypeScript.')
    .option('--debug', 'show stack traces for errors')
    .option('--config <file>', 'kiln config file, buildkitd.toml\'s format (default: $KILN_CONFIG, else /etc/kiln/kiln.toml when it exists)')
    .version(versionLine(), '-V, --version', 'print the kiln version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  try {
    // Only the named command is loaded; help and unknown commands load them all, --version none.
    const named = commandOf(argv);
    const wanted = COMMANDS.filter(([name]) => name === named);
    const version = named === undefined && argv.slice(2).some((a) => a === '-V' || a === '--version');
    // One module may register several commands (images, push, save, rmi): register it once.
    const registered = new Set<Register>();
    for (const [, load] of wanted.length > 0 || version ? wanted : COMMANDS) {
      const register = await load();
      if (!registered.has(register)) register(program, io);
      registered.add(register);
    }
    await program.parseAsync([...argv]);
    return 0;
  } catch (e) {
    // --version and --help end by throwing through exitOverride: with their exit code (0).
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof ReportedError) return e.exitCode;
    // `kiln … | head`: the reader had what it wanted.
    if (e instanceof BrokenPipeError) return 0;
    reportError(io, e, program.opts<{ debug?: boolean }>().debug === true);
    // Interrupted (Ctrl-C, SIGTERM): 130, as `kiln build` and `kiln bake` exit.
    return (e as { code?: unknown }).code === 'KLN0705' ? 130 : 1;
  }
}
