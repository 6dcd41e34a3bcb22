// A git source fetched over ssh by a step that several builds share: each ssh connection takes the
// agents of the builds attached to the step at that moment, first joined first, and moves on to
// the next when the server refuses the one tried. Real sshd on 127.0.0.1, real ssh-agents, real
// git over ssh, and the solver merging the builds' identical source vertex.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { git as gitSource, type Definition } from '@kiln/llb-core';
import { ContentStore, LocalSnapshotter, applyFileAction, unpackLayer } from '@kiln/runtime';
import { CacheStore, RuntimeWorker, Solver, type BuildResult, type ProgressEvent } from '@kiln/solver';
import { SSHD, startSshd, until } from './sshd.js';


let work = '';
let root = '';
let repo = '';
let remote = '';
let knownHosts = '';
let sshd: ChildProcess;
let snapshotter: LocalSnapshotter;
let content: ContentStore;
let solver: Solver;
const agents: ChildProcess[] = [];

const gitIn = (cwd: string, ...args: string[]): string =>
  execFileSync('git', args, { cwd, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'k', GIT_AUTHOR_EMAIL: 'k@x', GIT_COMMITTER_NAME: 'k', GIT_COMMITTER_EMAIL: 'k@x' } }).trim();



/** A new commit on main holding `name`: each test fetches a commit nothing has fetched yet. */
function commit(name: string): string {
  const wc = join(work, 'wc');
  writeFileSync(join(wc, `${name}.txt`), `${name}\n`);
  gitIn(wc, 'add', '.');
  gitIn(wc, 'commit', '-qm', name);
  gitIn(wc, 'push', '-q', 'origin', 'HEAD:main');
  return gitIn(wc, 'rev-parse', 'HEAD');
}

/** A real ssh-agent (in debug mode: its stderr says which requests it answered) holding `keys`. */
async function agent(name: string, keys: readonly string[]): Promise<{ sock: string; proc: ChildProcess; log: () => string }> {
  const sock = join(work, `${name}.agent`);
  rmSync(sock, { force: true });
  const proc = spawn('ssh-agent', ['-d', '-a', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  agents.push(proc);
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await until(`${name}'s agent`, () => existsSync(sock));
  for (const k of keys) execFileSync('ssh-add', ['-q', k], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  return { sock, proc, log: () => log };
}

/** A build's worker: the same root and stores as every other build, its own `--ssh default`. */
function worker(sshSock: string | undefined): RuntimeWorker {
  return new RuntimeWorker({
    root,
    snapshotter,
    content,
    executor: { run: () => Promise.reject(new Error('no containers here')) },
    ensureImage: () => Promise.reject(new Error('no images here')),
    unpackLayer,
    applyFileAction,
    localDirs: {},
    ...(sshSock === undefined ? {} : { ssh: { default: sshSock } }),
    leaseSnapshot: (id) => solver.store.lease(id),
  });
}

/** `ADD <ssh remote>#<sha>` as the Dockerfile frontend writes it: agent id `default`, the host's key pinned. */
function definition(sha: string): Promise<Definition> {
  return gitSource(remote, sha, { knownSshHosts: knownHosts }).marshal();
}

/** A build's progress, to see when it joined the running step. */
function progress(): { events: ProgressEvent[]; emit(e: ProgressEvent): void } {
  const events: ProgressEvent[] = [];
  return { events, emit: (e) => void events.push(e) };
}

/** The files of a result, by name (.git left out). */
async function files(r: BuildResult | undefined): Promise<Record<string, string>> {
  if (r === undefined) throw new Error('no result');
  const m = await snapshotter.mount(r.ref.snapshot);
  try {
    const out: Record<string, string> = {};
    for (const n of readdirSync(m.path)) out[n] = readFileSync(join(m.path, n), 'utf8');
    return out;
  } finally {
    await m.release();
  }
}

/** Connections the server let through authentication (the gate counts them). */
const served = (): number => (existsSync(join(work, 'connections')) ? readFileSync(join(work, 'connections'), 'utf8').length : 0);

/** ssh clients of this test still running (their command line names the repository). */
function sshClients(): number {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (cmd.startsWith('ssh\0') && cmd.includes(repo)) n++;
  }
  return n;
}

beforeAll(async () => {
  for (const [bin, pkg] of [
    [SSHD, 'openssh-server'],
    ['ssh-agent', 'openssh-client'],
    ['git', 'git'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${bin} is required for these tests: apt-get install -y ${pkg}`);
    }
  }
  work = await mkdtemp(join(tmpdir(), 'kiln-git-ssh-'));
  root = join(work, 'root');
  for (const k of ['host', 'user', 'stranger']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', join(work, k)]);
  repo = join(work, 'served', 'repo.git');
  mkdirSync(repo, { recursive: true });
  gitIn(repo, '-c', 'init.defaultBranch=main', 'init', '-q', '--bare');
  gitIn(work, 'clone', '-q', repo, 'wc');
  // After authentication the server counts the connection, and holds it while `hold` exists.
  const gate = join(work, 'gate.sh');
  writeFileSync(gate, `#!/bin/sh\nprintf x >> '${work}/connections'\nif [ -e '${work}/hold' ]; then : > '${work}/reached'; while [ -e '${work}/hold' ]; do sleep 0.02; done; fi\nexec sh -c "$SSH_ORIGINAL_COMMAND"\n`, { mode: 0o755 });
  writeFileSync(join(work, 'authorized_keys'), `command="${gate}" ${readFileSync(join(work, 'user.pub'), 'utf8')}`);
  const started = await startSshd(work);
  sshd = started.process;
  const port = started.port;
  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  remote = `ssh://${user}@127.0.0.1:${port}${repo}`;
  const hostKey = readFileSync(join(work, 'host.pub'), 'utf8').split(' ').slice(0, 2).join(' ');
  knownHosts = `[127.0.0.1]:${port} ${hostKey}\n`;
  snapshotter = new LocalSnapshotter({ root });
  content = await ContentStore.open(join(root, 'content'));
  const base = worker(undefined);
  const store = CacheStore.open({ path: join(root, 'solver.db'), releaseSnapshot: (id, ctx) => base.releaseSnapshot(id, ctx) });
  solver = new Solver({ worker: base, store, parallelism: 2 });
  commit('base');
}, 120_000);

afterAll(async () => {
  rmSync(join(work, 'hold'), { force: true });
  for (const a of agents) a.kill('SIGCONT') && a.kill();
  sshd?.kill();
  solver?.store.close();
  if (root !== '') execFileSync('sh', ['-c', `grep -o ' ${root}/[^ ]*' /proc/mounts | xargs -r -n1 umount -l || true`]);
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

test("two builds share the fetch; the first build's agent has no key, the second's has: the fetch succeeds with the second's", async () => {
  const sha = commit('one');
  const empty = await agent('empty', []);
  const keyed = await agent('keyed', [join(work, 'user')]);
  // The first build's agent answers only once the second build has joined the step.
  empty.proc.kill('SIGSTOP');
  const def = await definition(sha);
  const pa = progress();
  const pb = progress();
  const a = solver.solve(def, { worker: worker(empty.sock), progress: pa });
  await until('the first build to start the fetch', () => pa.events.some((e) => e.kind === 'vertex.started'));
  const b = solver.solve(def, { worker: worker(keyed.sock), progress: pb });
  await until('the second build to join the running fetch', () => pb.events.some((e) => e.kind === 'vertex.started'));
  const before = served();
  empty.proc.kill('SIGCONT');
  const [ra, rb] = await Promise.all([a, b]);
  // One fetch for both builds, which take the same snapshot with the commit's files.
  expect(ra?.ref.snapshot).toBe(rb?.ref.snapshot);
  expect(await files(ra)).toEqual({ 'base.txt': 'base\n', 'one.txt': 'one\n' });
  expect(served() - before).toBe(1);
  // The first build's agent was asked first, and had nothing to offer.
  expect(empty.log()).toMatch(/replying with 0 allowed of 0 available keys/);
  expect(keyed.log()).toMatch(/replying with 1 allowed of 1 available keys/);
});

test('the build that started the fetch leaves before the server answered, and its agent stops: the build still attached fetches with its own agent', async () => {
  const sha = commit('two');
  const leaving = await agent('leaving', [join(work, 'user')]);
  const staying = await agent('staying', [join(work, 'user')]);
  // sshd answers nobody for now: the fetch's ssh waits for the server, with the first build's agent.
  sshd.kill('SIGSTOP');
  try {
    const def = await definition(sha);
    const ca = new AbortController();
    const pa = progress();
    const pb = progress();
    const a = solver.solve(def, { worker: worker(leaving.sock), progress: pa, signal: ca.signal });
    a.catch(() => undefined);
    await until('the first build to start the fetch', () => pa.events.some((e) => e.kind === 'vertex.started'));
    const b = solver.solve(def, { worker: worker(staying.sock), progress: pb });
    await until('the second build to join the running fetch', () => pb.events.some((e) => e.kind === 'vertex.started'));
    await until('the fetch to connect', () => sshClients() > 0);
    ca.abort();
    await expect(a).rejects.toThrow(/cancel/i);
    // As kiln stops the agent of `--ssh ID=KEYFILE` with its build.
    leaving.proc.kill();
    await until('the leaving agent to exit', () => leaving.proc.exitCode !== null || leaving.proc.signalCode !== null);
    const before = served();
    sshd.kill('SIGCONT');
    expect(await files(await b)).toEqual({ 'base.txt': 'base\n', 'one.txt': 'one\n', 'two.txt': 'two\n' });
    expect(served() - before).toBe(1);
    // The first connection went out with the agent of the build that left, which was gone by
    // then; the next one took the agent of the build that stayed.
    expect(staying.log()).toMatch(/replying with 1 allowed of 1 available keys/);
    expect(leaving.log()).not.toMatch(/process_request_identities/);
  } finally {
    sshd.kill('SIGCONT');
  }
});

test('the only build attached leaves mid-fetch: the fetch stops, nothing is kept of it, and the next build fetches anew', async () => {
  const sha = commit('three');
  const keyed = await agent('alone', [join(work, 'user')]);
  const def = await definition(sha);
  writeFileSync(join(work, 'hold'), '');
  rmSync(join(work, 'reached'), { force: true });
  const ca = new AbortController();
  const a = solver.solve(def, { worker: worker(keyed.sock), signal: ca.signal });
  a.catch(() => undefined);
  try {
    // Authenticated, and the server is sending nothing yet.
    await until('the fetch to reach the server', () => existsSync(join(work, 'reached')));
    expect(sshClients()).toBe(1);
    const left = Date.now();
    ca.abort();
    await expect(a).rejects.toThrow(/cancel/i);
    expect(Date.now() - left).toBeLessThan(5_000);
    // git is gone, and with it its ssh: nothing is left connected for a build that left.
    await until('the fetch ssh to exit', () => sshClients() === 0, 5_000);
  } finally {
    rmSync(join(work, 'hold'), { force: true });
  }
  // The repository's lock is free and nothing half-fetched was kept: the next build fetches again.
  const before = served();
  const r = await solver.solve(def, { worker: worker(keyed.sock) });
  expect(await files(r)).toEqual({ 'base.txt': 'base\n', 'one.txt': 'one\n', 'two.txt': 'two\n', 'three.txt': 'three\n' });
  expect(served() - before).toBe(1);
});

test("no attached build's agent holds a key the server takes: SOLVER_GIT_FAILED with ssh's refusal, after asking each agent once", async () => {
  const sha = commit('four');
  const empty = await agent('empty2', []);
  const stranger = await agent('stranger', [join(work, 'stranger')]);
  empty.proc.kill('SIGSTOP');
  const def = await definition(sha);
  const before = served();
  const pa = progress();
  const pb = progress();
  const a = solver.solve(def, { worker: worker(empty.sock), progress: pa });
  a.catch(() => undefined);
  await until('the first build to start the fetch', () => pa.events.some((e) => e.kind === 'vertex.started'));
  const b = solver.solve(def, { worker: worker(stranger.sock), progress: pb });
  b.catch(() => undefined);
  await until('the second build to join the running fetch', () => pb.events.some((e) => e.kind === 'vertex.started'));
  empty.proc.kill('SIGCONT');
  for (const p of [a, b]) {
    await expect(p).rejects.toMatchObject({ cause: { code: 'SOLVER_GIT_FAILED', message: expect.stringMatching(/Permission denied \(publickey\).*tried the "default" SSH agent of 2 attached builds/), hint: expect.stringContaining('ssh-add -l') } });
  }
  expect(empty.log().match(/process_request_identities: replying/g)).toHaveLength(1);
  expect(stranger.log().match(/process_request_identities: replying/g)).toHaveLength(1);
  // No connection got through authentication.
  expect(served()).toBe(before);
});

test('a build that forwards no agent for the id is told to pass --ssh', async () => {
  const def = await definition(commit('five'));
  await expect(solver.solve(def, { worker: worker(undefined) })).rejects.toMatchObject({ cause: { code: 'SOLVER_GIT_FAILED', message: expect.stringContaining('no SSH agent "default"'), hint: 'pass --ssh default' } });
});

/** An agent socket that accepts connections and never answers (a stopped or stuck agent), and counts them. */
async function silentAgent(name: string): Promise<{ sock: string; connections: () => number }> {
  const sock = join(work, `${name}.agent`);
  rmSync(sock, { force: true });
  const held: Socket[] = [];
  const server = createServer((c) => void held.push(c));
  await new Promise<void>((r) => server.listen(sock, r));
  server.unref();
  agentServers.push(() => {
    for (const c of held) c.destroy();
    server.close();
  });
  return { sock, connections: () => held.length };
}
const agentServers: Array<() => void> = [];
afterAll(() => {
  for (const close of agentServers) close();
});

/** Runs `fn` with KILN_SSH_AGENT_TIMEOUT set to `seconds`. */
async function withAgentTimeout<T>(seconds: number, fn: () => Promise<T>): Promise<T> {
  const before = process.env['KILN_SSH_AGENT_TIMEOUT'];
  process.env['KILN_SSH_AGENT_TIMEOUT'] = String(seconds);
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env['KILN_SSH_AGENT_TIMEOUT'];
    else process.env['KILN_SSH_AGENT_TIMEOUT'] = before;
  }
}

test('the only agent accepts and never answers: SOLVER_GIT_FAILED naming the ssh id after the wait, instead of a fetch that hangs until cancelled', async () => {
  const def = await definition(commit('six'));
  const stuck = await silentAgent('stuck');
  const before = served();
  const t0 = Date.now();
  await withAgentTimeout(1, async () => {
    await expect(solver.solve(def, { worker: worker(stuck.sock) })).rejects.toMatchObject({
      cause: {
        code: 'SOLVER_GIT_FAILED',
        message: expect.stringMatching(/the "default" SSH agent accepted the connection but did not answer within 1 s \(the agent of 1 attached build\)/),
        hint: expect.stringContaining('--ssh default'),
      },
    });
  });
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(stuck.connections()).toBeGreaterThan(0);
  expect(served()).toBe(before);
  // Nothing of ssh is left waiting on the agent.
  expect(sshClients()).toBe(0);
}, 60_000);

test("a shared fetch whose first build's agent accepts and never answers: the next attached build's agent serves it", async () => {
  const sha = commit('seven');
  const stuck = await silentAgent('stuck2');
  const keyed = await agent('keyed2', [join(work, 'user')]);
  const def = await definition(sha);
  const before = served();
  await withAgentTimeout(3, async () => {
    const pa = progress();
    const pb = progress();
    const a = solver.solve(def, { worker: worker(stuck.sock), progress: pa });
    // The first build's fetch is waiting on its agent when the second build joins.
    await until('the fetch to ask the silent agent', () => stuck.connections() > 0);
    const b = solver.solve(def, { worker: worker(keyed.sock), progress: pb });
    await until('the second build to join the running fetch', () => pb.events.some((e) => e.kind === 'vertex.started'));
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra?.ref.snapshot).toBe(rb?.ref.snapshot);
    expect(await files(rb)).toMatchObject({ 'seven.txt': 'seven\n' });
  });
  expect(served() - before).toBe(1);
  expect(keyed.log()).toMatch(/replying with 1 allowed of 1 available keys/);
}, 60_000);

test('a fetch whose agent is busy asking its owner to confirm another fetch\'s use of a key (ssh-add -c) waits for it, instead of taking the agent for a stuck one', async () => {
  const sha = commit('eight');
  // A second repository: its fetch runs beside the first one's (each repository has its own lock).
  const repo2 = join(work, 'served', 'repo2.git');
  rmSync(repo2, { recursive: true, force: true });
  gitIn(work, 'clone', '-q', '--bare', repo, repo2);
  const remote2 = remote.replace(repo, repo2);
  // a commit of its own (the same files): a git source's cache key is its commit, which would share the first fetch
  const wc = join(work, 'wc');
  const sha2 = gitIn(wc, 'commit-tree', `${sha}^{tree}`, '-p', sha, '-m', 'repo2');
  gitIn(wc, 'push', '-q', repo2, `${sha2}:refs/heads/main`);
  // OpenSSH's agent answers nobody while the owner confirms a use (its askpass: 2 s, then yes).
  const asking = join(work, 'asking');
  const askpass = join(work, 'askpass.sh');
  writeFileSync(askpass, `#!/bin/sh\n: > '${asking}'\nsleep 2\nexit 0\n`, { mode: 0o755 });
  const sock = join(work, 'confirm.agent');
  rmSync(sock, { force: true });
  const proc = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore', env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' } });
  agents.push(proc);
  await until('the confirming agent', () => existsSync(sock));
  execFileSync('ssh-add', ['-q', '-c', join(work, 'user')], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  await withAgentTimeout(0.5, async () => {
    rmSync(asking, { force: true });
    const a = solver.solve(await definition(sha), { worker: worker(sock) });
    // The first fetch's ssh waits for the owner; the second fetch asks the agent meanwhile.
    await until('the agent to ask its owner', () => existsSync(asking));
    const b = solver.solve(await gitSource(remote2, sha2, { knownSshHosts: knownHosts }).marshal(), { worker: worker(sock) });
    const [ra, rb] = await Promise.all([a, b]);
    expect(await files(ra)).toMatchObject({ 'eight.txt': 'eight\n' });
    expect(await files(rb)).toMatchObject({ 'eight.txt': 'eight\n' });
  });
}, 60_000);
