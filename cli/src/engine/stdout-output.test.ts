import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect, test } from 'vitest';
import { parseOutputs } from './stdout-output.js';

const pipe = { write: () => true, isTTY: false };

test('-o - is type=tar to a private temporary file; other outputs are parsed as given', async () => {
  const r = await parseOutputs(['-', 'type=local,dest=out'], pipe);
  try {
    expect(r.specs).toEqual([
      { type: 'tar', dest: r.stdout?.file },
      { type: 'local', dest: 'out' },
    ]);
    expect(existsSync(dirname(r.stdout?.file ?? '/nonexistent/x'))).toBe(true);
  } finally {
    await r.stdout?.remove();
  }
  expect(existsSync(dirname(r.stdout?.file ?? '/'))).toBe(false);
});

test('dest=- keeps the other attributes (type=oci, name=, compression=)', async () => {
  const r = await parseOutputs(['type=oci,dest=-,name=a:1,compression=zstd'], pipe);
  try {
    expect(r.specs[0]).toMatchObject({ type: 'oci', tar: true, names: ['a:1'], compression: 'zstd', dest: r.stdout?.file });
  } finally {
    await r.stdout?.remove();
  }
});

test.for([
  ['type=local,dest=-', 'type=local cannot write to stdout'],
  ['type=oci,dest=-,tar=false', 'cannot write to stdout'],
])('%s is refused', async ([spec, message]) => {
  await expect(parseOutputs([spec as string], pipe)).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining(message) });
});

test('two outputs to stdout, or an archive to a terminal, are refused', async () => {
  await expect(parseOutputs(['-', 'type=docker,dest=-'], pipe)).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('only one output') });
  await expect(parseOutputs(['type=tar,dest=-'], { write: () => true, isTTY: true })).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining('terminal') });
});
