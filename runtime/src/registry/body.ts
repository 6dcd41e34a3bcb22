/**
 * A response body read into memory, but no more than `limit` bytes: `undefined` (and the rest of
 * the body cancelled) when it is longer. Registries are not trusted to send what they announced.
 * The body is read as an async iterable: fetch's web stream, or the node:http body `kiln llb`'s
 * lighter fetch gives (which has no `getReader`).
 */
export async function readLimited(res: Response, limit: number): Promise<Buffer | undefined> {
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let n = 0;
  // Leaving the loop early (too long, or a failed read) ends the iterator, which cancels the body.
  for await (const value of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += value.length;
    if (n > limit) return undefined;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
