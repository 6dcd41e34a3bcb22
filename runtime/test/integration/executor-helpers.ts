import { execFileSync } from 'node:child_process';
import { createReadStream, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { LocalSnapshotter, RuncExecutor, unpackLayer } from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';

/** The busybox layer of the conformance data (busybox-static plus its links). */
export const BUSYBOX_LAYER = new URL(
  '../../../../shared/conformance/images/busybox/blobs/sha256/a8643eceac13109eadf57ed00d443b40e93c77a7a1186725487c73f5471d1b9a',
  import.meta.url,
).pathname;

/** A temp kiln root with a committed `busybox` snapshot and a runc executor (set in beforeAll). */
export interface ExecutorSandbox {
  readonly root: string;
  readonly snapshotter: LocalSnapshotter;
  readonly executor: RuncExecutor;
  /** runc state, bundles and scratch dirs still there (none once every run or container is done). */
  leftovers(): Promise<string[]>;
}

/**
 * Registers the file's beforeAll/afterAll: fails with the install command without runc, and at
 * the end checks that nothing stays mounted under the root or the runtime dir, then removes both.
 */
export function useExecutorSandbox(prefix: string): ExecutorSandbox {
  let root = '';
  let snapshotter: LocalSnapshotter | undefined;
  let executor: RuncExecutor | undefined;
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('the executor sandbox is set up in beforeAll');
    return v;
  };
  beforeAll(async () => {
    try {
      execFileSync('runc', ['--version']);
    } catch {
      throw new Error('runc is required for these tests: apt-get install runc');
    }
    root = await mkdtemp(join(tmpdir(), prefix));
    snapshotter = new LocalSnapshotter({ root });
    executor = new RuncExecutor({ root });
    await unpackLayer(snapshotter, 'busybox', undefined, createReadStream(BUSYBOX_LAYER));
  });
  afterAll(async () => {
    expect(await mountsUnder(root)).toEqual([]);
    if (executor !== undefined) expect(await mountsUnder(executor.runtimeDir)).toEqual([]);
    await rm(root, { recursive: true, force: true });
    if (executor !== undefined) await rm(executor.runtimeDir, { recursive: true, force: true });
  });
  return {
    get root() {
      return root;
    },
    get snapshotter() {
      return ready(snapshotter);
    },
    get executor() {
      return ready(executor);
    },
    async leftovers() {
      const rt = ready(executor).runtimeDir;
      const dirs = [join(rt, 'runc'), join(rt, 'bundles'), join(root, 'executor')];
      return (await Promise.all(dirs.map((d) => readdir(d).catch(() => [] as string[])))).flat();
    },
  };
}

/**
 * The compiled runtime's entry (`dist/index.js` as a file URL), brought up to date first, for a
 * test that runs the runtime in another process (one it then kills): incremental, one tsc at a
 * time, as the CLI tests build.
 */
export function compiledRuntime(): string {
  const repo = new URL('../../..', import.meta.url).pathname;
  execFileSync('flock', ['/tmp/kiln-cli-tsc.lock', process.execPath, 'node_modules/typescript/bin/tsc', '-b', 'runtime'], { cwd: repo, stdio: 'inherit' });
  return new URL('../../dist/index.js', import.meta.url).href;
}

/** A /proc (or any) file's text; empty when it cannot be read (the process is gone). */
export function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Pids of processes with `arg` as one of their arguments. */
export function processesWithArg(arg: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => readOrEmpty(`/proc/${name}/cmdline`).split('\0').includes(arg))
    .map(Number);
}

/** The process helpers (perl running the helper's script) among the children of `parent`. */
export function processHelpersOf(parent: number): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((p) => readOrEmpty(`/proc/${p}/stat`).replace(/^.*\) \S+ /s, '').split(' ')[0] === String(parent))
    .filter((p) => readOrEmpty(`/proc/${p}/cmdline`).includes('A handler (not IGNORE)'));
}
