import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { chownSync, existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { kilnBin, processesMatching, repo, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

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
  /** The run and the client's pid (the daemon logs each command by client pid). */
  type ClientRun = KilnRun & { readonly pid: number; readonly stdoutBytes: Buffer };

  function client(
    args: readonly string[],
    opts: { cwd?: string; env?: Record<string, string>; stdin?: string | Buffer; keepStdinOpen?: boolean; onStderr?: (text: string, child: ChildProcess) => void } = {},
  ): Promise<ClientRun> {
    return new Promise((resolve, reject) => {
      const child = spawn(launcher[0] as string, [...launcher.slice(1), ...args], {
        cwd: opts.cwd ?? sb.dir,
        env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}`, ...opts.env },
        stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      if (opts.stdin !== undefined) {
        if (opts.keepStdinOpen === true) child.stdin?.write(opts.stdin);
        else child.stdin?.end(opts.stdin);
      }
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => out.push(d));
      child.stderr?.on('data', (d: Buffer) => {
        err.push(d);
        stderr += d.toString();
        opts.onStderr?.(stderr, child);
      });
      child.once('error', reject);
      child.once('close', (code, signal) => {
        const stdoutBytes = Buffer.concat(out);
        resolve({ code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr, stderrBytes: Buffer.concat(err), pid: child.pid ?? -1 });
      });
    });
  }

  /** Log lines of the daemon that mention `marker` (one per command it served). */
  /**
   * The daemon's log lines of one command. The daemon logs a command after it answered it: a line
   * may come a moment after the client exits, so tests poll for the lines they expect.
   */
  function served(run: { pid: number } | string): string[] {
    const marker = typeof run === 'string' ? run : `client pid ${run.pid} →`;
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
    await expect.poll(() => served(r), { timeout: 10_000 }).toHaveLength(1);
    await expect.poll(() => served(r)[0] ?? '', { timeout: 10_000 }).toMatch(/^kiln daemon: build: client pid \d+ → exit 0/);
    // The log names the command only: argument values (build args) stay out of it.
    expect(daemonLog()).not.toContain(`env-${t}`);
    expect(daemonLog()).not.toContain('FROM_ENV');
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
    await expect.poll(() => served(first), { timeout: 10_000 }).toHaveLength(1);
    await expect.poll(() => served(again), { timeout: 10_000 }).toHaveLength(1);
  }, 120_000);

  test('a failing RUN on the daemon gives the client the report and exit code 1', async () => {
    const t = token();
    const ctx = join(sb.dir, `fail-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo out-${t} && exit 3\n` });
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`out-${t}`);
    expect(r.stderr).toMatch(/exit code:? 3/);
    await expect.poll(() => served(r)[0] ?? '', { timeout: 10_000 }).toContain('→ exit 1');
  }, 120_000);

  test('Ctrl-C of the client cancels its build on the daemon: exit 130, no container left, and the daemon serves on', async () => {
    const t = token();
    const ctx = join(sb.dir, `int-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60 && echo done-${t}\n` });
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
    await expect.poll(() => served(r).join('\n'), { timeout: 10_000 }).toContain('→ exit 130');
    // The RUN's shell (its command line has the token) is gone: runc killed the container.
    await expect.poll(() => processesMatching(`started-${t}`), { timeout: 10_000 }).toEqual([]);
    expect(daemon.exitCode).toBeNull();
    const next = await client(['du', '--root', sb.root]);
    expect(next.code).toBe(0);
    await expect.poll(() => served(next), { timeout: 10_000 }).toHaveLength(1);
  }, 120_000);

  test('-q prints the image ID on the client stdout; -o - streams the rootfs tarball there byte for byte (as in-process)', async () => {
    const t = token();
    const work = join(sb.dir, `stdout-${t}`);
    // Random bytes: any re-encoding on the way (UTF-8, frames) changes the archive.
    await writeTree(work, { 'ctx/Dockerfile': `FROM busybox\nRUN head -c 2500000 /dev/urandom > /rand && echo ${t} > /made\n` });
    const iid = join(work, 'iid');
    const quiet = await client(['build', 'ctx', '--root', sb.root, '-q', '-t', `stdout-${t}:1`, '--iidfile', 'iid'], { cwd: work });
    expect(quiet.stderr).not.toContain('kiln: error');
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toBe(`${await readFile(iid, 'utf8')}\n`);
    expect(quiet.stdout).toMatch(/^sha256:[a-f0-9]{64}\n$/);
    await expect.poll(() => served(quiet), { timeout: 10_000 }).toHaveLength(1);

    const tar = await client(['build', 'ctx', '--root', sb.root, '--progress', 'quiet', '-o', '-'], { cwd: work });
    expect(tar.code).toBe(0);
    await expect.poll(() => served(tar), { timeout: 10_000 }).toHaveLength(1);
    const local = await client(['build', 'ctx', '--root', sb.root, '--progress', 'quiet', '-o', 'type=tar,dest=-'], { cwd: work, env: { KILN_DAEMON: '0' } });
    expect(local.code).toBe(0);
    expect(served(local)).toHaveLength(0);
    expect(tar.stdoutBytes.length).toBeGreaterThan(2_500_000);
    expect(tar.stdoutBytes.equals(local.stdoutBytes)).toBe(true);
    const rand = execFileSync('tar', ['-xOf', '-', 'rand'], { input: tar.stdoutBytes, maxBuffer: 1 << 24 });
    expect(rand.length).toBe(2_500_000);
  }, 120_000);

  test('kiln build - takes a gzip tar context from the client stdin, byte for byte', async () => {
    const t = token();
    const src = join(sb.dir, `stdin-tar-${t}`);
    // Random bytes in the context: a re-encoded stdin would change their checksum.
    await writeTree(src, { Dockerfile: `FROM busybox\nCOPY rand /rand\nRUN sha256sum /rand > /sum && echo ${t} >> /sum\n` });
    execFileSync('sh', ['-c', `head -c 1500000 /dev/urandom > '${join(src, 'rand')}'`]);
    const tgz = execFileSync('sh', ['-c', `tar -cf - -C '${src}' . | gzip -c`], { maxBuffer: 1 << 24 });
    const r = await client(['build', '-', '--root', sb.root, '--progress', 'quiet', '-o', 'type=local,dest=out'], { cwd: src, stdin: tgz });
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    await expect.poll(() => served(r), { timeout: 10_000 }).toHaveLength(1);
    const want = execFileSync('sha256sum', [join(src, 'rand')], { encoding: 'utf8' }).split(' ')[0];
    expect(await readFile(join(src, 'out', 'sum'), 'utf8')).toBe(`${want ?? '?'}  /rand\n${t}\n`);
  }, 120_000);

  test('a closed stdout pipe (| head) ends the client quietly, as in-process: exit 0, no stack trace; the daemon serves on', async () => {
    const t = token();
    const work = join(sb.dir, `epipe-${t}`);
    await writeTree(work, { 'ctx/Dockerfile': `FROM busybox\nRUN head -c 3000000 /dev/urandom > /rand && echo ${t} > /made\n` });
    const cmd = `${launcher.map((a) => `'${a}'`).join(' ')} build ctx --root '${sb.root}' --progress quiet -o - | head -c 10 > /dev/null; exit \${PIPESTATUS[0]}`;
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn('bash', ['-c', cmd], { cwd: work, env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(daemon.exitCode).toBeNull();
    const next = await client(['du', '--root', sb.root]);
    expect(next.code).toBe(0);
    await expect.poll(() => served(next), { timeout: 10_000 }).toHaveLength(1);
  }, 120_000);

  test('a client killed with SIGKILL mid-RUN: the daemon cancels its build (the container is gone) and serves on', async () => {
    const t = token();
    const ctx = join(sb.dir, `kill-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo started-${t} && sleep 60 && echo done-${t}\n` });
    let killed = false;
    let running = 0;
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain'], {
      onStderr: (text, child) => {
        // The RUN's own output line (`#5 0.093 started-…`), not its name: the container runs.
        if (!killed && new RegExp(`#\\d+ \\d+\\.\\d+ started-${t}`).test(text)) {
          killed = true;
          running = processesMatching(`started-${t}`).length;
          child.kill('SIGKILL');
        }
      },
    });
    expect(killed).toBe(true);
    expect(running).toBeGreaterThan(0);
    expect(r.signal).toBe('SIGKILL');
    await expect.poll(() => served(r).join('\n'), { timeout: 10_000 }).toContain('→ exit 130');
    await expect.poll(() => processesMatching(`started-${t}`), { timeout: 10_000 }).toEqual([]);
    expect(daemon.exitCode).toBeNull();
    const next = await client(['du', '--root', sb.root]);
    expect(next.code).toBe(0);
    await expect.poll(() => served(next), { timeout: 10_000 }).toHaveLength(1);
  }, 120_000);

  test('kiln llb and dump-llb through the daemon print what they print in-process (client cwd, env build args)', async () => {
    const t = token();
    const work = join(sb.dir, `llb-${t}`);
    await writeTree(work, { 'app/Dockerfile': `FROM busybox AS b\nARG FROM_ENV\nRUN echo $FROM_ENV ${t}\nFROM b\nCOPY x /x\n`, 'app/x': 'x' });
    const args = ['llb', 'app', '--root', sb.root, '--build-arg', 'FROM_ENV', '--format', 'json'];
    const local = await client(args, { cwd: work, env: { FROM_ENV: `v-${t}`, KILN_DAEMON: '0' } });
    const remote = await client(args, { cwd: work, env: { FROM_ENV: `v-${t}` } });
    expect(local.code).toBe(0);
    expect(remote.code).toBe(0);
    expect(remote.stdout).toBe(local.stdout);
    expect(remote.stdout).toContain(`v-${t}`);
    // The daemon logs a command after it answered it: the line may come a moment after the client exits.
    await expect.poll(() => served(remote)[0] ?? '', { timeout: 10_000 }).toMatch(/llb: client pid \d+ → exit 0/);
    expect(served(local)).toHaveLength(0);
    // A root the daemon does not own is fine for llb: it only reads that store.
    const other = await client(['llb', 'app', '--root', join(sb.dir, `empty-root-${t}`)], { cwd: work, env: { FROM_ENV: 'x' } });
    await expect.poll(() => served(other), { timeout: 10_000 }).toHaveLength(1);
    await writeTree(work, { 'def.json': '' });
    const pb = await client(['llb', 'app', '--root', sb.root, '--format', 'pb'], { cwd: work, env: { KILN_DAEMON: '0' } });
    expect(pb.code).toBe(0);
  }, 120_000);

  test('identical steps of two clients building at the same time run once', async () => {
    const t = token();
    // The RUN lasts until both clients show it started: it waits for a file the test writes into
    // its cache mount's directory then (a fixed `sleep 2` cost 2 s and lost to a slow second client).
    const host = join(sb.root, 'solver', 'cachemounts', `%2fmerge-${t}`);
    const wait = 'i=0; while [ ! -e /c/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done';
    const df = `FROM busybox\nRUN --mount=type=cache,id=merge-${t},target=/c sh -c '${wait}; echo merged-${t} > /m'\n`;
    const a = join(sb.dir, `merge-a-${t}`);
    const b = join(sb.dir, `merge-b-${t}`);
    await writeTree(a, { Dockerfile: df });
    await writeTree(b, { Dockerfile: df });
    const before = await sb.containersStarted();
    const atRun = new Set<string>();
    let released: Promise<void> | undefined;
    const onStderr = (who: string) => (text: string): void => {
      if (!text.includes(`merged-${t}`)) return;
      atRun.add(who);
      if (atRun.size === 2 && released === undefined) {
        released = (async () => {
          await expect.poll(() => existsSync(host), { timeout: 30_000 }).toBe(true);
          await writeFile(join(host, 'go'), '');
        })();
      }
    };
    const [ra, rb] = await Promise.all([
      client(['build', a, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${a}/out`], { onStderr: onStderr('a') }),
      client(['build', b, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${b}/out`], { onStderr: onStderr('b') }),
    ]);
    await released;
    expect(atRun.size).toBe(2);
    expect([ra.code, rb.code]).toEqual([0, 0]);
    expect(await sb.containersStarted()).toBe(before + 1);
    expect(await readFile(join(a, 'out', 'm'), 'utf8')).toBe(`merged-${t}\n`);
    expect(await readFile(join(b, 'out', 'm'), 'utf8')).toBe(`merged-${t}\n`);
  }, 120_000);

  test('prune through the daemon is refused while the daemon builds (KLN0708)', async () => {
    const t = token();
    const ctx = join(sb.dir, `busy-${t}`);
    // The RUN lasts until prune has its answer: it waits for a file the test writes into its
    // cache mount's directory (a fixed `sleep 3` cost 3 s and failed a prune slower than that).
    const host = join(sb.root, 'solver', 'cachemounts', `%2fbusy-${t}`);
    const wait = 'i=0; while [ ! -e /c/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done';
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=busy-${t},target=/c sh -c 'echo running-${t}; ${wait}'\n` });
    let pruned: Promise<KilnRun> | undefined;
    let released: Promise<void> | undefined;
    const build = await client(['build', ctx, '--root', sb.root, '--progress', 'plain'], {
      onStderr: (text) => {
        if (pruned === undefined && text.includes(`running-${t}`)) {
          pruned = client(['prune', '--root', sb.root]);
          released = pruned.then(async () => {
            await expect.poll(() => existsSync(host), { timeout: 30_000 }).toBe(true);
            await writeFile(join(host, 'go'), '');
          });
        }
      },
    });
    await released;
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
    expect(served(other)).toHaveLength(0);
    const optOut = await client(['du', '--root', sb.root, '-v'], { env: { KILN_DAEMON: '0' } });
    expect(optOut.code).toBe(0);
    expect(served(optOut)).toHaveLength(0);
  }, 60_000);

  test('Ctrl-C while the daemon still reads `-f -` ends the command with 130', async () => {
    const t = token();
    const child = spawn(launcher[0] as string, [...launcher.slice(1), 'build', sb.dir, '-f', '-', '--root', sb.root, '--progress', 'plain', '-t', `sig-${t}`], {
      env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.stdin?.write('FROM busybox\n'); // never ended: the daemon is still reading
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    // Connected, the daemon running the command and waiting for the rest of stdin (its log says
    // when it started the command: no fixed wait, which costs 2 s when quiet and races under load).
    await expect.poll(() => served(`started build for client pid ${child.pid ?? -1}`), { timeout: 30_000 }).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    await expect.poll(() => served({ pid: child.pid ?? -1 }).join('\n'), { timeout: 10_000 }).toContain('→ exit 130');
    expect((await client(['images', '--root', sb.root])).stdout).not.toContain(`sig-${t}`);
  }, 60_000);

  test('a client killed while sending `-f -` builds nothing: the truncated Dockerfile is not used', async () => {
    const t = token();
    const child = spawn(launcher[0] as string, [...launcher.slice(1), 'build', sb.dir, '-f', '-', '--root', sb.root, '--progress', 'plain', '-t', `cut-${t}`], {
      env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` },
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.stdin?.write('FROM busybox\n');
    // Killed once the daemon runs its command (a fixed wait lost the race under load: killed
    // before its hello arrived, the client was never served at all).
    await expect.poll(() => served(`started build for client pid ${child.pid ?? -1}`), { timeout: 30_000 }).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGKILL');
    await expect.poll(() => served({ pid: child.pid ?? -1 }).join('\n'), { timeout: 10_000 }).toMatch(/→ exit 130/);
    expect((await client(['images', '--root', sb.root])).stdout).not.toContain(`cut-${t}`);
  }, 60_000);

  test('a malformed hello is declined and the daemon serves on', async () => {
    for (const hello of ['{"version":2,"args":[]}', '{"version":1,"argv":"build"}', 'not json']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const s = connect(socket);
        let got = Buffer.alloc(0);
        s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
        s.once('close', () => resolve(String.fromCharCode(got[0] ?? 0)));
        s.once('error', reject);
        const body = Buffer.from(hello);
        const head = Buffer.alloc(5);
        head[0] = 0x68;
        head.writeUInt32BE(body.length, 1);
        s.write(Buffer.concat([head, body]));
      });
      expect(answer).toBe('n');
    }
    expect(daemon.exitCode).toBeNull();
    expect((await client(['du', '--root', sb.root])).code).toBe(0);
  }, 60_000);

  test('a socket that is not the caller\'s is not used: the client warns and runs the command itself', async () => {
    chownSync(socket, 12345, 12345);
    try {
      const r = await client(['du', '--root', sb.root]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('not using the daemon socket');
      expect(served(r)).toHaveLength(0);
    } finally {
      chownSync(socket, 0, 0);
    }
  }, 60_000);

  test('a second daemon on the same socket is refused; SIGTERM interrupts a running build and stops the daemon', async () => {
    const t = token();
    const ctx = join(sb.dir, `long-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo long-${t} && sleep 60\n` });
    const second = spawn(process.execPath, [kilnBin, 'daemon', '--root', sb.root, '--addr', `unix://${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    second.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => second.once('exit', r));
    expect(code).toBe(1);
    expect(err).toContain('KLN0709');
    let killed = false;
    const long = client(['build', ctx, '--root', sb.root, '--progress', 'plain'], {
      onStderr: (text) => {
        if (!killed && text.includes(`long-${t}`)) {
          killed = true;
          daemon.kill('SIGTERM');
        }
      },
    });
    const gone = new Promise<number | null>((r) => daemon.once('exit', (c) => r(c)));
    const t0 = Date.now();
    const r = await long;
    expect(killed).toBe(true);
    expect(r.code).toBe(130);
    expect(await gone).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(existsSync(socket)).toBe(false);
    // No daemon: the client runs the command itself.
    expect((await client(['du', '--root', sb.root])).code).toBe(0);
  }, 60_000);
});

// The launcher finds its files through npm's symlinks without readlink -f, and the Perl client
// takes the shell's $PWD as the cwd only when it is the process's directory.
test('the kiln launcher through a chain of relative symlinks, with a true or a stale $PWD, runs in the client cwd', async () => {
  const t = token();
  const socket = join(sb.dir, `links-${t}`, 'kilnd.sock');
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const work = join(sb.dir, `links-work-${t}`);
    await writeTree(work, { 'app/Dockerfile': `FROM scratch\nCOPY f /f-${t}\n`, 'app/f': 'f' });
    // bin/kiln -> ../lib/kiln -> <repo>/cli/bin/kiln, as npm links a package's bin.
    const { symlink } = await import('node:fs/promises');
    await mkdir(join(sb.dir, `links-${t}`, 'bin'), { recursive: true });
    await mkdir(join(sb.dir, `links-${t}`, 'lib'), { recursive: true });
    await symlink(join(repo, 'cli/bin/kiln'), join(sb.dir, `links-${t}`, 'lib', 'kiln'));
    await symlink('../lib/kiln', join(sb.dir, `links-${t}`, 'bin', 'kiln'));
    const run = (pwd: string): Promise<KilnRun & { pid: number }> =>
      new Promise((resolve, reject) => {
        const child = spawn(join(sb.dir, `links-${t}`, 'bin', 'kiln'), ['llb', 'app', '--session-id', 's'], {
          cwd: work,
          env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}`, PWD: pwd },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.once('error', reject);
        child.once('close', (code, signal) => {
          const stderrBytes = Buffer.concat(err);
          resolve({ code, signal, stdout, stderr: stderrBytes.toString(), stderrBytes, pid: child.pid ?? -1 });
        });
      });
    const truePwd = await run(work);
    const stalePwd = await run(sb.dir);
    for (const r of [truePwd, stalePwd]) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`/f-${t}`);
      await expect.poll(() => d.log(), { timeout: 10_000 }).toContain(`llb: client pid ${r.pid} → exit 0`);
    }
    expect(stalePwd.stdout).toBe(truePwd.stdout);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 60_000);

test('the warm-up builds before serving leave the daemon root and the temp dir as they were', async () => {
  const t = token();
  const root = join(sb.dir, `warm-root-${t}`);
  const tmp = join(sb.dir, `warm-tmp-${t}`);
  await mkdir(tmp, { recursive: true });
  const socket = join(sb.dir, `warm-${t}`, 'kilnd.sock');
  const d = await startDaemon(sb, ['--root', root, '--addr', `unix://${socket}`], { TMPDIR: tmp });
  try {
    expect(d.log()).toContain('serving');
    // nothing of the warm-up's builds in this root's cache or image store, nothing left in TMPDIR
    const du = spawn(join(repo, 'cli/bin/kiln'), ['du', '--root', root], { env: { ...process.env, KILN_HOST: `unix://${socket}` } });
    let out = '';
    du.stdout.on('data', (b: Buffer) => (out += b.toString()));
    expect(await new Promise((r) => du.once('close', r))).toBe(0);
    expect(out).toMatch(/Total:\s+0B/);
    expect((await readdir(tmp)).filter((f) => f.startsWith('kiln-warmup-'))).toEqual([]);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 60_000);

test('kiln daemon stop, or a tcp:// address, is refused before anything listens: what to do instead (KLN0709)', async () => {
  const t = token();
  const dir = join(sb.dir, `refused-${t}`);
  await mkdir(dir, { recursive: true });
  const stop = await runKiln(sb, ['daemon', 'stop', '--root', sb.root, '--addr', `unix://${join(dir, 'kilnd.sock')}`], { env: { KILN_DAEMON: '0' } });
  expect(stop.code).toBe(1);
  expect(stop.stderr).toMatch(/^kiln: error KLN0709: kiln daemon takes no subcommand \(got "stop"\)/m);
  expect(stop.stderr).toContain('a daemon stops on SIGINT or SIGTERM');
  // tcp://… was a relative path: a directory "tcp:" made in the cwd and a socket listening in it
  const tcp = await runKiln(sb, ['daemon', '--root', sb.root, '--addr', 'tcp://127.0.0.1:1234'], { cwd: dir, env: { KILN_DAEMON: '0' } });
  expect(tcp.code).toBe(1);
  expect(tcp.stderr).toMatch(/^kiln: error KLN0709: --addr tcp:\/\/127\.0\.0\.1:1234: kiln daemon listens on a unix socket only/m);
  expect(await readdir(dir)).toEqual([]);
  // a bad size names where it came from (it said only: invalid size "10QB")
  const size = await runKiln(sb, ['daemon', '--root', sb.root, '--addr', `unix://${join(dir, 'kilnd.sock')}`, '--gc-keep-storage', '10QB'], { env: { KILN_DAEMON: '0' } });
  expect(size.code).toBe(1);
  expect(size.stderr).toMatch(/^kiln: error KLN0707: --gc-keep-storage: invalid size "10QB"/m);
  const sizeEnv = await runKiln(sb, ['daemon', '--root', sb.root, '--addr', `unix://${join(dir, 'kilnd.sock')}`], { env: { KILN_DAEMON: '0', KILN_GC_KEEP_STORAGE: 'lots' } });
  expect(sizeEnv.stderr).toMatch(/^kiln: error KLN0707: KILN_GC_KEEP_STORAGE: invalid size "lots"/m);
}, 60_000);

// The client said only "closed the connection before the command finished": nothing of what
// happened or what to do.
test('a daemon killed mid-build: each client exits 1 saying the daemon stopped and what to do', async () => {
  const t = token();
  const ctx = join(sb.dir, `killed-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo killed-${t} && sleep 60\n` });
  const socket = join(sb.dir, `killed-run-${t}`, 'kilnd.sock');
  for (const launcher of [[process.execPath, kilnBin], [join(repo, 'cli/bin/kiln')]]) {
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    const child = spawn(launcher[0] as string, [...launcher.slice(1), 'build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache'], {
      env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes(`killed-${t}`) && d.child.exitCode === null) d.child.kill('SIGKILL');
    });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    await d.exited;
    expect(code, err).toBe(1);
    expect(err).toContain('kiln: error KLN0709: the kiln daemon closed the connection before the command finished\nhint: the daemon stopped (killed, crashed or shut down): see its log, then run the command again');
  }
}, 120_000);
