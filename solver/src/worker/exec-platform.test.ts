import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QEMU_EMULATOR_PATH } from '@kiln/runtime';
import { afterAll, expect, test } from 'vitest';
import { checkExecPlatform, emulatedCommand, noEmulator, type ExecPlatformOptions } from './exec-platform.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-exec-platform-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const misc = join(dir, 'misc');
mkdirSync(misc);
const amd64 = { os: 'linux', architecture: 'amd64' };
/** An amd64 host with a v3 CPU, the test's handler table, no 32-bit programs and no PATH emulator. */
const opts = (more: ExecPlatformOptions = {}): ExecPlatformOptions => ({ host: amd64, amd64Level: 3, runsNatively: () => false, path: '', binfmtDir: misc, ...more });
const ARM64_MAGIC = '7f454c460201010000000000000000000200b700';
const arm64 = { os: 'linux', architecture: 'arm64' };

test('an exec of the host platform, or of none, is never refused (and reads no handler table)', () => {
  expect(checkExecPlatform(undefined, opts({ binfmtDir: join(dir, 'nowhere') }))).toEqual({});
  expect(checkExecPlatform(amd64, opts({ binfmtDir: join(dir, 'nowhere') }))).toEqual({});
});

test('an exec of another platform is not refused up front (its programs may be the host\'s); without a usable emulator the error says why, with a hint for each reason', () => {
  expect(checkExecPlatform(arm64, opts())).toEqual({});
  expect(noEmulator(amd64, opts())?.error).toBeUndefined();
  expect(noEmulator(arm64, opts())?.error).toEqual(
    expect.objectContaining({
      code: 'SOLVER_UNSUPPORTED',
      message: 'this step runs linux/arm64 programs, and this linux/amd64 machine has no emulator for them',
      hint: expect.stringContaining('kiln binfmt --install arm64 (qemu-aarch64), or put BuildKit\'s buildkit-qemu-aarch64 on kiln\'s PATH'),
    }),
  );
  expect(noEmulator(arm64, opts({ subject: 'this container' }))?.error).toEqual(expect.objectContaining({ message: expect.stringMatching(/^this container runs linux\/arm64 programs/) }));
  writeFileSync(join(misc, 'qemu-x'), `disabled\ninterpreter /usr/bin/qemu-x-static\nflags: F\noffset 0\nmagic ${ARM64_MAGIC}\n`);
  expect(noEmulator(arm64, opts())?.error).toEqual(expect.objectContaining({ hint: `its emulator is registered but disabled: echo 1 > ${misc}/qemu-x` }));
  writeFileSync(join(misc, 'qemu-x'), `enabled\ninterpreter /usr/bin/qemu-x-static\nflags: OC\noffset 0\nmagic ${ARM64_MAGIC}\n`);
  expect(noEmulator(arm64, opts())?.error).toEqual(expect.objectContaining({ hint: expect.stringContaining('without the F flag') }));
  writeFileSync(join(misc, 'qemu-x'), `enabled\ninterpreter /usr/bin/qemu-x-static\nflags: OCF\noffset 0\nmagic ${ARM64_MAGIC}\n`);
  expect(noEmulator(arm64, opts())?.error).toBeUndefined();
  writeFileSync(join(misc, 'status'), 'disabled\n');
  expect(noEmulator(arm64, opts())?.error).toEqual(expect.objectContaining({ hint: `binfmt_misc is disabled, so no emulator runs: echo 1 > ${misc}/status` }));
  rmSync(join(misc, 'status'));
  rmSync(join(misc, 'qemu-x'));
});

test('386 on amd64 is refused when the kernel does not run it (tried once), run when it does', () => {
  const i386 = { os: 'linux', architecture: '386' };
  expect(noEmulator(i386, opts())?.error).toEqual(expect.objectContaining({ message: "this step runs linux/386 programs, and this linux/amd64 machine's kernel does not run them itself (tried) and has no emulator for them" }));
  expect(noEmulator(i386, opts({ runsNatively: () => true }))?.error).toBeUndefined();
});

test('an amd64 variant above the CPU level is refused naming the supported ones (BuildKit getEmulator); v2 is tried', () => {
  expect(() => checkExecPlatform({ ...amd64, variant: 'v4' }, opts())).toThrow(
    expect.objectContaining({
      code: 'SOLVER_UNSUPPORTED',
      message: 'this step runs linux/amd64/v4 programs, and this CPU runs x86-64 up to v3 (supported: linux/amd64, linux/amd64/v2, linux/amd64/v3)',
      hint: 'build for linux/amd64/v3 or lower, or on a machine whose CPU has the x86-64-v4 instructions',
    }),
  );
  expect(checkExecPlatform({ ...amd64, variant: 'v3' }, opts())).toEqual({});
  expect(checkExecPlatform({ ...amd64, variant: 'v2' }, opts({ amd64Level: 1 }))).toEqual({});
});

test("without a handler, BuildKit's buildkit-qemu-<arch> from PATH is mounted at /dev/.buildkit_qemu_emulator and runs the command", () => {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const real = join(dir, 'qemu-aarch64-real');
  writeFileSync(real, '');
  chmodSync(real, 0o755);
  symlinkSync(real, join(bin, 'buildkit-qemu-aarch64'));
  const e = checkExecPlatform(arm64, opts({ path: bin }));
  // the link's target: what runc binds
  expect(e).toEqual({ emulator: real });
  expect(emulatedCommand(e, ['/bin/sh', '-c', 'echo hi'])).toEqual({
    args: [QEMU_EMULATOR_PATH, '/bin/sh', '-c', 'echo hi'],
    mounts: [{ kind: 'bind', target: '/dev/.buildkit_qemu_emulator', source: real, readonly: true }],
  });
  expect(emulatedCommand({}, ['/bin/sh'])).toEqual({ args: ['/bin/sh'], mounts: [] });
});
