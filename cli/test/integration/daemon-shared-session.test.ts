/**
 * A step two clients of one `kiln daemon` share takes its ssh agent and secrets from a client
 * still attached to it, at the moment it uses them (BuildKit's session group), not from the client
 * that reached it first: that one may leave (Ctrl-C, killed) while the other still needs the step.
 * Real daemon, real runc, real ssh-agents (kiln starts one per client for its key file and stops
 * it when that client's build ends), ssh-add inside the container.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { copyHostPrograms, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox, type TestDaemon } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let daemon: TestDaemon | undefined;
let socket: string;
beforeAll(async () => {
  for (const tool of ['ssh-agent', 'ssh-add', 'ssh-keygen']) {
    if (!existsSync(`/usr/bin/${tool}`)) throw new Error(`missing prerequisite ${tool}: apt-get install -y openssh-client`);
  }
  socket = join(sb.dir, 'shared-session.sock');
  daemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  // An image (not a local context: a step below one is shared only by key) with the host's ssh-add.
  const tools = copyHostPrograms(join(sb.dir, 'ssh-tools'), ['/usr/bin/ssh-add']);
  await writeTree(tools, { Dockerfile: 'FROM busybox\nCOPY . /\n', '.dockerignore': 'Dockerfile\n.dockerignore\n' });
  const r = await runKiln(sb, ['build', tools, '--root', sb.root, '--progress', 'plain', '-t', 'sshtools'], { env: { KILN_HOST: `unix://${socket}` } });
  if (r.code !== 0) throw new Error(`cannot build the sshtools image:\n${r.stderr}`);
}, 120_000);
afterAll(async () => {
  daemon?.child.kill('SIGTERM');
  await daemon?.exited;
});

/** A fresh ed25519 key file and its `SHA256:…` fingerprint, as `ssh-add -l` prints it. */
function newKey(name: string): { key: string; fingerprint: string } {
  const dir = join(sb.dir, `key-${name}`);
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `kiln-${name}`, '-f', key]);
  const m = /SHA256:\S+/.exec(execFileSync('ssh-keygen', ['-lf', `${key}.pub`], { encoding: 'utf8' }));
  if (m === null) throw new Error(`no fingerprint for ${key}`);
  return { key, fingerprint: m[0] };
}

/** `kiln build CTX` through the daemon into `out`; `onStderr` sees the progress so far and the client. */
function build(ctx: string, out: string, extra: readonly string[], onStderr: (text: string, child: ChildProcess) => void): Promise<KilnRun> {
  return runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra], {
    env: { KILN_HOST: `unix://${socket}` },
    onStderr,
  });
}

/** The ssh-agents `pid` started (kiln runs one per key file in the foreground, as its child). */
function childAgents(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid), '-x', 'ssh-agent'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there is none
  }
}

/** A promise for `text` in a client's progress, and the hook that watches for it. */
function when(text: string): { seen: Promise<void>; onStderr: (all: string) => void } {
  let resolve: () => void = () => undefined;
  const seen = new Promise<void>((r) => (resolve = r));
  return { seen, onStderr: (all) => (all.includes(text) ? resolve() : undefined) };
}

/**
 * Client A builds `ctx`; once A's progress shows `mark`, client B builds it too; once B shows
 * `mark` as well (it is attached to the same running step), A gets `signal`. Returns both outcomes.
 */
async function leaveWhileShared(ctx: string, mark: string, signal: NodeJS.Signals, argsA: readonly string[], argsB: readonly string[]): Promise<{ a: KilnRun; b: KilnRun; outB: string }> {
  const outA = `${ctx}-out-a`;
  const outB = `${ctx}-out-b`;
  const seenA = when(mark);
  let clientA: ChildProcess | undefined;
  const a = build(ctx, outA, argsA, (text, child) => {
    clientA = child;
    seenA.onStderr(text);
  });
  await seenA.seen;
  const seenB = when(mark);
  const b = build(ctx, outB, argsB, seenB.onStderr);
  await seenB.seen;
  // A killed client cannot stop the ssh-agent it started for its key file: the test does.
  const agentsOfA = signal === 'SIGKILL' && clientA?.pid !== undefined ? childAgents(clientA.pid) : [];
  expect(clientA?.kill(signal)).toBe(true);
  try {
    return { a: await a, b: await b, outB };
  } finally {
    for (const pid of agentsOfA) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

for (const signal of ['SIGINT', 'SIGKILL'] as const) {
  test(`a shared RUN --mount=type=ssh goes on with the agent of the client that stayed when the first client is ${signal === 'SIGINT' ? "Ctrl-C'd" : 'killed'}`, async () => {
    const t = token();
    const keyA = newKey(`a-${t}`);
    const keyB = newKey(`b-${t}`);
    const ctx = join(sb.dir, `ssh-${t}`);
    // One step (same digest for both clients): an agent answers before A leaves and after.
    await writeTree(ctx, {
      Dockerfile: `FROM sshtools\nRUN --mount=type=ssh,required=true sh -c 'ssh-add -l > /a && echo listed-${t} && sleep 5 && ssh-add -l > /b'\n`,
    });
    const { a, b, outB } = await leaveWhileShared(ctx, `listed-${t}`, signal, ['--ssh', `default=${keyA.key}`], ['--ssh', `default=${keyB.key}`]);
    if (signal === 'SIGINT') expect(a.code).toBe(130);
    else expect(a.signal).toBe('SIGKILL');
    expect(b.stderr).not.toContain('kiln: error');
    expect(b.code).toBe(0);
    // The step B waited for ran once: A's agent answered first (A started the step), then B's.
    expect(b.stderr.match(new RegExp(`^#\\d+ [\\d.]+ listed-${t}$`, 'gm'))?.length).toBe(1);
    const first = await readFile(join(outB, 'a'), 'utf8');
    expect(first).toContain(keyA.fingerprint);
    expect(first).not.toContain(keyB.fingerprint);
    const second = await readFile(join(outB, 'b'), 'utf8');
    expect(second).toContain(keyB.fingerprint);
    expect(second).not.toContain(keyA.fingerprint);
  }, 120_000);
}

test('a shared step whose only provider of the ssh id left: the agent refuses the connection, the step goes on', async () => {
  const t = token();
  const keyA = newKey(`only-${t}`);
  const ctx = join(sb.dir, `ssh-refused-${t}`);
  await writeTree(ctx, {
    Dockerfile: `FROM sshtools\nRUN --mount=type=ssh sh -c 'ssh-add -l > /a && echo listed-${t} && sleep 5; ssh-add -l > /b 2>&1; echo $? > /code'\n`,
  });
  // B has no --ssh: the mount is optional, and only A's agent served it.
  const { a, b, outB } = await leaveWhileShared(ctx, `listed-${t}`, 'SIGINT', ['--ssh', `default=${keyA.key}`], []);
  expect(a.code).toBe(130);
  expect(b.code).toBe(0);
  expect(await readFile(join(outB, 'a'), 'utf8')).toContain(keyA.fingerprint);
  expect(await readFile(join(outB, 'b'), 'utf8')).not.toContain(keyA.fingerprint);
  expect(await readFile(join(outB, 'code'), 'utf8')).not.toBe('0\n');
}, 120_000);

test('a shared RUN with a secret and an ssh mount that starts after the first client left takes both from the client that stayed', async () => {
  const t = token();
  const keyA = newKey(`sa-${t}`);
  const keyB = newKey(`sb-${t}`);
  const ctx = join(sb.dir, `secret-${t}`);
  await writeTree(ctx, {
    Dockerfile: [
      'FROM sshtools',
      `RUN echo waiting-${t} && sleep 4 && echo ${t} > /first`,
      'RUN --mount=type=secret,id=s,required=true --mount=type=ssh,required=true sh -c \'cat /run/secrets/s > /s && ssh-add -l > /fp\'',
      '',
    ].join('\n'),
    'a.secret': `secret of a ${t}\n`,
    'b.secret': `secret of b ${t}\n`,
  });
  // A reaches (and makes the ops of) both steps first, and leaves while the first one runs.
  const { a, b, outB } = await leaveWhileShared(
    ctx,
    `waiting-${t}`,
    'SIGINT',
    ['--secret', `id=s,src=${join(ctx, 'a.secret')}`, '--ssh', `default=${keyA.key}`],
    ['--secret', `id=s,src=${join(ctx, 'b.secret')}`, '--ssh', `default=${keyB.key}`],
  );
  expect(a.code).toBe(130);
  expect(b.stderr).not.toContain('kiln: error');
  expect(b.code).toBe(0);
  expect(await readFile(join(outB, 's'), 'utf8')).toBe(`secret of b ${t}\n`);
  const fp = await readFile(join(outB, 'fp'), 'utf8');
  expect(fp).toContain(keyB.fingerprint);
  expect(fp).not.toContain(keyA.fingerprint);
  // The secret never reached B's output beyond the file the step wrote on purpose, nor the log.
  expect(b.stderr).not.toContain('secret of');
}, 120_000);

test('bake: a target that fails elsewhere leaves a shared RUN --mount=type=ssh; the other target finishes it with its own agent', async () => {
  const t = token();
  const keyA = newKey(`bake-a-${t}`);
  const keyB = newKey(`bake-b-${t}`);
  const dir = join(sb.dir, `bake-${t}`);
  // The steps meet through a cache mount (one host directory for all three), not by timing: the
  // order is the same under load. a fails only once the shared step has asked A's agent and c (which
  // b waits for before it starts) is done, 3 s later, to leave b time to join the shared step; the
  // shared step asks again 2 s after that, when a has left.
  const sync = `--mount=type=cache,id=sync-${t},target=/sync`;
  const shared = `FROM sshtools AS shared\nRUN ${sync} --mount=type=ssh,required=true sh -c 'ssh-add -l > /a && echo listed-${t} && touch /sync/listed && until [ -f /sync/failing ]; do sleep 0.1; done; sleep 2 && ssh-add -l > /b'\n`;
  await writeTree(dir, {
    'a.Dockerfile': `FROM busybox AS broken\nRUN ${sync} sh -c 'until [ -f /sync/listed ] && [ -f /sync/c-done ]; do sleep 0.1; done; sleep 3; touch /sync/failing; false'\n${shared}FROM shared\nCOPY --from=broken /bin/busybox /x\n`,
    'b.Dockerfile': `${shared}FROM shared\nCOPY --from=c /c /c\n`,
    'c.Dockerfile': `FROM busybox\nRUN ${sync} sh -c 'echo ${t} > /c && touch /sync/c-done'\n`,
    'docker-bake.hcl': [
      'group "default" { targets = ["a", "b"] }',
      `target "a" {\n  dockerfile = "a.Dockerfile"\n  ssh = ["default=${keyA.key}"]\n  output = ["type=local,dest=out-a"]\n}`,
      `target "b" {\n  dockerfile = "b.Dockerfile"\n  contexts = { c = "target:c" }\n  ssh = ["default=${keyB.key}"]\n  output = ["type=local,dest=out-b"]\n}`,
      'target "c" {\n  dockerfile = "c.Dockerfile"\n}',
      '',
    ].join('\n'),
  });
  // The keys live outside the bake's directory: reading them is granted, as buildx asks.
  const allow = ['--allow', `fs.read=${keyA.key}`, '--allow', `fs.read=${keyB.key}`];
  const r = await runKiln(sb, ['bake', '--root', sb.root, '--progress', 'plain', '--execution', 'defer-error', ...allow], { cwd: dir, env: { KILN_HOST: `unix://${socket}` } });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/1 target failed: a/);
  expect(r.stderr.match(new RegExp(`^#\\d+ [\\d.]+ listed-${t}$`, 'gm'))?.length).toBe(1);
  const first = await readFile(join(dir, 'out-b', 'a'), 'utf8');
  expect(first).toContain(keyA.fingerprint);
  const second = await readFile(join(dir, 'out-b', 'b'), 'utf8');
  expect(second).toContain(keyB.fingerprint);
  expect(second).not.toContain(keyA.fingerprint);
}, 120_000);
