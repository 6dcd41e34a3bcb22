import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kilnBin, repo, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// `kiln daemon` end to end: a real daemon process serves `kiln build` clients over its socket
// with real runc; each test checks the daemon's log to prove which process ran the command.
// Every test runs with both clients: the Node one in kiln.js and the Perl fast path behind the
// `kiln` launcher (the npm bin).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const CLIENTS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['node cli/bin/kiln.js', [process.execPath, kilnBin]],
  ['cli/bin/kiln (Perl client)', [join(repo, 'cli/bin/kiln')]],
];

describe.each(CLIENTS)('%s', (_name, launcher) => {

  let daemon: ChildProcess;
  let daemonLog: () => string;
  let socket: string;

  beforeAll(async () => {
    socket = join(sb.dir, `run-${token()}`, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    daemon = d.child;
    daemonLog = d.log;
  }, 60_000);

  afterAll(async () => {
    if (daemon.exitCode === null) {
      const gone = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      await gone;
    }
  });

  /** A `kiln` client process: cwd, env and stdin of its own. */
  function client(args: readonly string[], opts: { cwd?: string; env?: Record<string, string>; stdin?: string; onStderr?: (text: string, child: ChildProcess) => void } = {}): Promise<KilnRun> {
    return new Promise((resolve, reject) => {
      const child = spawn(launcher[0] as string, [...launcher.slice(1), ...args], {
        cwd: opts.cwd ?? sb.dir,
        env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}`, ...opts.env },
        stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        opts.onStderr?.(stderr, child);
      });
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /** Log lines of the daemon that mention `marker` (one per command it served). */
  function served(marker: string): string[] {
    return daemonLog().split('\n').filter((l) => l.includes(marker));
  }

  test('the daemon runs a build with the client cwd (relative context, -f, --output) and environment (build args)', async () => {
    const t = token();
    const work = join(sb.dir, `work-${t}`);
    await writeTree(work, {
      'ctx/Dockerfile.alt': `FROM busybox\nARG FROM_ENV\nRUN echo "$FROM_ENV ${t}" > /made\n`,
    });
    const r = await client(['build', 'ctx', '-f', 'ctx/Dockerfile.alt', '--root', sb.root, '--build-arg', 'FROM_ENV', '--progress', 'plain', '-o', 'type=local,dest=out'], {
      cwd: work,
      env: { FROM_ENV: `env-${t}` },
    });
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    expect(await readFile(join(work, 'out', 'made'), 'utf8')).toBe(`env-${t} ${t}\n`);
    // Progress streamed back to the client's stderr.
    expect(r.stderr).toMatch(/#\d+ \[\d\/\d\] RUN echo/);
    expect(served(`-f ctx/Dockerfile.alt`)).toHaveLength(1);
    expect(served(`-f ctx/Dockerfile.alt`)[0]).toContain('→ exit 0');
  }, 120_000);

  test('the daemon reads `-f -` from the client stdin, and an unchanged rebuild starts no container', async () => {
    const t = token();
    const ctx = join(sb.dir, `stdin-${t}`);
    await mkdir(ctx);
    const df = `FROM busybox\nRUN echo ${t} > /x\n`;
    const first = await client(['build', ctx, '-f', '-', '--root', sb.root, '--progress', 'quiet'], { stdin: df });
    expect(first.stderr).not.toContain('kiln: error');
    expect(first.code).toBe(0);
    const before = await sb.containersStarted();
    const again = await client(['build', ctx, '-f', '-', '--root', sb.root, '--progress', 'plain'], { stdin: df });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('CACHED');
    expect(await sb.containersStarted()).toBe(before);
    expect(served(`build ${ctx} -f -`)).toHaveLength(2);
  }, 120_000);

  test('a failing RUN on the daemon gives the client the report and exit code 1', async () => {
    const t = token();
    const ctx = join(sb.dir, `fail-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo out-${t} && exit 3\n` });
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`out-${t}`);
    expect(r.stderr).toMatch(/exit code:? 3/);
    expect(served(`build ${ctx}`)[0]).toContain('→ exit 1');
  }, 120_000);

  test('Ctrl-C of the client cancels its build on the daemon: exit 130, no container left, and the daemon serves on', async () => {
    const t = token();
    const ctx = join(sb.dir, `int-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60\n` });
    let sent = false;
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain'], {
      onStderr: (text, child) => {
        if (!sent && text.includes(`started-${t}`)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('KLN0705');
    await expect.poll(() => served(`build ${ctx}`).join('\n'), { timeout: 10_000 }).toContain('→ exit 130');
    const state = join(sb.root, 'runc');
    const left = existsSync(state) ? await readdir(state) : [];
    expect(left).toEqual([]);
    expect(daemon.exitCode).toBeNull();
    const next = await client(['du', '--root', sb.root]);
    expect(next.code).toBe(0);
    expect(served(`du --root ${sb.root}`)).toHaveLength(1);
  }, 120_000);

  test('prune through the daemon is refused while the daemon builds (KLN0708)', async () => {
    const t = token();
    const ctx = join(sb.dir, `busy-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo running-${t} && sleep 3\n` });
    let pruned: Promise<KilnRun> | undefined;
    const build = await client(['build', ctx, '--root', sb.root, '--progress', 'plain'], {
      onStderr: (text) => {
        if (pruned === undefined && text.includes(`running-${t}`)) pruned = client(['prune', '--root', sb.root]);
      },
    });
    expect(build.code).toBe(0);
    const p = await pruned;
    expect(p?.code).toBe(1);
    expect(p?.stderr).toContain('KLN0708');
    // Idle again: prune runs.
    expect((await client(['prune', '--root', sb.root])).code).toBe(0);
  }, 120_000);

  test('a command for another root, or with KILN_DAEMON=0, runs in the client process', async () => {
    const otherRoot = join(sb.dir, `other-${token()}`);
    const other = await client(['du', '--root', otherRoot]);
    expect(other.code).toBe(0);
    expect(served(`du --root ${otherRoot}`)).toHaveLength(0);
    const optOut = await client(['du', '--root', sb.root, '-v'], { env: { KILN_DAEMON: '0' } });
    expect(optOut.code).toBe(0);
    expect(served(`du --root ${sb.root} -v`)).toHaveLength(0);
  }, 60_000);

  test('a second daemon on the same socket is refused; SIGTERM stops the daemon and removes its socket', async () => {
    const second = spawn(process.execPath, [kilnBin, 'daemon', '--root', sb.root, '--addr', `unix://${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    second.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => second.once('exit', r));
    expect(code).toBe(1);
    expect(err).toContain('KLN0709');
    const gone = new Promise<number | null>((r) => daemon.once('exit', (c) => r(c)));
    daemon.kill('SIGTERM');
    expect(await gone).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // No daemon: the client runs the command itself.
    expect((await client(['du', '--root', sb.root])).code).toBe(0);
  }, 60_000);
});
