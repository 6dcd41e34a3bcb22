import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { decodeDefinition, definitionToDot, definitionToJsonLines, encodeDefinition, type Definition } from '@kiln/llb-core';
import { CliError, callerPath, readAll, stdinIsTerminal, type CliIo } from '../io.js';

/** Output formats of `kiln dump-llb`. */
export type DumpLlbFormat = 'json' | 'dot' | 'pb';

/**
 * Renders a marshaled Definition in `format`. Input that is not one is a CliError with the
 * LlbError's code and a hint: text (a Dockerfile, a kiln.build.ts) is what `kiln llb` reads.
 */
export function dumpLlb(bytes: Uint8Array, format: DumpLlbFormat): string | Uint8Array {
  let def: Definition;
  try {
    def = decodeDefinition(bytes);
  } catch (cause) {
    const text = isText(bytes);
    const code = (cause as { code?: unknown }).code;
    throw new CliError(
      typeof code === 'string' ? code : 'KLN0706',
      `${text ? 'the input is text, not a marshaled LLB Definition: ' : ''}${(cause as Error).message}`,
      text ? 'dump-llb reads pb bytes; for a Dockerfile or kiln.build.ts run kiln llb CONTEXT (or kiln llb CONTEXT --format pb | kiln dump-llb)' : 'dump-llb reads pb bytes, as kiln llb --format pb or llb.Definition.ToPB().Marshal() write them',
    );
  }
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
        if (stdinIsTerminal(io)) throw new CliError('KLN_CLI_READ', 'kiln dump-llb reads a definition from standard input, which is a terminal', 'pipe one in (kiln llb . --format pb | kiln dump-llb) or pass a file: kiln dump-llb llb.pb');
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

/** Whether `bytes` look like text: valid UTF-8 without control bytes other than tab and newlines. */
function isText(bytes: Uint8Array): boolean {
  let s: string;
  try {
    s = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  return !/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(s);
}
