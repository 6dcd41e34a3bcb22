import { createHash } from 'node:crypto';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { buildCliOnce } from '../../../scripts/test-cli-build.js';

/** The repository root and the CLI entry a user runs. */
export const repo = join(import.meta.dirname, '../../..');
export const kilnBin = join(repo, 'cli/bin/kiln.js');

/** Fails with the install command when a tool the end-to-end tests use is missing. */
export function requireTools(): void {
  const need: Array<[string, string]> = [
    ['runc', 'runc'],
    ['skopeo', 'skopeo'],
    ['umoci', 'umoci'],
    ['docker-registry', 'docker-registry'],
  ];
  const missing = need.filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0).map(([, pkg]) => pkg);
  if (!existsSync('/bin/busybox')) missing.push('busybox-static');
  if (missing.length > 0) throw new Error(`missing prerequisites: apt-get install -y ${missing.join(' ')}`);
  if (process.getuid?.() !== 0) throw new Error('the end-to-end build tests run runc and mount overlayfs: run them as root');
}

/**
 * `npm run build` (incremental), as a user would before running kiln: tsc, then the CLI bundle and
 * its code cache that cli/bin/kiln.js runs (remade only when the compiled output changed).
 */
export function compileCli(): void {
  buildCliOnce();
}

/** A temp dir that holds a kiln root with the busybox base image (`busybox`) and a logging runc. */
export interface KilnSandbox {
  readonly dir: string;
  readonly root: string;
  /** Where the runc wrapper appends one line per invocation. */
  readonly runcLog: string;
  /** PATH with the runc wrapper first. */
  readonly path: string;
  /** `runc run` invocations logged so far (containers started). */
  containersStarted(): Promise<number>;
  cleanup(): Promise<void>;
}

/**
 * Makes a sandbox: temp dir, kiln root, busybox image from busybox-static, runc wrapper. With
 * `copyRootOf`, the root is a copy of that sandbox's (a test's pristine template, never built in:
 * the same busybox image, without compressing it again, ~30 ms instead of ~230 ms).
 */
export async function makeSandbox(opts: { copyRootOf?: KilnSandbox } = {}): Promise<KilnSandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-e2e-'));
  const root = join(dir, 'root');
  if (opts.copyRootOf === undefined) {
    const content = await ContentStore.open(root);
    const images = await ImageStore.open(root);
    await createBusyboxImage(content, { names: ['docker.io/library/busybox:latest'], images });
  } else {
    execFileSync('cp', ['-a', opts.copyRootOf.root, root]);
  }
  const binDir = join(dir, 'bin');
  await mkdir(binDir);
  const runcLog = join(dir, 'runc.log');
  const realRunc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
  await writeFile(join(binDir, 'runc'), `#!/bin/sh\necho "$*" >> ${runcLog}\nexec ${realRunc} "$@"\n`);
  await chmod(join(binDir, 'runc'), 0o755);
  return {
    dir,
    root,
    runcLog,
    path: `${binDir}:${process.env['PATH'] ?? ''}`,
    async containersStarted() {
      const text = await readFile(runcLog, 'utf8').catch(() => '');
      return text.split('\n').filter((l) => / run --bundle /.test(` ${l}`)).length;
    },
    async cleanup() {
      // Leftover mounts would make rm fail; the engine unmounts everything it mounted.
      await rm(dir, { recursive: true, force: true });
      // The root's runtime dir (bundles, runc state) outlives its builds: it is kiln's per root, not the test's.
      await rm(`/dev/shm/kiln-${createHash('sha256').update(root).digest('hex').slice(0, 12)}`, { recursive: true, force: true });
    },
  };
}

/** Writes files (path → content) under `dir`. */
export async function writeTree(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/** The outcome of one `node cli/bin/kiln.js …` process. */
export interface KilnRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stderr as written (progress passes log bytes through unchanged). */
  readonly stderrBytes: Buffer;
}

/** Runs the real CLI as a separate process with the sandbox's PATH (logging runc). */
export function runKiln(
  sb: KilnSandbox,
  args: readonly string[],
  opts: { env?: Record<string, string>; stdin?: string; cwd?: string; onStderr?: (chunk: string, child: import('node:child_process').ChildProcess) => void } = {},
): Promise<KilnRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      env: { ...process.env, PATH: sb.path, ...opts.env },
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
    let stdout = '';
    let stderr = '';
    const stderrChunks: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => {
      stderrChunks.push(d);
      stderr += d.toString();
      opts.onStderr?.(stderr, child);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, stderrBytes: Buffer.concat(stderrChunks) }));
  });
}

/** One vertex of a `--progress rawjson` stream, merged over its updates. */
export interface RawVertex {
  readonly digest: string;
  readonly name: string;
  readonly started?: number;
  readonly completed?: number;
  readonly cached: boolean;
  readonly error?: string;
}

/** Parses `--progress rawjson` output (BuildKit SolveStatus lines) into vertices by digest. */
export function parseRawJson(text: string): RawVertex[] {
  const byDigest = new Map<string, { digest: string; name: string; started?: number; completed?: number; cached: boolean; error?: string }>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const obj = JSON.parse(line) as { vertexes?: Array<{ digest: string; name: string; started?: string; completed?: string; cached?: boolean; error?: string }> };
    for (const v of obj.vertexes ?? []) {
      const cur = byDigest.get(v.digest) ?? { digest: v.digest, name: v.name, cached: false };
      if (v.started !== undefined) cur.started = Date.parse(v.started);
      if (v.completed !== undefined) cur.completed = Date.parse(v.completed);
      if (v.cached === true) cur.cached = true;
      if (v.error !== undefined) cur.error = v.error;
      byDigest.set(v.digest, cur);
    }
  }
  return [...byDigest.values()];
}

/** Decoded log lines of a rawjson stream, by vertex digest. */
export function rawJsonLogs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const obj = JSON.parse(line) as { logs?: Array<{ vertex: string; data: string }> };
    for (const l of obj.logs ?? []) out.set(l.vertex, (out.get(l.vertex) ?? '') + Buffer.from(l.data, 'base64').toString());
  }
  return out;
}

/**
 * Processes whose command line contains `text` (pgrep -f), e.g. a RUN step's shell with the test's
 * token: a container left running shows up here, wherever its runc keeps its state. The shell
 * stays only while a command follows (`echo started-T && sleep 60 && echo done-T`): sh execs
 * the last one in place.
 */
export function processesMatching(text: string): string[] {
  const r = spawnSync('pgrep', ['-af', '--', text], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l !== '' && !l.includes('pgrep'));
}

/** A unique token so each test's Dockerfile has its own cache keys in a shared root. */
export function token(): string {
  return `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Registers the usual hooks of an end-to-end test file: tools checked, CLI compiled, one sandbox
 * (kiln root with busybox) for the file, handed to `use`, and cleaned up afterwards.
 */
export function useSandbox(use: (sb: KilnSandbox) => void): void {
  let sb: KilnSandbox | undefined;
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

/** A `kiln daemon` process started by a test. */
export interface TestDaemon {
  readonly child: import('node:child_process').ChildProcess;
  /** Its stderr so far: one line per command it served. */
  log(): string;
  readonly exited: Promise<number | null>;
}

/** Starts `kiln daemon ARGS` with the sandbox's PATH and waits for its "serving" line. */
export function startDaemon(sb: KilnSandbox, args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<TestDaemon> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, 'daemon', ...args], { env: { ...process.env, PATH: sb.path, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('serving ')) resolve({ child, log: () => log, exited });
    });
    void exited.then((code) => reject(new Error(`kiln daemon exited (${code}) before serving:\n${log}`)));
  });
}

/** An OCI descriptor as the tests read them from index and manifest JSON. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

/** Unpacks an OCI layout tarball next to it (`<tarball>.d`) to read its blobs; returns the directory. */
export async function unpackLayout(tarball: string): Promise<string> {
  const dir = `${tarball}.d`;
  await mkdir(dir, { recursive: true });
  execFileSync('tar', ['-xf', tarball, '-C', dir]);
  return dir;
}

/** A blob of an unpacked OCI layout. */
export const layoutBlob = async (layout: string, digest: string): Promise<Buffer> => readFile(join(layout, 'blobs/sha256', digest.replace('sha256:', '')));
/** A JSON blob of an unpacked OCI layout. */
export const layoutJson = async <T>(layout: string, digest: string): Promise<T> => JSON.parse((await layoutBlob(layout, digest)).toString()) as T;

/** The outcome of {@link runKilnInProcess}: a {@link KilnRun} with stdout's bytes too. */
export interface KilnInProcessRun extends KilnRun {
  readonly stdoutBytes: Buffer;
}

/**
 * Runs `kiln ARGS` through the CLI's `main` in this process, its streams captured: the same
 * commands, parsing and error reporting as {@link runKiln} without a Node start-up (~300 ms) per
 * run. For output and error checks where the separate process itself is not what is tested;
 * keep one {@link runKiln} per command path. The caller's environment is this process's plus the
 * sandbox's PATH and `opts.env`; no daemon is asked (main is the in-process path).
 */
export async function runKilnInProcess(
  sb: KilnSandbox,
  args: readonly string[],
  opts: { env?: Record<string, string>; stdin?: string; cwd?: string } = {},
): Promise<KilnInProcessRun> {
  const { main } = await import('../../src/main.js');
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const capture = (into: Buffer[]) => ({ write: (c: string | Uint8Array) => void into.push(Buffer.from(c)) });
  const stdin = opts.stdin;
  const code = await main(['node', 'kiln', ...args], {
    stdin: (async function* () {
      if (stdin !== undefined) yield Buffer.from(stdin);
    })(),
    stdout: capture(out),
    stderr: capture(err),
    env: { ...process.env, PATH: sb.path, ...opts.env },
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  const stdoutBytes = Buffer.concat(out);
  const stderrBytes = Buffer.concat(err);
  return { code, signal: null, stdout: stdoutBytes.toString(), stderr: stderrBytes.toString(), stdoutBytes, stderrBytes };
}

/**
 * Copies host programs (absolute paths) and the shared libraries `ldd` lists for them into `dir`
 * at their paths: a build context for an image that runs them (e.g. the host's ssh-add). Returns `dir`.
 */
export function copyHostPrograms(dir: string, programs: readonly string[]): string {
  const files = [...programs];
  for (const program of programs) {
    for (const line of execFileSync('ldd', [program], { encoding: 'utf8' }).split('\n')) {
      const m = /(\/\S+) \(0x/.exec(line) ?? /=> (\/\S+)/.exec(line);
      if (m?.[1] !== undefined) files.push(m[1]);
    }
  }
  for (const f of files) {
    mkdirSync(join(dir, dirname(f)), { recursive: true });
    copyFileSync(f, join(dir, f));
  }
  return dir;
}
