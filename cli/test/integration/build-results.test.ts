import { execFileSync, spawn } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { kilnBin, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// What `kiln build` hands back besides the build itself, as buildx does: `-q` (the image ID on
// stdout), `--iidfile`, and outputs written to stdout (`-o -`, `type=tar|oci|docker,dest=-`).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

interface BinaryRun {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** `node cli/bin/kiln.js ARGS` in process (no daemon) with stdout kept as bytes. */
function kiln(args: readonly string[], opts: { cwd?: string; timeoutMs?: number; stdin?: Uint8Array | string } = {}): Promise<BinaryRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      cwd: opts.cwd ?? sb.dir,
      env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' },
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // A hung kiln is killed, and fails the test on its exit code rather than at the test timeout.
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** Names of the entries of a tar archive (GNU tar reads it: a truncated archive fails). */
function tarNames(tar: Buffer): string[] {
  return execFileSync('tar', ['-tf', '-'], { input: tar, encoding: 'utf8' }).split('\n').filter((l) => l !== '');
}

test('-q prints only the image ID (the config digest, as --iidfile) on stdout and no progress; it refuses --progress plain', async () => {
  const t = token();
  const ctx = join(sb.dir, `quiet-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /q\n` });
  const iid = join(sb.dir, `quiet-${t}.iid`);
  const r = await kiln(['build', ctx, '--root', sb.root, '-q', '-t', `quiet-${t}:1`, '--iidfile', iid]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  const id = await readFile(iid, 'utf8');
  expect(id).toMatch(/^sha256:[a-f0-9]{64}$/);
  expect(r.stdout.toString()).toBe(`${id}\n`);
  expect(r.stderr).not.toMatch(/^#\d+ /m);
  expect(r.stderr).not.toContain('RUN echo');

  const long = await kiln(['build', ctx, '--root', sb.root, '--quiet', '-t', `quiet-${t}:1`]);
  expect(long.code).toBe(0);
  expect(long.stdout.toString()).toMatch(/^sha256:[a-f0-9]{64}\n$/);

  const clash = await kiln(['build', ctx, '--root', sb.root, '-q', '--progress', 'plain', '-t', `quiet-${t}:1`]);
  expect(clash.code).toBe(1);
  expect(clash.stderr).toMatch(/--progress plain and --quiet cannot be used together/);
  expect(clash.stderr).not.toMatch(/\n\s+at /);
  expect(clash.stdout.length).toBe(0);

  await writeFile(join(ctx, 'Dockerfile.fail'), `FROM busybox\nRUN echo no-${t} && exit 4\n`);
  const failed = await kiln(['build', ctx, '-f', join(ctx, 'Dockerfile.fail'), '--root', sb.root, '-q', '-t', `quiet-${t}:2`]);
  expect(failed.code).toBe(1);
  expect(failed.stdout.length).toBe(0);
  expect(failed.stderr).toMatch(/exit code:? 4/);
});

test('--iidfile: a failed build leaves no stale file; an output without an image is refused before anything runs', async () => {
  const t = token();
  const ctx = join(sb.dir, `iid-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} && exit 5\n`, 'ok/Dockerfile': `FROM busybox\nRUN echo ok-${t} > /ok\n` });
  const iid = join(sb.dir, `iid-${t}.txt`);
  await writeFile(iid, 'sha256:stale');
  const failed = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', `iid-${t}:1`, '--iidfile', iid]);
  expect(failed.code).toBe(1);
  // buildx removes the file before building, so a script never reads the previous build's ID.
  expect(existsSync(iid)).toBe(false);

  const before = await sb.containersStarted();
  const out = join(sb.dir, `iid-${t}-out`);
  const local = await kiln(['build', join(ctx, 'ok'), '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`, '--iidfile', iid]);
  expect(local.code).toBe(1);
  expect(local.stderr).toContain('KLN0704');
  expect(local.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(out)).toBe(false);
  expect(await sb.containersStarted()).toBe(before);
});

test('-o - and type=tar,dest=- write the root filesystem tarball to stdout; type=oci,dest=- an OCI archive; type=local,dest=- is refused', async () => {
  const t = token();
  const ctx = join(sb.dir, `stdout-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /made && head -c 3000000 /dev/urandom > /big\n` });
  const dash = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', '-']);
  expect(dash.stderr).not.toContain('kiln: error');
  expect(dash.code).toBe(0);
  const names = tarNames(dash.stdout);
  expect(names).toContain('made');
  expect(names).toContain('big');
  expect(names).toContain('bin/busybox');
  // Nothing but the archive on stdout; the summary names stdout, not a temporary file.
  expect(dash.stderr).not.toMatch(/kiln-output-/);

  const tar = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', 'type=tar,dest=-']);
  expect(tar.code).toBe(0);
  expect(tar.stdout.equals(dash.stdout)).toBe(true);

  const oci = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', 'type=oci,dest=-,name=stdout:1', '--metadata-file', join(sb.dir, `stdout-${t}.json`)]);
  expect(oci.code).toBe(0);
  const archive = join(sb.dir, `stdout-${t}.oci.tar`);
  await writeFile(archive, oci.stdout);
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${archive}`], { encoding: 'utf8' })) as { Digest: string };
  const meta = JSON.parse(await readFile(join(sb.dir, `stdout-${t}.json`), 'utf8')) as Record<string, unknown>;
  expect(inspected.Digest).toBe(meta['containerimage.digest']);
  // buildx's root descriptor: the manifest skopeo reads, its media type and size.
  const raw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${archive}`]);
  expect(meta['containerimage.descriptor']).toEqual({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: inspected.Digest, size: raw.length });

  const before = await sb.containersStarted();
  const local = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache', '-o', 'type=local,dest=-']);
  expect(local.code).toBe(1);
  expect(local.stderr).toMatch(/type=local writes a directory and cannot write to stdout/);
  const two = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache', '-o', '-', '-o', 'type=oci,dest=-']);
  expect(two.code).toBe(1);
  expect(two.stderr).toMatch(/only one output can be written to stdout/);
  expect(await sb.containersStarted()).toBe(before);
  // No temporary archive is left behind.
  expect((await readdir(tmpdir())).filter((n) => n.startsWith('kiln-output-'))).toEqual([]);
}, 120_000);

test('a stdout that fails: a closed pipe (| head) ends the build quietly and leaves no temporary archive; a full device (/dev/full) is one error line, exit 1', async () => {
  const t = token();
  const ctx = join(sb.dir, `stdout-fail-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN head -c 3000000 /dev/urandom > /big && echo ${t} > /made\n` });
  const sh = (cmd: string): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', cmd], { cwd: sb.dir, env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0', TMPDIR: join(sb.dir, `tmp-${t}`) }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stderr }));
    });
  await mkdir(join(sb.dir, `tmp-${t}`));
  const kilnCmd = `'${process.execPath}' '${kilnBin}'`;
  const head = await sh(`${kilnCmd} build '${ctx}' --root '${sb.root}' --progress quiet -o - | head -c 10 > /dev/null; exit \${PIPESTATUS[0]}`);
  expect(head.stderr).toBe('');
  expect(head.code).toBe(0);
  // The archive went through a temporary file, removed although the copy stopped half way.
  expect(await readdir(join(sb.dir, `tmp-${t}`))).toEqual([]);
  for (const args of [`build '${ctx}' --root '${sb.root}' --progress quiet -o -`, '--version', `dump-llb --help`]) {
    const full = await sh(`${kilnCmd} ${args} > /dev/full`);
    expect(full.stderr).toMatch(/^kiln: error KLN_CLI_STDOUT: cannot write to standard output: ENOSPC[^\n]*\n$/);
    expect(full.code).toBe(1);
  }
  expect(await readdir(join(sb.dir, `tmp-${t}`))).toEqual([]);
}, 120_000);

test('--iidfile and --metadata-file write through a symlink and into a device node or FIFO instead of replacing them; an impossible directory fails before the build', async () => {
  const t = token();
  const ctx = join(sb.dir, `targets-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /t\n` });
  const real = join(sb.dir, `targets-${t}.iid`);
  await writeFile(real, 'old');
  const link = join(sb.dir, `targets-${t}.link`);
  await symlink(real, link);
  // A character device like /dev/null (as root), and a named pipe a reader waits on.
  const dev = join(sb.dir, `targets-${t}.null`);
  execFileSync('mknod', [dev, 'c', '1', '3']);
  const r = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', `targets-${t}:1`, '--iidfile', link, '--metadata-file', dev]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect((await lstat(link)).isSymbolicLink()).toBe(true);
  expect(await readFile(real, 'utf8')).toMatch(/^sha256:[a-f0-9]{64}$/);
  expect((await lstat(dev)).isCharacterDevice()).toBe(true);
  const toDev = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', `type=tar,dest=${dev}`]);
  expect(toDev.code).toBe(0);
  expect((await lstat(dev)).isCharacterDevice()).toBe(true);

  const fifo = join(sb.dir, `targets-${t}.fifo`);
  execFileSync('mkfifo', [fifo]);
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
  const read: Buffer[] = [];
  reader.stdout.on('data', (d: Buffer) => read.push(d));
  const readerDone = new Promise((res) => reader.once('close', res));
  const m = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', `targets-${t}:1`, '--metadata-file', fifo]);
  if (reader.exitCode === null) setTimeout(() => reader.kill(), 5000);
  await readerDone;
  expect(m.code).toBe(0);
  expect((await lstat(fifo)).isFIFO()).toBe(true);
  expect((JSON.parse(Buffer.concat(read).toString()) as Record<string, string>)['image.name']).toBe(`docker.io/library/targets-${t}:1`);

  // Node 20's recursive mkdir never returns for a missing directory under /proc.
  const before = await sb.containersStarted();
  const proc = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--no-cache', '-t', `targets-${t}:2`, '--metadata-file', `/proc/kiln-${t}/m.json`], { timeoutMs: 30_000 });
  expect(proc.code).toBe(1);
  expect(proc.stderr).toContain(`/proc/kiln-${t}`);
  const tar = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--no-cache', '-o', `type=tar,dest=/proc/kiln-${t}/fs.tar`], { timeoutMs: 30_000 });
  expect(tar.code).toBe(1);
  expect(await sb.containersStarted()).toBe(before);
}, 120_000);

test('kiln solve writes outputs as kiln build does: -o - to stdout, a device in place', async () => {
  const t = token();
  const { encodeDefinition, image } = await import('@kiln/llb-core');
  const def = join(sb.dir, `solve-${t}.pb`);
  await writeFile(def, encodeDefinition(await image('busybox').run({ args: ['/bin/sh', '-c', `echo ${t} > /solved`] }).root().marshal()));
  const r = await kiln(['solve', def, '--root', sb.root, '--progress', 'plain', '-o', '-']);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(tarNames(r.stdout)).toContain('solved');
  expect(r.stderr).not.toMatch(/kiln-output-/);
  const dev = join(sb.dir, `solve-${t}.null`);
  execFileSync('mknod', [dev, 'c', '1', '3']);
  const d = await kiln(['solve', def, '--root', sb.root, '--progress', 'quiet', '-o', `type=tar,dest=${dev}`]);
  expect(d.code).toBe(0);
  expect((await lstat(dev)).isCharacterDevice()).toBe(true);
});

test('kiln build - reads the context as a tar archive (plain or gzip) from stdin, or else a Dockerfile with an empty context', async () => {
  const t = token();
  const src = join(sb.dir, `stdin-ctx-${t}`);
  await writeTree(src, { Dockerfile: `FROM busybox\nCOPY app/ /app/\nRUN cat /app/in.txt > /made\n`, 'app/in.txt': `in-${t}\n`, 'other.Dockerfile': `FROM busybox\nCOPY app/in.txt /other\n` });
  const tar = execFileSync('tar', ['-cf', '-', '-C', src, '.']);
  const out = join(sb.dir, `stdin-ctx-${t}-out`);
  const r = await kiln(['build', '-', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`], { stdin: tar });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(await readFile(join(out, 'made'), 'utf8')).toBe(`in-${t}\n`);

  // gzip, and -f naming a file of the archive.
  const tgz = execFileSync('gzip', ['-c'], { input: tar });
  const out2 = join(sb.dir, `stdin-ctx-${t}-out2`);
  const g = await kiln(['build', '-', '-f', 'other.Dockerfile', '--root', sb.root, '--progress', 'quiet', '-o', `type=local,dest=${out2}`], { stdin: tgz });
  expect(g.code).toBe(0);
  expect(await readFile(join(out2, 'other'), 'utf8')).toBe(`in-${t}\n`);

  // A Dockerfile: no context, so COPY finds nothing.
  const out3 = join(sb.dir, `stdin-ctx-${t}-out3`);
  const d = await kiln(['build', '-', '--root', sb.root, '--progress', 'quiet', '-o', `type=local,dest=${out3}`], { stdin: `FROM busybox\nRUN echo df-${t} > /df\n` });
  expect(d.code).toBe(0);
  expect(await readFile(join(out3, 'df'), 'utf8')).toBe(`df-${t}\n`);
  const copy = await kiln(['build', '-', '--root', sb.root, '--progress', 'quiet'], { stdin: `FROM busybox\nCOPY app/in.txt /x\n` });
  expect(copy.code).toBe(1);
  expect(copy.stderr).toMatch(/app\/in\.txt/);

  const both = await kiln(['build', '-', '-f', '-', '--root', sb.root], { stdin: 'FROM busybox\n' });
  expect(both.code).toBe(1);
  expect(both.stderr).toContain('cannot be both the build context and the Dockerfile');
  expect((await readdir(tmpdir())).filter((n) => n.startsWith('kiln-stdin-context-'))).toEqual([]);
}, 120_000);
