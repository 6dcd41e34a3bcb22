/**
 * End-to-end setup for kiln/ts builds, following cli/test/integration/build-helpers.ts: the real
 * CLI (`node cli/bin/kiln.js`) after `npm run build`, a temp kiln root holding the busybox base
 * image made from busybox-static (as `kt/busybox` and `busybox`), real runc.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { buildCliOnce } from '../../../../scripts/test-cli-build.js';

export const repo = join(import.meta.dirname, '../../../..');
const kilnBin = join(repo, 'cli/bin/kiln.js');

/** Fails with the install command when a tool is missing. */
export function requireTools(): void {
  const missing = [['runc', 'runc'], ['skopeo', 'skopeo']].filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0).map(([, p]) => p);
  if (!existsSync('/bin/busybox')) missing.push('busybox-static');
  if (missing.length > 0) throw new Error(`missing prerequisites: apt-get install -y ${missing.join(' ')}`);
  if (process.getuid?.() !== 0) throw new Error('the end-to-end builds run runc and mount overlayfs: run them as root');
}

/** `npm run build` (incremental, one at a time across test files), as a user runs it before kiln. */
export function compileCli(): void {
  buildCliOnce();
}

/** A temp dir with a kiln root holding the busybox base. */
export interface Sandbox {
  readonly dir: string;
  readonly root: string;
  cleanup(): Promise<void>;
}

export async function makeSandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ts-e2e-'));
  const root = join(dir, 'root');
  await createBusyboxImage(await ContentStore.open(root), { names: ['docker.io/kt/busybox:latest', 'docker.io/library/busybox:latest'], images: await ImageStore.open(root) });
  return { dir, root, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes files (path → content) under `dir`. */
export async function writeTree(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/** One CLI run. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node cli/bin/kiln.js …` in `cwd`. */
export function kiln(args: readonly string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let n = 0;
/** A fresh name for an output path. */
export const fresh = (sb: Sandbox, what: string): string => join(sb.dir, `${what}-${++n}`);

/** Registers beforeAll/afterAll that give the file one sandbox (tools checked, CLI compiled): `useSandbox((s) => (sb = s))`. */
export function useSandbox(use: (sb: Sandbox) => void): void {
  let sb: Sandbox | undefined;
  beforeAll(async () => {
    requireTools();
    compileCli();
    sb = await makeSandbox();
    use(sb);
  }, 300_000);
  afterAll(async () => {
    await sb?.cleanup();
  });
}
