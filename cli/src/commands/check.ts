/**
 * `kiln check [FILE]`: type-checks a kiln/ts build file and its relative imports against the
 * DSL's declarations (TypeScript 5.x compiler API, strict settings), as `tsc --noEmit` would.
 * `kiln build` strips types without checking them; this command is where they are checked.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BUILD_FILE, checkBuildFile, formatCheckDiagnostic } from '@kiln/ts-dsl';
import { CliError, ReportedError, callerCwd, callerPath, type CliIo } from '../io.js';

/** Checks `file` (default: ./kiln.build.ts, or DIR/kiln.build.ts for a directory); prints `file:line:col: error TSxxxx: message` lines. */
export async function runCheck(file: string | undefined, io: CliIo): Promise<void> {
  let path = callerPath(io, file ?? DEFAULT_BUILD_FILE);
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory() === true) path = join(path, DEFAULT_BUILD_FILE);
  else if (st === undefined) throw new CliError('KLN0805', `${file ?? DEFAULT_BUILD_FILE}: no such file`, 'kiln check [FILE.ts] (default: ./kiln.build.ts)');
  const diagnostics = checkBuildFile(path);
  const base = callerCwd(io);
  for (const d of diagnostics) io.stdout.write(`${formatCheckDiagnostic(d, base)}\n`);
  const errors = diagnostics.filter((d) => d.category === 'error').length;
  if (errors > 0) {
    io.stderr.write(`kiln check: ${errors} error${errors === 1 ? '' : 's'}\n`);
    throw new ReportedError(1, `${errors} type errors`);
  }
}

/** Registers `kiln check`. */
export function registerCheck(program: Command, io: CliIo): void {
  program
    .command('check')
    .description('type-check a kiln/ts build file (and its imports) against the DSL, as tsc --noEmit with strict settings')
    .argument('[file]', `build file, or a directory holding ${DEFAULT_BUILD_FILE} (default: ./${DEFAULT_BUILD_FILE})`)
    .action(async (file: string | undefined) => {
      await runCheck(file, io);
    });
}
