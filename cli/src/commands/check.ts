/**
 * `kiln check [FILE]`: type-checks a kiln/ts build file and its relative imports against the
 * DSL's declarations (TypeScript 5.x compiler API, strict settings), as `tsc --noEmit` would.
 * `kiln build` strips types without checking them; this command is where they are checked.
 */
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { detectSyntax } from '@kiln/dockerfile';
import { DEFAULT_BUILD_FILE, checkBuildFile, formatCheckDiagnostic } from '@kiln/ts-dsl';
import { TS_FRONTEND } from '../engine/frontends.js';
import { CliError, ReportedError, callerCwd, callerPath, type CliIo } from '../io.js';

/** Checks `file` (default: ./kiln.build.ts, or DIR/kiln.build.ts for a directory); prints `file:line:col: error TSxxxx: message` lines. */
export async function runCheck(file: string | undefined, io: CliIo): Promise<void> {
  let path = callerPath(io, file ?? DEFAULT_BUILD_FILE);
  const st = await stat(path).catch(() => undefined);
  if (st?.isDirectory() === true) path = join(path, DEFAULT_BUILD_FILE);
  else if (st === undefined) throw new CliError('KLN0805', `${file ?? DEFAULT_BUILD_FILE}: no such file`, 'kiln check [FILE.ts] (default: ./kiln.build.ts)');
  if (!/\.[cm]?ts$/.test(path)) await assertTsBuildFile(path, file ?? DEFAULT_BUILD_FILE);
  const diagnostics = checkBuildFile(path);
  const base = callerCwd(io);
  for (const d of diagnostics) io.stdout.write(`${formatCheckDiagnostic(d, base)}\n`);
  const errors = diagnostics.filter((d) => d.category === 'error').length;
  if (errors > 0) {
    io.stderr.write(`kiln check: ${errors} error${errors === 1 ? '' : 's'}\n`);
    throw new ReportedError(1, `${errors} type errors`);
  }
}

/**
 * A build file without a `.ts` name is kiln/ts only with a `// syntax=kiln/ts` first line, as
 * `kiln build` picks its frontend; anything else (a Dockerfile, a project.toml) would come out as
 * a page of TypeScript errors about its syntax.
 */
async function assertTsBuildFile(path: string, given: string): Promise<void> {
  const fh = await open(path, 'r');
  const head = Buffer.alloc(4096);
  const { bytesRead } = await fh.read(head, 0, head.length, 0).finally(() => fh.close());
  const syntax = detectSyntax(head.subarray(0, bytesRead).toString('utf8'));
  if (syntax?.ref === TS_FRONTEND) return;
  throw new CliError(
    'KLN0805',
    `${given} is not a kiln/ts build file (${syntax === undefined ? 'not named .ts, no // syntax=kiln/ts first line' : `its syntax is ${syntax.ref}`})`,
    'kiln check type-checks FILE.ts or a file whose first line is // syntax=kiln/ts; a Dockerfile is checked with kiln build --check',
  );
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
