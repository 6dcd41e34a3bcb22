import type { Readable } from 'node:stream';
import { expect, test } from 'vitest';
import { spawnViaHelper } from '../../src/executor/process-helper.js';

// Arguments reach the program as given: each is hex on the request line, so an empty one is an
// empty field, and a trailing empty field was dropped by perl's split.

async function text(r: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

test('empty arguments, last ones included, and "-" arguments reach the program', async () => {
  const cases: readonly (readonly string[])[] = [['a', ''], ['', 'b'], ['', ''], ['-', '', '-'], ['']];
  for (const args of cases) {
    // with and without a cleanup program (sent after " - " on the same line)
    for (const onOrphan of [undefined, ['true', '']]) {
      const p = spawnViaHelper('/bin/sh', ['-c', 'printf "[%s]" "$@"', 'sh', ...args], onOrphan === undefined ? {} : { onOrphan });
      expect(p).toBeDefined();
      const [out, exit] = await Promise.all([text(p?.stdout as Readable), p?.exit]);
      expect(out, JSON.stringify(args)).toBe(args.map((a) => `[${a}]`).join(''));
      expect(exit).toEqual({ code: 0, signal: null });
    }
  }
});
