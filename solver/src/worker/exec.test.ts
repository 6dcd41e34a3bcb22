import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { CacheSharingOpt } from '@kiln/llb-core';
import { CacheMounts } from './cache-mounts.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('CacheMounts sharing modes', () => {
  test('shared: concurrent users get the same directory; created only the first time', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-cm-'));
    dirs.push(root);
    const cm = new CacheMounts(root);
    const a = await cm.acquire('go-build', CacheSharingOpt.SHARED);
    const b = await cm.acquire('go-build', CacheSharingOpt.SHARED);
    expect(a.dir).toBe(b.dir);
    expect([a.created, b.created]).toEqual([true, false]);
    writeFileSync(join(a.dir, 'x'), 'from a');
    expect(existsSync(join(b.dir, 'x'))).toBe(true);
    await a.release();
    await b.release();
  });

  test('private: a concurrent user gets a fresh directory that is discarded', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-cm-'));
    dirs.push(root);
    const cm = new CacheMounts(root);
    const a = await cm.acquire('apt', CacheSharingOpt.PRIVATE);
    writeFileSync(join(a.dir, 'state'), 'a');
    const b = await cm.acquire('apt', CacheSharingOpt.PRIVATE);
    expect(b.dir).not.toBe(a.dir);
    expect(existsSync(join(b.dir, 'state'))).toBe(false);
    await b.release();
    expect(existsSync(b.dir)).toBe(false);
    await a.release();
    const c = await cm.acquire('apt', CacheSharingOpt.PRIVATE);
    expect(c.dir).toBe(a.dir); // free again: the persistent directory
    await c.release();
  });

  test('locked: a second user waits until the first releases', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-cm-'));
    dirs.push(root);
    const cm = new CacheMounts(root);
    const order: string[] = [];
    const a = await cm.acquire('npm', CacheSharingOpt.LOCKED);
    const bP = cm.acquire('npm', CacheSharingOpt.LOCKED).then((b) => {
      order.push('b acquired');
      return b;
    });
    await new Promise((r) => setTimeout(r, 50));
    order.push('a releasing');
    await a.release();
    const b = await bP;
    expect(order).toEqual(['a releasing', 'b acquired']);
    expect(b.dir).toBe(a.dir);
    await b.release();
  });

  test('other processes count: a live foreign user makes locked wait and private go elsewhere', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiln-cm-'));
    dirs.push(root);
    const cm = new CacheMounts(root, { pollMs: 20 });
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const dir = cm.dirOf('shared-id');
      mkdirSync(`${dir}.users`, { recursive: true });
      writeFileSync(join(`${dir}.users`, `${other.pid}-foreign`), '');
      const priv = await cm.acquire('shared-id', CacheSharingOpt.PRIVATE);
      expect(priv.dir).not.toBe(dir);
      await priv.release();
      let got = false;
      const lockedP = cm.acquire('shared-id', CacheSharingOpt.LOCKED).then((l) => {
        got = true;
        return l;
      });
      await new Promise((r) => setTimeout(r, 150));
      expect(got).toBe(false);
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
      const locked = await lockedP;
      expect(locked.dir).toBe(dir);
      await locked.release();
    } finally {
      other.kill('SIGKILL');
    }
  });
});
