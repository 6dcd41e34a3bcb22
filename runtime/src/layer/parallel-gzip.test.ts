import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { ParallelGzip } from './parallel-gzip.js';

async function compress(input: Buffer, opts: ConstructorParameters<typeof ParallelGzip>[0]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // feed in odd-sized chunks to exercise block splitting
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += 77_777) parts.push(input.subarray(i, i + 77_777));
  for await (const c of Readable.from(parts).pipe(new ParallelGzip(opts))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('ParallelGzip', () => {
  const text = Buffer.from('kiln layer '.repeat(300_000));
  const random = randomBytes(3 << 20);
  const mixed = Buffer.concat([text, random, text.subarray(0, 12345)]);

  test.for([
    ['empty', Buffer.alloc(0)],
    ['one small block', Buffer.from('hello')],
    ['compressible, many blocks', text],
    ['mixed random and text', mixed],
  ] as const)('%s round-trips through gzip -d', async ([, input]) => {
    const gz = await compress(input, { blockSize: 256 * 1024, workers: 2 });
    const back = execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 1 << 30 });
    expect(back.equals(input)).toBe(true);
  });

  test('compresses text and stores random blocks', async () => {
    const gzText = await compress(text, { blockSize: 256 * 1024 });
    expect(gzText.length).toBeLessThan(text.length / 20);
    const gzRandom = await compress(random, { blockSize: 256 * 1024 });
    // stored blocks: a few bytes of framing per 64 KiB, never much larger than the input
    expect(gzRandom.length).toBeLessThan(random.length * 1.002);
    expect(gzRandom.length).toBeGreaterThan(random.length);
  });

  test('output is deterministic for any worker count', async () => {
    const a = await compress(mixed, { blockSize: 128 * 1024, workers: 1 });
    const b = await compress(mixed, { blockSize: 128 * 1024, workers: 3 });
    expect(a.equals(b)).toBe(true);
  });
});
