import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KilnDaemon, removeStaleSocket } from './server.js';

describe('kiln daemon --addr naming something that is not a socket', () => {
  let dir: string;
  const listen = (socket: string): Promise<KilnDaemon> => KilnDaemon.listen({ root: join(dir, 'root'), socket, run: () => Promise.resolve(0) });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-sock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a regular file and leaves it as it was (it was deleted)', async () => {
    const file = join(dir, 'kiln.toml');
    await writeFile(file, 'mine\n');
    await expect(listen(file)).rejects.toMatchObject({ code: 'KLN0709', message: `cannot listen on ${file}: it is a regular file, not a socket` });
    expect(await readFile(file, 'utf8')).toBe('mine\n');
  });

  it('refuses a directory (was EADDRINUSE, "address already in use")', async () => {
    const sub = join(dir, 'sub');
    await mkdir(sub);
    await expect(listen(sub)).rejects.toMatchObject({ code: 'KLN0709', message: expect.stringContaining('it is a directory') });
    expect((await stat(sub)).isDirectory()).toBe(true);
  });

  it('refuses a socket path under /proc at once (its recursive mkdir never returned)', async () => {
    await expect(listen('/proc/kiln-typo-tour/kilnd.sock')).rejects.toMatchObject({ code: 'KLN0709', message: expect.stringContaining('cannot listen on /proc/kiln-typo-tour/kilnd.sock: cannot create /proc/kiln-typo-tour') });
  });

  it('removes a socket (a dead daemon left it) and accepts a path that does not exist', async () => {
    const sock = join(dir, 'stale.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      await removeStaleSocket(sock);
      await expect(stat(sock)).rejects.toMatchObject({ code: 'ENOENT' });
      await removeStaleSocket(join(dir, 'missing.sock'));
    } finally {
      server.close();
    }
  });
});
