import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { decodeDefinition, definitionToDot, definitionToJsonLines, encodeDefinition } from '@kiln/llb-core';
import { CliError, callerPath, readAll, type CliIo } from '../io.js';

/** Output formats of `kiln dump-llb`. */
export type DumpLlbFormat = 'json' | 'dot' | 'pb';

/** Renders a marshaled Definition in `format` (throws LlbError on bad input). */
export function dumpLlb(bytes: Uint8Array, format: DumpLlbFormat): string | Uint8Array {
  const def = decodeDefinition(bytes);
  switch (format) {
    case 'json':
      return definitionToJsonLines(def);
    case 'dot':
      return definitionToDot(def);
    case 'pb':
      return encodeDefinition(def);
  }
}

/** Registers `kiln dump-llb [FILE|-] [--format json|dot|pb]`. */
export function registerDumpLlb(program: Command, io: CliIo): void {
  program
    .command('dump-llb')
    .description('print a marshaled LLB definition like `buildctl debug dump-llb` (JSON lines, DOT, or re-marshaled pb)')
    .argument('[file]', 'definition file, or - for stdin (default)')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'dot', 'pb']).default('json'))
    .option('--dot', 'same as --format dot')
    .action(async (file: string | undefined, opts: { format: DumpLlbFormat; dot?: boolean }) => {
      let bytes: Uint8Array;
      if (file === undefined || file === '-') {
        bytes = await readAll(io.stdin);
      } else {
        try {
          bytes = await readFile(callerPath(io, file));
        } catch (e) {
          const reason = (e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message;
          throw new CliError('KLN_CLI_READ', `cannot read ${file}: ${reason}`);
        }
      }
      const out = dumpLlb(bytes, opts.dot ? 'dot' : opts.format);
      io.stdout.write(out);
    });
}
