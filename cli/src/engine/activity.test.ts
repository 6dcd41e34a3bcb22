import { spawn } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { RootActivity } from './activity.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-activity-'));
  await mkdir(join(root, 'engine'), { recursive: true });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const settled = async (p: Promise<unknown>): Promise<string> => {
  const r = await Promise.race([p.then(() => 'resolved', () => 'rejected'), new Promise<string>((res) => setTimeout(() => res('pending'), 100))]);
  return r;
};

test('builds of one process waiting for the lock (a prune or sweep holds it): one given up does not fail the others', async () => {
  // Another live process holds the root's prune lock.
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  const lock = join(root, 'engine', 'gc.lock');
  await writeFile(lock, String(holder.pid));
  const mark = join(root, 'engine', 'active', String(process.pid));
  try {
    const a = new RootActivity(root);
    const ctl = new AbortController();
    const first = a.begin(ctl.signal);
    const second = a.begin();
    first.catch(() => undefined);
    second.catch(() => undefined);
    expect(await settled(first)).toBe('pending');
    ctl.abort();
    expect(await settled(first)).toBe('rejected');
    // The other build still waits, then builds once the lock is free.
    expect(await settled(second)).toBe('pending');
    await unlink(lock);
    expect(await settled(second)).toBe('resolved');
    expect(existsSync(mark)).toBe(true);
    a.end();
    expect(existsSync(mark)).toBe(false);
  } finally {
    holder.kill();
  }
});

test('the only build waiting gives up: no mark is left once the lock frees (it would refuse every prune)', async () => {
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  const lock = join(root, 'engine', 'gc.lock');
  await writeFile(lock, String(holder.pid));
  const mark = join(root, 'engine', 'active', String(process.pid));
  try {
    const a = new RootActivity(root);
    const ctl = new AbortController();
    const only = a.begin(ctl.signal);
    only.catch(() => undefined);
    ctl.abort();
    expect(await settled(only)).toBe('rejected');
    await unlink(lock);
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(mark)).toBe(false);
    // And the next build marks as usual.
    await a.begin();
    expect(existsSync(mark)).toBe(true);
    a.end();
    expect(existsSync(mark)).toBe(false);
  } finally {
    holder.kill();
  }
});

test('a mark under this process\'s pid that it did not write (a daemon restarted as pid 1 of its container) is a killed build', async () => {
  const dir = join(root, 'engine', 'active');
  await mkdir(dir, { recursive: true });
  const mark = join(dir, String(process.pid));
  // Written in another pid namespace (a kiln in another container sharing the root, with the
  // same pid): maybe building right now, not a killed build; nor is an old mark saying nothing.
  for (const other of ['pid:[1]', '']) {
    await writeFile(mark, other);
    expect(new RootActivity(root).killedBuilds()).toBe(false);
  }
  await writeFile(mark, readlinkSync('/proc/self/ns/pid'));
  const a = new RootActivity(root);
  expect(a.killedBuilds()).toBe(true);
  let ran = false;
  await a.exclusive(async () => {
    ran = true;
  });
  expect(ran).toBe(true);
  expect(existsSync(mark)).toBe(false);
  expect(a.killedBuilds()).toBe(false);
  // Its own mark is no killed build, and refuses an exclusive run as before.
  await a.begin();
  expect(existsSync(mark)).toBe(true);
  expect(a.killedBuilds()).toBe(false);
  await expect(a.exclusive(async () => undefined)).rejects.toMatchObject({ code: 'KLN0708' });
  a.end();
  expect(existsSync(mark)).toBe(false);
});

test('a build mark written in another pid namespace (a kiln in another container) refuses a prune and is not a killed build', async () => {
  const mark = join(root, 'engine', 'active', '4000000');
  await mkdir(join(root, 'engine', 'active'), { recursive: true });
  await writeFile(mark, 'pid:[4026599999]'); // a pid not alive here, in a namespace that is not ours
  const activity = new RootActivity(root);
  expect(activity.killedBuilds()).toBe(false);
  let ran = false;
  await expect(activity.exclusive(async () => void (ran = true))).rejects.toThrow(/another pid namespace/);
  expect(ran).toBe(false);
  expect(existsSync(mark)).toBe(true);
  // Once its mark is removed (that container is gone), prune runs.
  await unlink(mark);
  await activity.exclusive(async () => void (ran = true));
  expect(ran).toBe(true);
});
