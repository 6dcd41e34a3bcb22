import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, test } from 'vitest';
import { CacheStore } from '@kiln/solver';
import type { CliIo } from '../io.js';
import type { KilnEngine } from '../engine/engine.js';
import type { EngineSource } from '../engine/lease.js';
import { diskUsage, registerDu } from './du.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function du(root: string, engines?: EngineSource): Promise<string> {
  let out = '';
  const io: CliIo = { stdin: (async function* () {})(), stdout: { write: (c: string | Uint8Array) => (out += String(c)) }, stderr: { write: () => true }, env: {}, ...(engines === undefined ? {} : { engines, remote: true }) };
  const program = new Command().exitOverride();
  registerDu(program, io);
  await program.parseAsync(['node', 'kiln', 'du', '--root', root]);
  return out;
}

describe('kiln du', () => {
  test('served by kiln daemon: what its running builds use is not reclaimable (BuildKit: InUse)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-du-'));
    dirs.push(root);
    // The daemon's open store: a build of the daemon leases one of the two snapshots.
    const store = CacheStore.open({ path: join(root, 'cache', 'solver.db') });
    try {
      store.save('k1', [], { id: 'r1', snapshot: 'snap-used', size: 3000, description: 'RUN used' });
      store.save('k2', [], { id: 'r2', snapshot: 'snap-free', size: 2000, description: 'RUN free' });
      const release = store.lease('snap-used');
      const engines: EngineSource = { keepsOpen: true, open: async () => ({ root, cache: store }) as unknown as KilnEngine };
      const out = await du(root, engines);
      expect(out).toMatch(/snap-used\s+regular\s+false\s+3kB/);
      expect(out).toMatch(/snap-free\s+regular\s+true\s+2kB/);
      expect(out).toContain('Reclaimable:\t2kB\nTotal:\t\t5kB\n');
      release();
      expect(await du(root, engines)).toContain('Reclaimable:\t5kB\nTotal:\t\t5kB\n');
    } finally {
      store.close();
    }
  });

  test('in its own process: every record is listed from the database', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-du-'));
    dirs.push(root);
    const store = CacheStore.open({ path: join(root, 'cache', 'solver.db') });
    store.save('k1', [], { id: 'r1', snapshot: 'snap-a', size: 3000, description: 'RUN a' });
    store.close();
    expect(await du(root)).toContain('Reclaimable:\t3kB\nTotal:\t\t3kB\n');
  });
});

test('a root under /proc is refused at once (typo tour 4: the store\'s recursive mkdir never returned)', async () => {
  await expect(diskUsage('/proc/kiln-typo-tour')).rejects.toMatchObject({ code: 'KLN0707', message: expect.stringContaining('cannot use the kiln root /proc/kiln-typo-tour') });
});
