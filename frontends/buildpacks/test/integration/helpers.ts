/**
 * End-to-end setup for kiln/buildpacks builds, after frontends/ts-dsl/test/integration/helpers.ts:
 * the real CLI (`node cli/bin/kiln.js`) after `npm run build`, a temp kiln root holding the
 * offline CNB images (test/fixtures/make-images.ts), real runc and umoci.
 */
import { execFileSync, spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { makeTestImages } from '../fixtures/make-images.js';
import { buildCliOnce } from '../../../../scripts/test-cli-build.js';

export const repo = join(import.meta.dirname, '../../../..');
const kilnBin = join(repo, 'cli/bin/kiln.js');

/** Fails with the install command when a tool is missing. */
export function requireTools(): void {
  const missing = [
    ['runc', 'runc'],
    ['umoci', 'umoci'],
  ]
    .filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0)
    .map(([, p]) => p);
  if (!existsSync('/bin/busybox')) missing.push('busybox-static');
  if (missing.length > 0) throw new Error(`missing prerequisites: apt-get install -y ${missing.join(' ')}`);
  if (process.getuid?.() !== 0) throw new Error('the end-to-end builds run runc and mount overlayfs: run them as root');
}

/** `npm run build` (incremental, one at a time across test files), as a user runs it before kiln. */
export function compileCli(): void {
  buildCliOnce();
}

/** A temp dir with a kiln root holding kt/build, kt/run and kt/builder. */
export interface Sandbox {
  readonly dir: string;
  readonly root: string;
  cleanup(): Promise<void>;
}

export async function makeSandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-cnb-e2e-'));
  const root = join(dir, 'root');
  await makeTestImages(root);
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

/** Runs `node cli/bin/kiln.js …` in `cwd` (extra env on top of the test's). */
export function kiln(args: readonly string[], cwd: string, env: Readonly<Record<string, string>> = {}): Promise<Run> {
  return collect(spawn(process.execPath, [kilnBin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** A child's exit code and output. */
function collect(child: ChildProcessByStdio<null, Readable, Readable>): Promise<Run> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The project.toml of the test apps: selects kiln/buildpacks and the offline builder. */
export const PROJECT_TOML = '# syntax=kiln/buildpacks\n[_]\nschema-version = "0.2"\nid = "kiln-test-app"\n\n[io.buildpacks]\nbuilder = "kt/builder"\n';

/** An OCI image config as umoci writes it into a bundle's config.json (the parts the tests read). */
export interface RuntimeSpec {
  process: { args: string[]; env: string[]; cwd: string; user: { uid: number; gid: number }; terminal?: boolean };
  linux?: { namespaces?: { type: string }[] };
  root?: { path: string; readonly?: boolean };
}

/** Unpacks an OCI layout's image into a runtime bundle with umoci. */
export async function unpack(layout: string, tag: string, bundle: string): Promise<RuntimeSpec> {
  execFileSync('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { stdio: 'pipe' });
  return JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as RuntimeSpec;
}

/** The image config (labels, Entrypoint…) of an OCI layout's only image. */
export async function imageConfig(layout: string): Promise<{ config: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; User?: string; Labels?: Record<string, string> }; rootfs: { diff_ids: string[] } }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): Promise<string> => readFile(join(layout, 'blobs/sha256', d.replace('sha256:', '')), 'utf8');
  const manifest = JSON.parse(await blob(index.manifests[0]?.digest ?? '')) as { config: { digest: string } };
  return JSON.parse(await blob(manifest.config.digest)) as Awaited<ReturnType<typeof imageConfig>>;
}

/**
 * Runs a process of an unpacked bundle with runc (no terminal, host network so loopback is
 * reachable, the given args and extra env). `detach` leaves it running: call the returned kill.
 */
export async function runBundle(bundle: string, opts: { args?: string[]; env?: string[]; id: string }): Promise<Run> {
  // every run starts from the config umoci wrote (kept aside on the first run)
  const orig = join(bundle, 'config.orig.json');
  if (!existsSync(orig)) await writeFile(orig, await readFile(join(bundle, 'config.json')));
  const spec = JSON.parse(await readFile(orig, 'utf8')) as RuntimeSpec;
  spec.process.terminal = false;
  if (opts.args !== undefined) spec.process.args = opts.args;
  spec.process.env = [...spec.process.env, ...(opts.env ?? [])];
  if (spec.linux?.namespaces !== undefined) spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  return collect(spawn('runc', ['run', '--bundle', bundle, opts.id], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Registers beforeAll/afterAll that give the file one sandbox (tools checked, CLI compiled): `useSandbox((s) => (sb = s))`. */
export function useSandbox(use: (sb: Sandbox) => void): void {
  let sb: Sandbox | undefined;
  beforeAll(async () => {
    requireTools();
    compileCli();
    sb = await makeSandbox();
    use(sb);
  }, 300_000);
  afterAll(async () => sb?.cleanup());
}
