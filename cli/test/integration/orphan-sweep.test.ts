import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalSnapshotter } from '@kiln/runtime';
import { CacheStore } from '@kiln/solver';
import { KilnEngine } from '../../src/engine/engine.js';
import { describe, expect, test } from 'vitest';
import { kilnBin, parseRawJson, processesMatching, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// A kiln process killed with SIGKILL mid-build (mid-RUN, or in an --invoke shell) leaves snapshots
// nothing else removes; the next kiln to open the root sweeps them, unless another live process
// builds there. Real CLI processes, runc, overlay snapshots.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const env = { KILN_DAEMON: '0' };
/** A pid no process can have (above the default pid_max): a killed kiln's. */
const DEAD_PID = 2 ** 22 + 23;

async function context(files: Readonly<Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(dir, files);
  return dir;
}

/** A snapshot as its meta on disk says (read the way a new kiln process reads it). */
interface Snap {
  readonly id: string;
  readonly kind: string;
  readonly dir: string;
  readonly pid: number | undefined;
}

function snapshots(): Snap[] {
  const byId = join(sb.root, 'snapshots', 'by-id');
  const out: Snap[] = [];
  for (const id of readdirSync(byId)) {
    if (id.startsWith('.')) continue;
    const dir = join(sb.root, 'snapshots', readlinkSync(join(byId, id)).replace(/^\.\.\//, ''));
    const m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { kind: string; pid?: number };
    out.push({ id, kind: m.kind, dir, pid: m.pid });
  }
  return out;
}

/** A `kiln build` process the test kills or talks to. */
interface Running {
  readonly child: ChildProcess;
  stdout(): string;
  readonly done: Promise<KilnRun>;
}

function startKiln(args: readonly string[], stdin: 'pipe' | 'ignore' = 'ignore'): Running {
  const child = spawn(process.execPath, [kilnBin, ...args], { env: { ...process.env, PATH: sb.path, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<KilnRun>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, stderrBytes: Buffer.from(stderr) })));
  return { child, stdout: () => stdout, done };
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function sigkill(r: Running): Promise<void> {
  r.child.kill('SIGKILL');
  expect((await r.done).signal).toBe('SIGKILL');
}

/** The snapshots `pid` made that are still in the root. */
function madeBy(pid: number | undefined): Snap[] {
  return snapshots().filter((s) => s.pid === pid);
}

/** What `pid` left that nothing owns: active snapshots, and failed RUN states. */
function leftBy(pid: number | undefined): Snap[] {
  return madeBy(pid).filter((s) => s.kind === 'active' || s.id.startsWith('failed-'));
}

function expectGone(left: readonly Snap[]): void {
  const ids = new Set(snapshots().map((s) => s.id));
  for (const s of left) {
    expect(ids.has(s.id), s.id).toBe(false);
    expect(existsSync(s.dir), s.dir).toBe(false);
  }
}

describe('snapshots of killed kiln processes', () => {
  test('SIGKILL mid-RUN: the next build removes the RUN\'s snapshot; cached results, the cache mount and image layers stay', async () => {
    const t = token();
    const base = `FROM busybox\nRUN --mount=type=cache,target=/cache,id=c-${t} echo kept-${t} > /cache/f\nRUN echo ${t} > /done\n`;
    const ctx = await context({ Dockerfile: base, 'Dockerfile.sleep': `${base}RUN echo started-${t} && sleep 60 && echo done-${t}\n` });
    const first = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet'], { env });
    expect(first.code).toBe(0);
    const before = new Set(snapshots().map((s) => s.id));

    const killed = startKiln(['build', ctx, '-f', join(ctx, 'Dockerfile.sleep'), '--root', sb.root, '--progress', 'quiet']);
    const pid = killed.child.pid;
    await until('the RUN to start', () => processesMatching(`started-${t}`).length > 0);
    await sigkill(killed);
    // Its container does not run on for nobody: the process helper stops it when kiln is gone.
    await until('the killed build\'s container to end', () => processesMatching(`started-${t}`).length === 0, 10_000);
    const left = leftBy(pid);
    // The RUN's writable root, an active snapshot no process will ever commit or remove.
    expect(left.filter((s) => s.id.startsWith('exec-'))).toHaveLength(1);
    // What it recorded in the cache (its context, its Dockerfile) is the cache's.
    const recorded = madeBy(pid).filter((s) => s.kind === 'committed');
    expect(recorded.length).toBeGreaterThan(0);

    // kiln du accounts for it.
    const du = await runKiln(sb, ['du', '--root', sb.root, '--verbose'], { env });
    expect(du.code).toBe(0);
    for (const s of left) expect(du.stdout).toMatch(new RegExp(`${s.id.slice(0, 37)}.*\\s+orphan\\s+true\\s.*left by kiln process ${pid}, killed`));

    // The next build: every step cached, what the killed one left gone, nothing of the cache lost.
    const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson'], { env });
    expect(again.code).toBe(0);
    const runs = parseRawJson(again.stderr).filter((v) => v.name.includes('RUN '));
    expect(runs).toHaveLength(2);
    expect(runs.every((v) => v.cached)).toBe(true);
    expectGone(left);
    const after = new Set(snapshots().map((s) => s.id));
    for (const id of [...before, ...recorded.map((s) => s.id)]) expect(after.has(id), id).toBe(true);
    expect([...before].some((id) => id.startsWith('layer-'))).toBe(true);
    // The killed RUN's container is gone too, and so is the killed build's mark.
    expect(processesMatching(`started-${t}`)).toEqual([]);
    expect(existsSync(join(sb.root, 'engine', 'active', String(pid)))).toBe(false);
    // The cache mount still holds what the first build wrote.
    const out = join(sb.dir, `out-${t}`);
    const read = await context({ Dockerfile: `FROM busybox\nRUN --mount=type=cache,target=/cache,id=c-${t} cp /cache/f /got\n` });
    const got = await runKiln(sb, ['build', read, '--root', sb.root, '--progress', 'quiet', '--output', `type=local,dest=${out}`], { env });
    expect(got.code).toBe(0);
    expect(readFileSync(join(out, 'got'), 'utf8')).toBe(`kept-${t}\n`);
  }, 240_000);

  test('SIGKILL mid-RUN of a build with --ssh KEYFILE: the ssh-agent kiln started for the key stops with it, its directory goes', async () => {
    const t = token();
    const key = join(sb.dir, `key-${t}`);
    spawn('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    await until('the key', () => existsSync(`${key}.pub`));
    const ctx = await context({ Dockerfile: `FROM busybox\nRUN --mount=type=ssh,id=deploy,required=true echo started-${t} && sleep 60 && echo done-${t}\n` });
    // The agent's socket is under this build's own TMPDIR: its agent is told apart from other tests' by that.
    const tmp = join(sb.dir, `ssh-tmp-${t}`);
    await mkdir(tmp);
    const agents = (): string[] => processesMatching(`ssh-agent -D -a ${tmp}/`);
    const killed = spawn(process.execPath, [kilnBin, 'build', ctx, '--root', sb.root, '--progress', 'quiet', '--ssh', `deploy=${key}`], { env: { ...process.env, PATH: sb.path, ...env, TMPDIR: tmp }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    killed.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await until('the RUN to start', () => processesMatching(`started-${t}`).length > 0, 20_000).catch((e: unknown) => {
      killed.kill('SIGKILL');
      throw new Error(`${String(e)}: ${stderr}`);
    });
    expect(agents()).toHaveLength(1);
    killed.kill('SIGKILL');
    await until('the agent to stop', () => agents().length === 0, 10_000);
    await until('its directory to go', () => readdirSync(tmp).filter((n) => n.startsWith('kiln-ssh-')).length === 0, 10_000);
  }, 120_000);

  test('SIGKILL while a git source is fetched: git and what it started stop with it (they run in their own process group)', async () => {
    // A git:// server that accepts and never answers: `git ls-remote` waits on it for ever.
    const held: Socket[] = [];
    const server = createServer((c) => {
      held.push(c);
      c.resume(); // read (and drop) what git sends, so that its end is seen
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const t = token();
      const ctx = await context({ Dockerfile: `FROM busybox\nADD git://127.0.0.1:${port}/repo-${t}.git /src\n` });
      // git names the remote `origin` (its URL is in the bare repository's config, under the root).
      const gits = (): string[] =>
        processesMatching('git ls-remote').filter((l) => {
          try {
            return readlinkSync(`/proc/${l.split(' ')[0] ?? ''}/cwd`).startsWith(sb.root);
          } catch {
            return false;
          }
        });
      const killed = startKiln(['build', ctx, '--root', sb.root, '--progress', 'quiet']);
      await until('git to connect', () => held.length > 0 && gits().length > 0, 30_000);
      await sigkill(killed);
      await until('git to stop', () => gits().length === 0, 10_000);
      // and its connection with it
      await until('the connection to close', () => held.every((c) => c.readableEnded), 10_000);
    } finally {
      for (const c of held) c.destroy();
      server.close();
    }
  });

  test('SIGKILL in an --invoke on-error shell: the failed state and the shell\'s container snapshot are removed by the next build', async () => {
    const t = token();
    const ctx = await context({ Dockerfile: `FROM busybox\nRUN echo half-${t} > /half && exit 3\n` });
    const killed = startKiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', 'on-error'], 'pipe');
    killed.child.stdin?.write(`cat /half; echo shell-${t}; sh -c 'sleep 60; echo shell-${t}-end'\n`);
    await until('the debug shell', () => killed.stdout().includes(`shell-${t}`) && processesMatching(`shell-${t}-end`).length > 0);
    expect(killed.stdout()).toContain(`half-${t}\n`);
    await sigkill(killed);
    // The shell's container does not run on for nobody: the process helper stops it.
    await until('the killed shell\'s container to end', () => processesMatching(`shell-${t}-end`).length === 0, 10_000);
    const left = leftBy(killed.child.pid);
    expect(left.filter((s) => s.kind === 'committed' && s.id.startsWith('failed-'))).toHaveLength(1);
    expect(left.filter((s) => s.kind === 'active' && s.id.startsWith('container-'))).toHaveLength(1);

    const next = await runKiln(sb, ['build', await context({ Dockerfile: `FROM busybox\nRUN echo next-${t}\n` }), '--root', sb.root, '--progress', 'quiet'], { env });
    expect(next.code).toBe(0);
    expectGone(left);
    expect(processesMatching(`shell-${t}`)).toEqual([]);
  }, 240_000);

  test('while another live process builds (here: holds an --invoke shell) nothing is swept; the build after it sweeps', async () => {
    const t = token();
    // A live build holding its result for an --invoke command that waits for a line on stdin.
    const held = startKiln(['build', await context({ Dockerfile: `FROM busybox\nRUN echo held-${t} > /h\n` }), '--root', sb.root, '--progress', 'quiet', '--invoke', `sh -c 'cat /h; read line; echo got-$line'`], 'pipe');
    await until('the held build\'s command', () => held.stdout().includes(`held-${t}`));
    const heldSnaps = leftBy(held.child.pid).filter((s) => s.kind === 'active');
    expect(heldSnaps.length).toBeGreaterThan(0);

    // Meanwhile a build is killed mid-RUN: its snapshot is an orphan.
    const ctx = await context({ Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60 && echo done-${t}\n` });
    const killed = startKiln(['build', ctx, '--root', sb.root, '--progress', 'quiet']);
    await until('the RUN to start', () => processesMatching(`started-${t}`).length > 0);
    await sigkill(killed);
    const orphans = leftBy(killed.child.pid);
    expect(orphans.length).toBeGreaterThan(0);

    // Another build now: the held build is live, so the sweep waits.
    const quick = await runKiln(sb, ['build', await context({ Dockerfile: `FROM busybox\nRUN echo quick-${t}\n` }), '--root', sb.root, '--progress', 'quiet'], { env });
    expect(quick.code).toBe(0);
    const ids = new Set(snapshots().map((s) => s.id));
    for (const s of [...heldSnaps, ...orphans]) expect(ids.has(s.id), s.id).toBe(true);

    // The held build is intact: its command goes on and it ends well.
    held.child.stdin?.end('ok\n');
    const h = await held.done;
    expect(h.code).toBe(0);
    expect(h.stdout).toBe(`held-${t}\ngot-ok\n`);

    // Now nobody builds: the next build sweeps what the killed one left.
    const after = await runKiln(sb, ['build', await context({ Dockerfile: `FROM busybox\nRUN echo after-${t}\n` }), '--root', sb.root, '--progress', 'quiet'], { env });
    expect(after.code).toBe(0);
    expectGone(orphans);
    expectGone(heldSnaps);
  }, 240_000);

  test('kiln prune removes them too and reports them', async () => {
    const t = token();
    const ctx = await context({ Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60 && echo done-${t}\n` });
    const killed = startKiln(['build', ctx, '--root', sb.root, '--progress', 'quiet']);
    await until('the RUN to start', () => processesMatching(`started-${t}`).length > 0);
    await sigkill(killed);
    const left = leftBy(killed.child.pid);
    expect(left.length).toBeGreaterThan(0);
    // Without the killed build's mark (a process that never marked itself: a library user of the
    // engine), opening the root does not sweep; prune does.
    rmSync(join(sb.root, 'engine', 'active', String(killed.child.pid)));
    const r = await runKiln(sb, ['prune', '--root', sb.root, '--verbose'], { env });
    expect(r.code).toBe(0);
    for (const s of left) expect(r.stdout).toContain(`${s.id}\t`);
    expect(r.stdout).toContain(`snapshot left by kiln process ${killed.child.pid}, killed`);
    expectGone(left);
  }, 240_000);

  test('a kiln daemon that stays up sweeps what a killed kiln process of its root left, at its next command', async () => {
    const t = token();
    const socket = join(sb.dir, `d-${t}.sock`);
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const ctx = await context({ Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60 && echo done-${t}\n` });
      // The daemon opens its engine at its first command, and keeps it open.
      const first = await context({ Dockerfile: `FROM busybox\nRUN echo first-${t} > /f\n` });
      expect((await runKiln(sb, ['build', first, '--root', sb.root, '--progress', 'quiet'], { env: { KILN_HOST: `unix://${socket}` } })).code).toBe(0);
      // A kiln process of its own (not the daemon's client) killed mid-RUN.
      const killed = startKiln(['build', ctx, '--root', sb.root, '--progress', 'plain']);
      await until('the RUN to start', () => processesMatching(`started-${t}`).length > 0).catch(async (e: unknown) => {
        killed.child.kill('SIGKILL');
        throw new Error(`${String(e)}: ${(await killed.done).stderr}`);
      });
      await sigkill(killed);
      const left = leftBy(killed.child.pid);
      expect(left.filter((s) => s.id.startsWith('exec-'))).toHaveLength(1);
      const next = await context({ Dockerfile: `FROM busybox\nRUN echo next-${t} > /n\n` });
      const r = await runKiln(sb, ['build', next, '--root', sb.root, '--progress', 'quiet'], { env: { KILN_HOST: `unix://${socket}` } });
      expect(r.code).toBe(0);
      // Served by the daemon, which swept first.
      await expect.poll(() => d.log().match(/build: client pid/g)?.length ?? 0, { timeout: 10_000 }).toBe(2);
      expectGone(left);
      expect(processesMatching(`started-${t}`)).toEqual([]);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  }, 240_000);
});

describe('the sweep after a kill noticed only under the prune lock', () => {
  test('a build killed while the opening engine waited for the lock: its mark is not dropped unswept', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kiln-sweep-race-'));
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      // A pending release makes the open take the lock (to retry it) although no build was killed yet.
      const store = CacheStore.open({ path: join(root, 'cache', 'solver.db'), releaseSnapshot: () => Promise.reject(new Error('EBUSY')) });
      store.upsertRecord({ snapshot: 'snap-busy', description: 'RUN make', kind: 'regular' });
      await store.prune({ all: true });
      store.close();
      // Another process holds the lock (a prune, a build starting).
      await mkdir(join(root, 'engine'), { recursive: true });
      await writeFile(join(root, 'engine', 'gc.lock'), String(holder.pid));
      const opening = KilnEngine.open({ root });
      // The open looked for killed builds (none) and now waits for the lock: `engine/active` is
      // made right before. Meanwhile a build of another process is SIGKILLed mid-RUN.
      await until('the open to wait for the lock', () => existsSync(join(root, 'engine', 'active')));
      const s = new LocalSnapshotter({ root });
      await s.prepare('exec-killed', 'scratch-empty');
      const meta = join(root, 'snapshots', readlinkSync(join(root, 'snapshots', 'by-id', 'exec-killed')).replace(/^\.\.\//, ''), 'meta.json');
      writeFileSync(meta, JSON.stringify({ ...(JSON.parse(readFileSync(meta, 'utf8')) as object), pid: DEAD_PID }));
      await writeFile(join(root, 'engine', 'active', String(DEAD_PID)), '');
      rmSync(join(root, 'engine', 'gc.lock'));
      (await opening).close();
      // The dead mark is dropped under that lock, so what that build left is swept there too.
      expect(existsSync(join(root, 'engine', 'active', String(DEAD_PID)))).toBe(false);
      expect(readdirSync(join(root, 'snapshots', 'by-id'))).not.toContain('exec-killed');
    } finally {
      holder.kill();
      await rm(root, { recursive: true, force: true });
    }
  });
});
