import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';

// A kiln process killed with SIGKILL while a snapshot is mounted (or while it diffs one for a
// layer) leaves the mount behind; the next process's recoverMounts() removes it, and leaves the
// mounts of live processes alone.

const runtimeDist = new URL('../../dist/index.js', import.meta.url).pathname;

async function mountpoints(prefix: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(prefix));
}

test('recoverMounts removes the mounts of a killed process, not those of a live one', async () => {
  if (!existsSync(runtimeDist)) throw new Error('build first: npm run build (the child process runs runtime/dist)');
  const root = await mkdtemp(join(tmpdir(), 'kiln-snaprec-'));
  try {
    const s = new LocalSnapshotter({ root });
    await s.prepare('base-a');
    await writeFile(join((await s.mounts('base-a'))[0]?.source ?? '', 'f'), 'base');
    await s.commit('base', 'base-a');
    await s.prepare('child-a', 'base');
    await s.commit('child', 'child-a');
    // Ours, live: must survive.
    const mine = await s.mount('child');

    // Another process mounts the same snapshot, says where, and is killed.
    const script = `import { LocalSnapshotter } from ${JSON.stringify(runtimeDist)};
      const s = new LocalSnapshotter({ root: ${JSON.stringify(root)} });
      const m = await s.mount('child');
      console.log(m.path);
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const theirs = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
      child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await mountpoints(theirs)).toEqual([theirs]);

    expect(await new LocalSnapshotter({ root }).recoverMounts()).toBe(1);
    expect(await mountpoints(theirs)).toEqual([]);
    expect(existsSync(theirs)).toBe(false);
    expect(await mountpoints(mine.path)).toEqual([mine.path]);
    expect(await readFile(join(mine.path, 'f'), 'utf8')).toBe('base');
    await mine.release();
    expect(await mountpoints(join(root, 'mounts'))).toEqual([]);
  } finally {
    for (const mp of (await mountpoints(root)).reverse()) spawn('umount', ['-l', mp]);
    await rm(root, { recursive: true, force: true });
  }
}, 60_000);

test('recoverMounts removes the views of a process killed while it diffed a snapshot into a layer', async () => {
  if (!existsSync(runtimeDist)) throw new Error('build first: npm run build (the child process runs runtime/dist)');
  const root = await mkdtemp(join(tmpdir(), 'kiln-snaprec-'));
  try {
    const s = new LocalSnapshotter({ root });
    await s.prepare('base-a');
    await writeFile(join((await s.mounts('base-a'))[0]?.source ?? '', 'f'), 'base');
    await s.commit('base', 'base-a');
    await s.prepare('child-a', 'base');
    const m = await s.mount('child-a');
    await writeFile(join(m.path, 'g'), 'child');
    await m.release();
    await s.commit('child', 'child-a');

    // Another process starts the layer diff of 'child' (an export, a cache export), which mounts
    // views of the snapshot and its parent, and is killed before it ends.
    const script = `import { LocalSnapshotter, changes } from ${JSON.stringify(runtimeDist)};
      import { join } from 'node:path';
      const s = new LocalSnapshotter({ root: ${JSON.stringify(root)} });
      const it = changes(await s.diffSource('child'), join(${JSON.stringify(root)}, 'mounts'));
      await it.next();
      console.log('diffing');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(await mountpoints(join(root, 'mounts'))).toHaveLength(2);

    expect(await new LocalSnapshotter({ root }).recoverMounts()).toBe(2);
    expect(await mountpoints(root)).toEqual([]);
    expect(await readdir(join(root, 'mounts'))).toEqual([]);
  } finally {
    for (const mp of (await mountpoints(root)).reverse()) spawn('umount', ['-l', mp]);
    await rm(root, { recursive: true, force: true });
  }
}, 60_000);
