import { existsSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { LocalSnapshotter } from './local.js';
import { ownProcessStart, processStart } from './process-start.js';

// What a kiln process killed mid-build leaves in the snapshotter, and what a sweep may take.
// Real snapshots on disk; a "killed" creator is simulated by naming a pid no process can have in
// the snapshot's meta (above the default pid_max), as the process would have written it.

const DEAD = 2 ** 22 + 17;
const TRANSIENT = /^(?:exec|file|merge|diff|failed)-/;

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-orphans-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function metaFile(id: string): string {
  const dir = readlinkSync(join(root, 'snapshots', 'by-id', id)).replace(/^\.\.\//, '');
  return join(root, 'snapshots', dir, 'meta.json');
}

/**
 * Rewrites the creator (and optionally the creation time) a snapshot's meta names, with the start
 * time that process would have written (`pidStart` overrides it; none for a pid no process has).
 */
function setCreator(id: string, pid: number | undefined, createdAt?: string, pidStart?: string): void {
  const m = JSON.parse(readFileSync(metaFile(id), 'utf8')) as Record<string, unknown>;
  if (pid === undefined) delete m['pid'];
  else m['pid'] = pid;
  const start = pidStart ?? (pid === undefined ? undefined : processStart(pid));
  if (start === undefined) delete m['pidStart'];
  else m['pidStart'] = start;
  if (createdAt !== undefined) m['createdAt'] = createdAt;
  writeFileSync(metaFile(id), JSON.stringify(m));
}

async function committed(s: LocalSnapshotter, id: string, parent?: string, file?: string): Promise<void> {
  await s.prepare(`${id}.tmp`, parent);
  if (file !== undefined) {
    const m = await s.mount(`${id}.tmp`);
    try {
      await writeFile(join(m.path, file), file);
    } finally {
      await m.release();
    }
  }
  await s.commit(id, `${id}.tmp`);
}

/** A fresh snapshotter on the same root: reads metas from disk, as a new kiln process does. */
function reopen(): LocalSnapshotter {
  return new LocalSnapshotter({ root });
}

const rules = (owned: readonly string[] = []) => ({ transient: (id: string) => TRANSIENT.test(id), owned: (id: string) => owned.includes(id) });

describe('LocalSnapshotter.orphans', () => {
  test('the meta of a new snapshot names its creator, and a commit keeps it', async () => {
    const s = new LocalSnapshotter({ root });
    await s.prepare('exec-a');
    expect(JSON.parse(readFileSync(metaFile('exec-a'), 'utf8')).pid).toBe(process.pid);
    await s.commit('exec-b', 'exec-a');
    expect(JSON.parse(readFileSync(metaFile('exec-b'), 'utf8')).pid).toBe(process.pid);
  });

  test('active snapshots of a dead process go; those of live processes (this one, another) stay', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await s.prepare('exec-dead', 'layer-base');
    await s.prepare('container-dead', 'layer-base');
    await s.prepare('layer-x.unpack-1234', 'layer-base');
    await s.prepare('exec-mine', 'layer-base');
    await s.prepare('exec-other', 'layer-base');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      for (const id of ['exec-dead', 'container-dead', 'layer-x.unpack-1234', 'layer-base']) setCreator(id, DEAD);
      setCreator('exec-other', other.pid);
      const found = await reopen().orphans(rules());
      expect(found.map((o) => o.id).sort()).toEqual(['container-dead', 'exec-dead', 'layer-x.unpack-1234']);
      expect(found.every((o) => o.pid === DEAD && o.kind === 'active')).toBe(true);
    } finally {
      other.kill();
    }
  });

  test('committed: only transient kinds nothing owns go; fixed-id kinds, owned ones and what kept snapshots stack on stay', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await committed(s, 'exec-recorded-parent', 'layer-base', 'p');
    await committed(s, 'exec-recorded', 'exec-recorded-parent', 'r');
    await committed(s, 'exec-unrecorded', 'layer-base', 'u');
    await committed(s, 'failed-state', 'exec-unrecorded', 'f');
    await committed(s, 'local-ctx', undefined, 'ctx');
    await committed(s, 'file-under-active', 'layer-base', 'x');
    await s.prepare('exec-live-active', 'file-under-active');
    await committed(s, 'exec-old-unknown', 'layer-base');
    await committed(s, 'exec-new-unknown', 'layer-base');
    for (const id of ['layer-base', 'exec-recorded-parent', 'exec-recorded', 'exec-unrecorded', 'failed-state', 'local-ctx', 'file-under-active']) setCreator(id, DEAD);
    setCreator('exec-old-unknown', undefined, new Date(Date.now() - 2 * 3_600_000).toISOString());
    setCreator('exec-new-unknown', undefined);
    const found = await reopen().orphans(rules(['exec-recorded']));
    // The failed state stacks on the unrecorded result: it goes first.
    expect(found.map((o) => o.id)).toEqual(['exec-old-unknown', 'failed-state', 'exec-unrecorded']);
  });

  test('removeOrphans deletes ids and directories, children first; the rest still mounts', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await committed(s, 'exec-unrecorded', 'layer-base', 'u');
    await committed(s, 'failed-state', 'exec-unrecorded', 'f');
    await s.prepare('exec-active', 'failed-state');
    for (const id of ['layer-base', 'exec-unrecorded', 'failed-state', 'exec-active']) setCreator(id, DEAD);
    const dirs = ['exec-unrecorded', 'failed-state', 'exec-active'].map((id) => join(metaFile(id), '..'));
    const t = reopen();
    const removed = await t.removeOrphans(rules());
    expect(removed.map((o) => o.id)).toEqual(['exec-active', 'failed-state', 'exec-unrecorded']);
    for (const d of dirs) expect(existsSync(d)).toBe(false);
    expect((await t.list()).map((i) => i.id)).toEqual(['layer-base']);
    const m = await t.mount('layer-base');
    try {
      expect(readFileSync(join(m.path, 'base'), 'utf8')).toBe('base');
    } finally {
      await m.release();
    }
    expect(await t.orphans(rules())).toEqual([]);
  });

  test('a merge result that stays keeps the layers it stacks, also those of transient snapshots', async () => {
    const s = new LocalSnapshotter({ root });
    await s.init();
    expect(s.driver).toBe('overlay');
    await committed(s, 'layer-base', undefined, 'base');
    await committed(s, 'exec-a', 'layer-base', 'a');
    await committed(s, 'exec-b', 'layer-base', 'b');
    expect(await s.merge('merge-kept', ['exec-a', 'exec-b'])).toBeDefined();
    expect(await s.merge('merge-dropped', ['exec-b', 'exec-a'])).toBeDefined();
    const ids = (await s.list()).map((i) => i.id);
    for (const id of ids) setCreator(id, DEAD);
    const t = reopen();
    const removed = (await t.removeOrphans(rules(['merge-kept']))).map((o) => o.id);
    expect(removed).toContain('merge-dropped');
    expect(removed.some((id) => id.startsWith('merge-dropped.part-'))).toBe(true);
    const left = (await t.list()).map((i) => i.id);
    expect(left).toContain('merge-kept');
    expect(left).toContain('exec-a');
    expect(left).toContain('exec-b');
    const m = await t.mount('merge-kept');
    try {
      expect(readFileSync(join(m.path, 'a'), 'utf8')).toBe('a');
      expect(readFileSync(join(m.path, 'b'), 'utf8')).toBe('b');
    } finally {
      await m.release();
    }
    expect(await t.orphans(rules(['merge-kept']))).toEqual([]);
  });
});

describe('LocalSnapshotter.orphans: what a sweep cannot read or did not finish', () => {
  test('a snapshot whose meta cannot be read may stack on anything: committed candidates stay, actives still go', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await committed(s, 'exec-unrecorded', 'layer-base', 'u');
    // Recorded (owned) and stacked on the unrecorded result; its meta is unreadable right now
    // (torn, an I/O error, EMFILE): nothing tells the sweep that it stacks on exec-unrecorded.
    await committed(s, 'exec-recorded', 'exec-unrecorded', 'r');
    await s.prepare('exec-active', 'layer-base');
    for (const id of ['layer-base', 'exec-unrecorded', 'exec-recorded', 'exec-active']) setCreator(id, DEAD);
    writeFileSync(metaFile('exec-recorded'), '{"id":"exec-rec');
    const t = reopen();
    expect((await t.orphans(rules(['exec-recorded']))).map((o) => o.id)).toEqual(['exec-active']);
    expect((await t.removeOrphans(rules(['exec-recorded']))).map((o) => o.id)).toEqual(['exec-active']);
    expect(existsSync(join(metaFile('exec-unrecorded'), '..', 'fs', 'u'))).toBe(true);
    // An id whose directory is gone altogether (a link to nothing) holds nothing up.
    rmSync(join(metaFile('exec-recorded'), '..'), { recursive: true });
    expect((await reopen().orphans(rules(['exec-recorded']))).map((o) => o.id)).toEqual(['exec-unrecorded']);
  });

  test('a sweep killed mid-removal: the next sweep finishes the half-removed snapshots (id renamed away, files partly deleted)', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await committed(s, 'exec-unrecorded', 'layer-base', 'u');
    await s.prepare('exec-active', 'layer-base');
    await s.prepare('exec-live', 'layer-base');
    for (const id of ['layer-base', 'exec-unrecorded', 'exec-active']) setCreator(id, DEAD);
    const byId = join(root, 'snapshots', 'by-id');
    // What remove() did before the kill: the id renamed to its trash link, then part of the files
    // deleted (exec-active: its meta already, exec-unrecorded: nothing yet). exec-live is this
    // (live) process's own removal in progress: not touched.
    const half = (id: string): string => {
      const dir = join(metaFile(id), '..');
      renameSync(join(byId, id), join(byId, `.removing-${id}`));
      return dir;
    };
    const activeDir = half('exec-active');
    rmSync(join(activeDir, 'meta.json'));
    const unrecordedDir = half('exec-unrecorded');
    const liveDir = half('exec-live');
    const old = new Date(Date.now() - 2 * 3_600_000);
    // No meta left to name the creator: finished once the removal has stood still for an hour.
    utimesSync(activeDir, old, old);
    const t = reopen();
    await t.removeOrphans(rules());
    expect(readdirSync(byId).sort()).toEqual(['.removing-exec-live', 'layer-base']);
    expect(existsSync(activeDir)).toBe(false);
    expect(existsSync(unrecordedDir)).toBe(false);
    expect(existsSync(liveDir)).toBe(true);
  });
});

describe('LocalSnapshotter.orphans: a pid another process holds now', () => {
  test('this process\'s pid held by an earlier process (a daemon restarted as pid 1 of its container): its snapshots go, this one\'s stay', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await s.prepare('exec-earlier', 'layer-base');
    await committed(s, 'exec-earlier-result', 'layer-base', 'e');
    await s.prepare('exec-mine', 'layer-base');
    const own = ownProcessStart();
    expect(own).toMatch(/^[0-9a-f-]{36}:\d+$/);
    expect(JSON.parse(readFileSync(metaFile('exec-mine'), 'utf8')).pidStart).toBe(own);
    const earlier = `${(own as string).split(':')[0]}:1`;
    for (const id of ['exec-earlier', 'exec-earlier-result']) setCreator(id, process.pid, undefined, earlier);
    // Written by a kiln before start times were recorded: this process's own, as far as it can tell.
    await s.prepare('exec-no-start', 'layer-base');
    const m = JSON.parse(readFileSync(metaFile('exec-no-start'), 'utf8')) as Record<string, unknown>;
    delete m['pidStart'];
    writeFileSync(metaFile('exec-no-start'), JSON.stringify(m));
    expect((await reopen().orphans(rules())).map((o) => o.id)).toEqual(['exec-earlier', 'exec-earlier-result']);
  });

  test('a live pid keeps its snapshots even when it started at another time than the meta says (kept too long, never removed under a live creator)', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await s.prepare('exec-reused', 'layer-base');
    await s.prepare('exec-other', 'layer-base');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = other.pid as number;
      const real = processStart(pid) as string;
      expect(real).toMatch(/:\d+$/);
      setCreator('exec-other', pid);
      setCreator('exec-reused', pid, undefined, `${real.split(':')[0]}:1`);
      expect(await reopen().orphans(rules())).toEqual([]);
    } finally {
      other.kill();
    }
  });

  test('made in another pid namespace (a kiln in another container sharing the root): its pid says nothing here, kept', async () => {
    const s = new LocalSnapshotter({ root });
    await committed(s, 'layer-base', undefined, 'base');
    await s.prepare('exec-other-ns-dead-pid', 'layer-base');
    await s.prepare('exec-other-ns-my-pid', 'layer-base');
    await s.prepare('exec-this-ns-dead-pid', 'layer-base');
    const foreign = (id: string, pid: number): void => {
      setCreator(id, pid, undefined, `${(ownProcessStart() as string).split(':')[0]}:1`);
      const m = JSON.parse(readFileSync(metaFile(id), 'utf8')) as Record<string, unknown>;
      expect(m['pidNs']).toMatch(/^pid:\[\d+\]$/);
      m['pidNs'] = 'pid:[1]';
      writeFileSync(metaFile(id), JSON.stringify(m));
    };
    foreign('exec-other-ns-dead-pid', DEAD);
    foreign('exec-other-ns-my-pid', process.pid);
    setCreator('exec-this-ns-dead-pid', DEAD);
    expect((await reopen().orphans(rules())).map((o) => o.id)).toEqual(['exec-this-ns-dead-pid']);
  });
});
