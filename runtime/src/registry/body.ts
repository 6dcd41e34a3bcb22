/**
 * A response body read into memory, but no more than `limit` bytes: `undefined` (and the rest of
 * the body cancelled) when it is longer. Registries are not trusted to send what they announced.
 */
export async function readLimited(res: Response, limit: number): Promise<Buffer | undefined> {
  if (res.body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return Buffer.concat(chunks);
      n += value.length;
      if (n > limit) return undefined;
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
