import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { digestOf, parseDigest } from './digest.js';
import { ContentStore } from './store.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-content-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function* chunked(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) {
    await new Promise((r) => setImmediate(r));
    yield data.subarray(i, i + size);
  }
}

describe('ContentStore', () => {
  test('ingest streams, verifies and stores under blobs/sha256/<hex>', async () => {
    const store = await ContentStore.open(root);
    const data = randomBytes(300_000);
    const expected = parseDigest(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    const info = await store.ingest(chunked(data, 7000), { expected, expectedSize: data.length });
    expect(info).toEqual({ digest: expected, size: data.length });
    expect(store.blobPath(expected)).toBe(join(root, 'content', 'blobs', 'sha256', expected.slice(7)));
    expect(Buffer.compare(await store.readBlob(expected), data)).toBe(0);
    const part: Buffer[] = [];
    for await (const c of await store.readStream(expected, { start: 10, end: 19 })) part.push(c as Buffer);
    expect(Buffer.concat(part)).toEqual(data.subarray(10, 20));
    expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
  });

  test('a digest mismatch stores nothing and leaves no temp file', async () => {
    const store = await ContentStore.open(root);
    const wrong = digestOf('something else');
    await expect(store.ingest(chunked(Buffer.from('hello world'), 3), { expected: wrong })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(await store.has(wrong)).toBe(false);
    expect(await store.has(digestOf('hello world'))).toBe(false);
    expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
    await expect(store.ingest(Buffer.from('abc'), { expectedSize: 4 })).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
  });

  test('a writer coalesces small chunks into one reused buffer: bytes copied at write time, digest() tracks them', async () => {
    const store = await ContentStore.open(root);
    // 3 MiB + a bit in pieces that straddle the 1 MiB coalescing boundary, 5-byte headers between.
    const data = randomBytes(3 * (1 << 20) + 12345);
    const w = await store.openWriter();
    const scratch = Buffer.alloc(65535);
    for (let off = 0, i = 0; off < data.length; i++) {
      const n = Math.min(i % 2 === 0 ? 5 : 65535, data.length - off);
      // The caller reuses its buffer after each write: the stored bytes must be those at write time.
      data.copy(scratch, 0, off, off + n);
      await w.write(scratch.subarray(0, n));
      scratch.fill(0xee);
      off += n;
      if (off === 1 << 20 || i === 100) expect(w.digest()).toBe(digestOf(data.subarray(0, off)));
    }
    expect(w.digest()).toBe(digestOf(data));
    const info = await w.commit(digestOf(data), data.length);
    expect(info).toEqual({ digest: digestOf(data), size: data.length });
    expect(Buffer.compare(await store.readBlob(info.digest), data)).toBe(0);
  });

  test('concurrent writers of the same blob all succeed with identical bytes', async () => {
    const store = await ContentStore.open(root);
    const data = randomBytes(1 << 20);
    const d = digestOf(data);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.ingest(chunked(data, 4096 * (i + 1)))));
    expect(new Set(results.map((r) => r.digest))).toEqual(new Set([d]));
    expect(digestOf(await store.readBlob(d))).toBe(d);
    expect(await store.usage()).toEqual({ blobs: 1, bytes: data.length });
    expect(await readdir(join(root, 'content', 'ingest'))).toEqual([]);
  });

  test('a killed writer leaves only a temp file that is never listed and is cleaned up', async () => {
    const store = await ContentStore.open(root);
    const ingest = join(root, 'content', 'ingest');
    // A real process writes a temp file the way BlobWriter names them, then is SIGKILLed mid-write.
    const child = spawn(process.execPath, [
      '-e',
      `const fs=require('fs');const p=${JSON.stringify(ingest)}+'/'+process.pid+'-deadbeef.tmp';fs.writeFileSync(p,'partial');console.log('ready');setInterval(()=>fs.appendFileSync(p,'x'),5);`,
    ]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect((await readdir(ingest)).length).toBe(1);
    const listed: string[] = [];
    for await (const b of store.walk()) listed.push(b.digest);
    expect(listed).toEqual([]);
    // Our own live temp files are kept.
    await writeFile(join(ingest, `${process.pid}-live.tmp`), 'x');
    expect(await store.cleanupIngest()).toBe(1);
    expect(await readdir(ingest)).toEqual([`${process.pid}-live.tmp`]);
    // Re-opening the store also cleans dead writers' files.
    await writeFile(join(ingest, '999999999-x.tmp'), 'x');
    await ContentStore.open(root);
    expect(await readdir(ingest)).toEqual([`${process.pid}-live.tmp`]);
  });

  test('has / info / delete / walk', async () => {
    const store = await ContentStore.open(root);
    const a = await store.writeBlob(Buffer.from('a'));
    const b = await store.writeBlob(Buffer.from('bb'));
    expect(await store.has(a.digest)).toBe(true);
    expect((await store.info(b.digest)).size).toBe(2);
    const all: string[] = [];
    for await (const x of store.walk()) all.push(x.digest);
    expect(all.sort()).toEqual([a.digest, b.digest].sort());
    expect(await store.delete(a.digest)).toBe(true);
    expect(await store.delete(a.digest)).toBe(false);
    await expect(store.info(a.digest)).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND' });
    await expect(store.readBlob(a.digest)).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND' });
    expect(() => parseDigest('sha256:XYZ')).toThrow(expect.objectContaining({ code: 'DIGEST_INVALID' }));
  });

  test('an existing blob is not re-read', async () => {
    const store = await ContentStore.open(root);
    const x = await store.writeBlob(Buffer.from('hello'));
    let pulled = 0;
    async function* src(): AsyncIterable<Uint8Array> {
      pulled++;
      yield Buffer.from('hello');
    }
    expect(await store.ingest(src(), { expected: x.digest })).toEqual(x);
    expect(pulled).toBe(0);
  });
});
