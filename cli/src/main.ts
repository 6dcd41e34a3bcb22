import { Command, CommanderError } from 'commander';
import { registerDumpLlb } from './commands/dump-llb.js';
import { registerLlb } from './commands/llb.js';
import { registerBuild } from './commands/build.js';
import { registerSolve } from './commands/solve.js';
import { registerDu } from './commands/du.js';
import { registerPrune } from './commands/prune.js';
import { ReportedError } from './engine/cli-support.js';
import { reportError, type CliIo, processIo } from './io.js';

/**
 * Runs the kiln command line and resolves to the process exit code. Each command lives
 * in its own module under `commands/` and registers itself on the program.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = new Command('kiln')
    .description('Build container images from LLB, Dockerfiles and TypeScript.')
    .option('--debug', 'show stack traces for errors')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  registerDumpLlb(program, io);
  registerLlb(program, io);
  registerBuild(program, io);
  registerSolve(program, io);
  registerDu(program, io);
  registerPrune(program, io);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof ReportedError) return e.exitCode;
    reportError(io, e, program.opts<{ debug?: boolean }>().debug === true);
    return 1;
  }
}
