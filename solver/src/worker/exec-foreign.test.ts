import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Snapshotter } from '@kiln/runtime';
import { afterAll, expect, test } from 'vitest';
import { foreignProgramError } from './exec-foreign.js';
import type { ExecPlatformOptions } from './exec-platform.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-exec-foreign-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = join(dir, 'root');
const misc = join(dir, 'misc');
for (const d of ['bin', 'usr/bin', 'work', 'host'].map((x) => join(root, x)).concat(misc)) mkdirSync(d, { recursive: true });
const ARM64 = Buffer.from('7f454c460201010000000000000000000200b700', 'hex');
writeFileSync(join(root, 'bin', 'busybox'), Buffer.concat([ARM64, Buffer.alloc(100)]), { mode: 0o755 });
symlinkSync('/bin/busybox', join(root, 'bin', 'sh'));
// The host's own program (node is an ELF for this machine).
writeFileSync(join(root, 'usr', 'bin', 'env'), readFileSync(process.execPath).subarray(0, 64), { mode: 0o755 });
writeFileSync(join(root, 'work', 'run.sh'), '#!/bin/sh\necho hi\n');
chmodSync(join(root, 'work', 'run.sh'), 0o755);
// A link out of the root reads inside it (rootPath): /host/sh -> /usr/bin/env, never the host's file.
symlinkSync('/usr/bin/env', join(root, 'host', 'sh'));

/** The only part of a snapshotter the check uses: mounting the root's input (here, a directory). */
let mounts = 0;
const snapshotter = {
  mount: (): Promise<{ path: string; release: () => Promise<void> }> => {
    mounts += 1;
    return Promise.resolve({ path: root, release: () => Promise.resolve() });
  },
} as unknown as Snapshotter;
const opts: ExecPlatformOptions = { host: { os: 'linux', architecture: 'amd64' }, path: '', binfmtDir: misc, runsNatively: () => false };
const check = (args: string[], env: string[] = [], cwd?: string): ReturnType<typeof foreignProgramError> =>
  foreignProgramError(snapshotter, 'snap', { args, env, cwd }, undefined, new Error('exit code 1'), opts);

test('a program nothing here runs explains the failure: found by path or on PATH, through links inside the root', async () => {
  const e = await check(['/bin/sh', '-c', 'true']);
  expect(e).toMatchObject({ code: 'SOLVER_UNSUPPORTED', message: 'this step runs linux/arm64 programs, and this linux/amd64 machine has no emulator for them (/bin/sh is a linux/arm64 program)', hint: expect.stringContaining('kiln binfmt --install arm64') });
  expect((e?.cause as Error).message).toBe('exit code 1');
  expect((await check(['sh'], ['PATH=/nowhere:/bin']))?.message).toContain('(/bin/sh is a linux/arm64 program)');
  // runc's default PATH when the env has none
  expect((await check(['busybox']))?.message).toContain('(/bin/busybox is');
  expect((await check(['../bin/sh'], [], '/work'))?.message).toContain('(/bin/sh is');
});

test("the host's programs, scripts, missing programs and a registered emulator explain nothing (the exec's own error stands)", async () => {
  expect(await check(['/usr/bin/env'])).toBeUndefined();
  expect(await check(['/host/sh'])).toBeUndefined();
  expect(await check(['/work/run.sh'])).toBeUndefined();
  expect(await check(['/bin/nothing'])).toBeUndefined();
  expect(await check(['nothing'])).toBeUndefined();
  expect(await check([])).toBeUndefined();
  writeFileSync(join(misc, 'qemu-aarch64'), `enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic ${ARM64.toString('hex')}\n`);
  expect(await check(['/bin/sh'])).toBeUndefined();
  rmSync(join(misc, 'qemu-aarch64'));
  // a cancelled exec looks at nothing
  const before = mounts;
  expect(await foreignProgramError(snapshotter, 'snap', { args: ['/bin/sh'], env: [] }, AbortSignal.abort(), undefined, opts)).toBeUndefined();
  expect(mounts).toBe(before);
});

test('only what the exec could have run is looked at: a regular file with an execute bit, as runc finds it on PATH', async () => {
  // An arm64 file without an execute bit before the host's program on PATH: runc's LookPath skips
  // it and runs the host's, whose own failure (exit 1) stands.
  mkdirSync(join(root, 'usr', 'local', 'bin'), { recursive: true });
  writeFileSync(join(root, 'usr', 'local', 'bin', 'tool'), ARM64, { mode: 0o644 });
  writeFileSync(join(root, 'usr', 'bin', 'tool'), readFileSync(join(root, 'usr', 'bin', 'env')), { mode: 0o755 });
  expect(await check(['tool'], ['PATH=/usr/local/bin:/usr/bin'])).toBeUndefined();
  // named by its path, it is not run at all (permission denied): runc's error stands
  expect(await check(['/usr/local/bin/tool'])).toBeUndefined();
  chmodSync(join(root, 'usr', 'local', 'bin', 'tool'), 0o755);
  expect((await check(['tool'], ['PATH=/usr/local/bin:/usr/bin']))?.message).toContain('(/usr/local/bin/tool is a linux/arm64 program)');
});

test('a FIFO where the program would be is passed over without waiting for a writer', async () => {
  const fifo = join(root, 'bin', 'fifo');
  execFileSync('mkfifo', ['-m', '755', fifo]);
  const pending = check(['/bin/fifo']);
  const got = await Promise.race([pending, new Promise((r) => setTimeout(() => r('blocked'), 2000))]);
  if (got === 'blocked') closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); // let the blocked open go
  await pending;
  expect(got).toBeUndefined();
});

test("an emulator registered without F runs an image that ships its interpreter (old balena images): that image's failures stand", async () => {
  writeFileSync(join(misc, 'qemu-aarch64'), `enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\noffset 0\nmagic ${ARM64.toString('hex')}\n`);
  try {
    expect((await check(['/bin/sh']))?.hint).toContain('without the F flag');
    // the kernel opens the interpreter in the container: this root has it, so /bin/sh ran
    writeFileSync(join(root, 'usr', 'bin', 'qemu-aarch64-static'), ARM64, { mode: 0o755 });
    expect(await check(['/bin/sh'])).toBeUndefined();
  } finally {
    rmSync(join(misc, 'qemu-aarch64'));
    rmSync(join(root, 'usr', 'bin', 'qemu-aarch64-static'), { force: true });
  }
});

test('a program under another mount (a bind or cache at its path or on PATH before it) is not judged from the root', async () => {
  const at = (args: string[], mounts: string[], env: string[] = []): ReturnType<typeof foreignProgramError> =>
    foreignProgramError(snapshotter, 'snap', { args, env, mounts }, undefined, undefined, opts);
  expect(await at(['/bin/sh'], ['/bin'])).toBeUndefined();
  expect(await at(['/bin/sh'], ['/bin/sh'])).toBeUndefined();
  // runc finds `sh` in /tools first (a mount the root knows nothing of): the root's /bin/sh says nothing
  expect(await at(['sh'], ['/tools'], ['PATH=/tools:/bin'])).toBeUndefined();
  // mounts elsewhere, and the root itself, change nothing
  expect((await at(['/bin/sh'], ['/', '/bin2', '/tmp']))?.message).toContain('(/bin/sh is a linux/arm64 program)');
  expect((await at(['sh'], ['/tools'], ['PATH=/bin:/tools']))?.message).toContain('(/bin/sh is');
});
