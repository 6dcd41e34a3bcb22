import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { kilnBin, processesMatching, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// `kiln build --invoke`: a debug shell in the result, or in the state a failed RUN left, with the
// caller's stdin/stdout (real runc, real snapshots).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

async function context(files: Readonly<Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(dir, files);
  return dir;
}

/** `kiln build --invoke on-error` of a context of `files` plus `flags(ctx)`, the shell reading `stdin`. */
async function onError(files: Readonly<Record<string, string>>, flags: (ctx: string) => readonly string[], stdin: string, progress = 'quiet'): Promise<KilnRun> {
  const ctx = await context(files);
  return runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', progress, ...flags(ctx), '--invoke', 'on-error'], { stdin });
}

/** `kiln build --invoke COMMAND` of OK_DOCKERFILE, sent `signal` once COMMAND wrote `ready` to stderr. */
async function signalWhenReady(command: string, signal: NodeJS.Signals): Promise<KilnRun & { readonly sent: boolean }> {
  const ctx = await context({ Dockerfile: OK_DOCKERFILE });
  let sent = false;
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', command], {
    onStderr: (text, child) => {
      if (!sent && text.includes('ready\n')) {
        sent = true;
        child.kill(signal);
      }
    },
  });
  return { ...r, sent };
}

/** Snapshot ids of the root whose name starts with `prefix`. */
async function snapshotIds(prefix: string): Promise<string[]> {
  return (await readdir(join(sb.root, 'snapshots', 'by-id')).catch(() => [])).filter((n) => n.startsWith(prefix));
}

/** Regular files under `dir` whose bytes contain `text` (symlinks and special files skipped). */
async function filesContaining(dir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    if ((await readFile(path).catch(() => Buffer.alloc(0))).includes(text)) found.push(path);
  }
  return found;
}

const OK_DOCKERFILE = 'FROM busybox\nENV GREETING=hello\nWORKDIR /app\nRUN echo built > /app/f\n';

describe('kiln build --invoke', () => {
  test('runs the command in the result with the image env and workdir, stdin piped through; kiln exits with its status', async () => {
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', 'sh -c \'echo "$GREETING"; pwd; cat f; cat; echo err >&2; exit 3\''], { stdin: 'from stdin\n' });
    expect(r.stdout).toBe('hello\n/app\nbuilt\nfrom stdin\n');
    expect(r.stderr).toContain('err\n');
    expect(r.code).toBe(3);
    // The result's writable layer was thrown away, nothing of the container is left.
    expect(await snapshotIds('failed-')).toEqual([]);
  }, 120_000);

  test('changes made in the invoked container do not reach the result', async () => {
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const first = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', 'sh -c "echo changed > /app/f; rm /bin/ls"']);
    expect(first.code).toBe(0);
    const out = join(sb.dir, `out-${Date.now()}`);
    const second = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=local,dest=${out}`]);
    expect(second.code).toBe(0);
    expect(await readFile(join(out, 'app/f'), 'utf8')).toBe('built\n');
    expect((await readdir(join(out, 'bin'))).includes('ls')).toBe(true);
  }, 120_000);

  test('on-error after a failed RUN: the error first, then /bin/sh in the state it left (its files, env, workdir, env= secrets set again from --secret and written nowhere); exit 1; nothing kept afterwards', async () => {
    const r = await onError(
      {
        Dockerfile: 'FROM busybox\nENV MODE=debug\nWORKDIR /work\nRUN --mount=type=secret,id=tok,env=TOKEN --mount=type=secret,id=gone,env=GONE,required=false echo half > /work/half && exit 5\n',
        'tok.txt': 'sekrit-value',
      },
      (ctx) => ['--secret', `id=tok,src=${join(ctx, 'tok.txt')}`],
      'pwd; cat half; echo "mode=$MODE token=[$TOKEN] gone=[${GONE-unset}]"; exit 0\n',
      'plain',
    );
    expect(r.code).toBe(1);
    // As in the RUN: TOKEN set, the missing optional secret's GONE not set at all.
    expect(r.stdout).toBe('/work\nhalf\nmode=debug token=[sekrit-value] gone=[unset]\n');
    // The build error is printed before the shell starts.
    const errAt = r.stderr.indexOf('did not complete successfully: exit code: 5');
    const shellAt = r.stderr.indexOf('--invoke: running');
    expect(errAt).toBeGreaterThan(-1);
    expect(shellAt).toBeGreaterThan(errAt);
    expect(r.stderr).not.toContain('sekrit-value');
    expect(await filesContaining(sb.root, 'sekrit-value')).toEqual([]);
    expect(await snapshotIds('failed-')).toEqual([]);
  }, 120_000);

  test('after a failed RUN with a secret mount the shell has the secret file again, from this build\'s --secret', async () => {
    const r = await onError(
      { Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=tok,target=/run/secrets/tok,mode=0440 test -s /run/secrets/tok && exit 4\n', 'tok.txt': 'file-secret\n' },
      (ctx) => ['--secret', `id=tok,src=${join(ctx, 'tok.txt')}`],
      'cat /run/secrets/tok; stat -c %a /run/secrets/tok\n',
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('file-secret\n440\n');
    expect(r.stderr).not.toContain('file-secret');
  }, 120_000);

  test('after a failed RUN --security=insecure the shell runs insecure too: the capabilities the step had', async () => {
    const r = await onError(
      { Dockerfile: 'FROM busybox\nRUN --security=insecure grep CapEff /proc/self/status > /caps && exit 3\n' },
      () => ['--allow', 'security.insecure'],
      'cat /caps; grep CapEff /proc/self/status\n',
    );
    expect(r.code).toBe(1);
    const [step, shell] = r.stdout.trim().split('\n');
    // Not the sandbox's default set (docker's 14 capabilities).
    expect(step).toMatch(/^CapEff:\s+[0-9a-f]{16}$/);
    expect(step).not.toMatch(/a80425fb$/);
    expect(shell).toBe(step);
  }, 120_000);

  test('on-error after a successful build runs nothing; a plain failing build keeps no state', async () => {
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const ok = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', 'on-error'], { stdin: 'echo should-not-run\n' });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('');
    const bad = await context({ Dockerfile: 'FROM busybox\nRUN echo x > /x && false\n' });
    const failed = await runKiln(sb, ['build', bad, '--root', sb.root, '--progress', 'quiet']);
    expect(failed.code).toBe(1);
    expect(await snapshotIds('failed-')).toEqual([]);
    // A failure that is no RUN (a missing COPY source) leaves no state to open a shell in.
    const noRun = await context({ Dockerfile: 'FROM busybox\nCOPY missing.txt /\n' });
    const copy = await runKiln(sb, ['build', noRun, '--root', sb.root, '--progress', 'quiet', '--invoke', 'on-error'], { stdin: 'echo should-not-run\n' });
    expect(copy.code).toBe(1);
    expect(copy.stdout).toBe('');
    expect(copy.stderr).not.toContain('--invoke: running');
  }, 120_000);

  test('Ctrl-C goes to the invoked command, not to the build', async () => {
    const r = await signalWhenReady(`sh -c 'trap "echo got-int; exit 9" INT; echo ready >&2; while true; do sleep 0.1; done'`, 'SIGINT');
    expect(r.sent).toBe(true);
    expect(r.stdout).toBe('got-int\n');
    expect(r.code).toBe(9);
  }, 120_000);

  test('SIGHUP (the terminal closed) ends the invoked container: kiln exits by itself and nothing runs on', async () => {
    const t = token();
    try {
      const r = await signalWhenReady(`sh -c 'echo ready >&2; while true; do sleep 0.1; done; echo ${t}'`, 'SIGHUP');
      expect(r.sent).toBe(true);
      expect(r.signal).toBeNull();
      expect(r.code).toBe(130);
      expect(r.stderr).toContain('interrupted (SIGHUP)');
      expect(processesMatching(t)).toEqual([]);
    } finally {
      // What a failing run left behind (the container's shell), by pid.
      for (const line of processesMatching(t)) process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    }
  }, 120_000);

  test('on a terminal the command gets a pseudo-terminal of the same size, and kiln exits after it', async () => {
    // script(1) gives kiln a terminal (33x101); its stdin stays open, as a user's terminal does.
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const kiln = `KILN_DAEMON=0 PATH='${sb.path}' '${process.execPath}' '${kilnBin}' build '${ctx}' --root '${sb.root}' --progress quiet --invoke 'sh -c "tty; stty size; exit 6"'`;
    const child = spawn('script', ['-qec', `stty rows 33 cols 101; ${kiln} 2>/dev/null; echo "kiln-exit=$?"`, '/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    child.stdin.end();
    expect(code).toBe(0);
    expect(out).toMatch(/^\/dev\/pts\/\d+\r+\n33 101\r+\nkiln-exit=6\r*\n$/);
  }, 120_000);

  test('through a kiln daemon: stdin, stdout and the exit status pass through', async () => {
    const socket = join(sb.dir, `d-${Date.now()}.sock`);
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const ctx = await context({ Dockerfile: OK_DOCKERFILE });
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', 'sh -c "cat; cat /app/f; exit 4"'], {
        stdin: 'via daemon\n',
        env: { KILN_HOST: `unix://${socket}` },
      });
      expect(r.stdout).toBe('via daemon\nbuilt\n');
      expect(r.code).toBe(4);
      // The daemon logs a command after it answered it.
      await expect.poll(() => d.log(), { timeout: 10_000 }).toContain('build: client pid');
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  }, 120_000);

  test('two daemon builds sharing a failing RUN: the build that ran it opens its shell; the other, whose step was not its own, none; nothing is kept', async () => {
    const socket = join(sb.dir, `d-${Date.now()}.sock`);
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const t = token();
      // The daemon runs the identical step of both builds once, with the first build's worker.
      const dockerfile = `FROM busybox\nRUN echo ${t} > /half && sleep 2 && exit 3\n`;
      const build = async (stdin: string): Promise<KilnRun> =>
        runKiln(sb, ['build', await context({ Dockerfile: dockerfile }), '--root', sb.root, '--progress', 'quiet', '--invoke', 'on-error'], { stdin, env: { KILN_HOST: `unix://${socket}` } });
      const first = build('cat /half\n');
      for (let i = 0; i < 200 && processesMatching(`echo ${t}`).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(processesMatching(`echo ${t}`)).toHaveLength(1);
      // Still in its shell when the first build's shell is done.
      const second = await build('cat /half; sleep 3\n');
      const a = await first;
      expect([a.code, a.stdout]).toEqual([1, `${t}\n`]);
      expect([second.code, second.stdout]).toEqual([1, '']);
      expect(second.stderr).toContain('did not complete successfully: exit code: 3');
      expect(await snapshotIds('failed-')).toEqual([]);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  }, 120_000);

  test('a bad --invoke value is refused before building', async () => {
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', '  ']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KLN0712');
    expect(r.stderr).toContain('--invoke needs a command');
  }, 60_000);

  test('a Dockerfile from stdin is refused with --invoke (stdin is the command\'s), as buildx refuses it', async () => {
    const ctx = await context({ 'f.txt': 'x\n' });
    const r = await runKiln(sb, ['build', ctx, '-f', '-', '--root', sb.root, '--progress', 'quiet', '--invoke', 'sh -c "cat; echo ran"'], { stdin: OK_DOCKERFILE });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('KLN0712');
    expect(r.stderr).toContain('a Dockerfile or context from stdin cannot be used with --invoke');
  }, 60_000);

  test('--invoke with --call=targets or --check is refused before building: they build nothing to run a command in', async () => {
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    const before = await sb.containersStarted();
    for (const flags of [['--call', 'targets'], ['--check']]) {
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', ...flags, '--invoke', 'sh']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('KLN0712');
      expect(r.stderr).toContain(`--invoke cannot be used with ${flags[0] === '--check' ? '--check' : '--call=targets'}`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(await sb.containersStarted()).toBe(before);
  }, 60_000);

  test('a multi-platform build invokes in the host platform\'s result, even when listed second, and says which', async () => {
    const host = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;
    const other = host === 'linux/amd64' ? 'linux/arm64' : 'linux/amd64';
    // The base is the build platform's, so both platforms' RUN steps run here.
    const ctx = await context({ Dockerfile: `FROM --platform=$BUILDPLATFORM busybox\nARG TARGETPLATFORM\nRUN echo "$TARGETPLATFORM ${token()}" > /p\n` });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', `${other},${host}`, '--invoke', 'cut -d" " -f1 /p']);
    expect(r.stderr).toContain(`in the ${host} result (of ${other}, ${host})`);
    expect(r.stdout).toBe(`${host}\n`);
    expect(r.code).toBe(0);
  }, 120_000);

  test('kiln\'s stdout closing under the invoked command (`| head`) ends the command with its container, quietly as a broken pipe does: exit 0, nothing left', async () => {
    const t = token();
    const ctx = await context({ Dockerfile: OK_DOCKERFILE });
    try {
      const r = await new Promise<{ code: number | null; stderr: string; got: number }>((resolve, reject) => {
        const child = spawn(process.execPath, [kilnBin, 'build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', `sh -c 'while true; do echo ${t}; done'`], {
          env: { ...process.env, PATH: sb.path },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        let got = 0;
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        // The reader goes away after the first output, as `head -1` does.
        child.stdout.once('data', (d: Buffer) => {
          got = d.length;
          child.stdout.destroy();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.once('error', reject);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr, got });
        });
      });
      expect(r.got).toBeGreaterThan(0);
      // Only the --invoke banner: no error, no stack trace.
      expect(r.stderr).toMatch(/^kiln: --invoke: running [^\n]*\n$/);
      expect(r.code).toBe(0);
      expect(processesMatching(t)).toEqual([]);
    } finally {
      for (const line of processesMatching(t)) process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    }
  }, 120_000);
});
