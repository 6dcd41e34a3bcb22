import { Command } from 'commander';
import { describe, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { registerDumpLlb } from './dump-llb.js';
import { solveCommand } from './solve.js';

// `kiln solve` and `kiln dump-llb` without a file read LLB bytes from stdin: on a terminal they
// waited for Ctrl-D, which looked like a hang. A stdin that never ends would fail these tests.
function terminalIo(): CliIo & { err: () => string } {
  const err: string[] = [];
  const never = (async function* (): AsyncGenerator<Uint8Array> {
    await new Promise<never>(() => undefined);
  })();
  return {
    stdin: Object.assign(never, { isTTY: true }),
    stdout: { write: () => true },
    stderr: { write: (c: string | Uint8Array) => err.push(Buffer.from(c).toString()) },
    err: () => err.join(''),
  };
}

describe('LLB from a terminal stdin', () => {
  test('kiln solve refuses it at once, naming what to do', async () => {
    const io = terminalIo();
    await expect(solveCommand(undefined, { output: [], local: [], secret: [], ssh: [], allow: [], tag: [], progress: 'plain', cache: true }, io)).rejects.toMatchObject({ exitCode: 1 });
    expect(io.err()).toContain('error KLN0706: kiln solve reads the LLB definition from standard input, which is a terminal');
    expect(io.err()).toContain('hint: pipe one in');
  });

  test('kiln dump-llb refuses it at once', async () => {
    const program = new Command().exitOverride();
    registerDumpLlb(program, terminalIo());
    await expect(program.parseAsync(['dump-llb'], { from: 'user' })).rejects.toMatchObject({ code: 'KLN_CLI_READ', message: expect.stringContaining('which is a terminal') });
  });
});
