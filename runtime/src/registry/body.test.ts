import { Readable } from 'node:stream';
import { expect, test } from 'vitest';
import { readLimited } from './body.js';

/** A Response whose body is only async-iterable (as `kiln llb`'s node:http fetch gives), with a cancel that records. */
function iterableResponse(chunks: readonly string[]): { res: Response; destroyed: () => boolean } {
  const msg = Readable.from(chunks.map((c) => Buffer.from(c)));
  const body = { cancel: async () => void msg.destroy(), [Symbol.asyncIterator]: () => (msg as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]() };
  return { res: { body } as unknown as Response, destroyed: () => msg.destroyed };
}

test('reads a fetch body (a web stream) and an async-iterable one alike, up to the limit', async () => {
  expect((await readLimited(new Response('hello world'), 64))?.toString()).toBe('hello world');
  expect(await readLimited(new Response('hello world'), 5)).toBeUndefined();
  const ok = iterableResponse(['hel', 'lo']);
  expect((await readLimited(ok.res, 64))?.toString()).toBe('hello');
  // Too long: undefined, and the rest of the body is not read (the stream is ended).
  const long = iterableResponse(['aaaa', 'bbbb', 'cccc']);
  expect(await readLimited(long.res, 6)).toBeUndefined();
  expect(long.destroyed()).toBe(true);
});
