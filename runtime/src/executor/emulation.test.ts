import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, test } from 'vitest';
import { amd64Level, elfPlatform, exitProgram, findQemuEmulator, parseBinfmtHandler, platformRunner, qemuArch, readBinfmtHandlers, runnablePlatforms, runsNatively, type BinfmtHandler, type PlatformRunnerOptions } from './emulation.js';

/** Debian qemu-user-static's handler files as the kernel shows them. */
const AARCH64 = 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n';
const S390X = 'enabled\ninterpreter /usr/bin/qemu-s390x-static\nflags: \noffset 0\nmagic 7f454c4602020100000000000000000000020016\nmask ffffffffffffff00fffffffffffffffffffeffff\n';

const head = (cls: number, data: number, machine: number): Uint8Array => {
  const b = Buffer.alloc(20);
  b.set([0x7f, 0x45, 0x4c, 0x46, cls, data], 0);
  if (data === 1) b.writeUInt16LE(machine, 18);
  else b.writeUInt16BE(machine, 18);
  return b;
};

describe('elfPlatform', () => {
  test('reads class, byte order and machine', () => {
    expect(elfPlatform(head(2, 1, 0x3e))).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(elfPlatform(head(2, 1, 0xb7))).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(elfPlatform(head(1, 1, 0x28))).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(elfPlatform(head(2, 2, 0x16))).toEqual({ os: 'linux', architecture: 's390x' });
    // mips64: the same machine in both byte orders
    expect(elfPlatform(head(2, 1, 8))?.architecture).toBe('mips64le');
    expect(elfPlatform(head(2, 2, 8))?.architecture).toBe('mips64');
  });
  test('is undefined for a non-ELF, a short header or an unknown machine', () => {
    expect(elfPlatform(Buffer.from('#!/bin/sh\necho hello world\n'))).toBeUndefined();
    expect(elfPlatform(head(2, 1, 0x3e).subarray(0, 19))).toBeUndefined();
    expect(elfPlatform(head(2, 1, 0x9999))).toBeUndefined();
    expect(elfPlatform(head(1, 1, 0x3e))).toBeUndefined(); // x86-64 is never 32-bit class
  });
});

describe('binfmt_misc handlers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-binfmt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'register'), '');
  writeFileSync(join(dir, 'status'), 'enabled\n');
  writeFileSync(join(dir, 'qemu-aarch64'), AARCH64);
  writeFileSync(join(dir, 'qemu-s390x'), S390X);
  writeFileSync(join(dir, 'python3.11'), 'enabled\ninterpreter /usr/bin/python3.11\nflags: \noffset 0\nmagic a70d0d0a\n');

  test('are parsed with their platform from the magic; register, status and non-ELF handlers have none', () => {
    const hs = readBinfmtHandlers(dir).sort((a, b) => a.name.localeCompare(b.name));
    expect(hs.map((h) => [h.name, h.enabled, h.flags, h.platform?.architecture])).toEqual([
      ['python3.11', true, '', undefined],
      ['qemu-aarch64', true, 'POF', 'arm64'],
      ['qemu-s390x', true, '', 's390x'],
    ]);
    expect(readBinfmtHandlers(join(dir, 'not-mounted'))).toEqual([]);
    expect(parseBinfmtHandler('qemu-aarch64', AARCH64.replace('enabled', 'disabled'))?.enabled).toBe(false);
  });

  const amd64 = { os: 'linux', architecture: 'amd64' };
  /** This machine's view with the test's handlers, a v3 CPU, no 32-bit programs and no PATH emulator. */
  const on = (handlers: readonly BinfmtHandler[], more: PlatformRunnerOptions = {}): PlatformRunnerOptions => ({
    handlers,
    host: amd64,
    amd64Level: 3,
    runsNatively: () => false,
    path: '',
    ...more,
  });

  test('only an enabled handler with F runs a platform in containers', () => {
    const hs = readBinfmtHandlers(dir);
    expect(platformRunner(amd64, on(hs))).toEqual({ kind: 'native' });
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on(hs))).toMatchObject({ kind: 'emulated', handler: { name: 'qemu-aarch64' } });
    // registered, but without F: the kernel would look the emulator up inside the container
    expect(platformRunner({ os: 'linux', architecture: 's390x' }, on(hs))).toMatchObject({ kind: 'none', unusable: [{ name: 'qemu-s390x' }] });
    expect(platformRunner({ os: 'linux', architecture: 'riscv64' }, on(hs))).toEqual({ kind: 'none', unusable: [] });
    expect(platformRunner({ os: 'windows', architecture: 'amd64' }, on(hs)).kind).toBe('none');
    const off: BinfmtHandler[] = hs.map((h) => ({ ...h, enabled: false }));
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on(off)).kind).toBe('none');
    // Two enabled handlers for arm64, one without F: the kernel takes the last registered, which its table does not say.
    const twice = [...hs, { name: 'arm64-noF', enabled: true, interpreter: '/x', flags: '', platform: { os: 'linux', architecture: 'arm64' } }];
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on(twice))).toEqual({ kind: 'maybe' });
  });

  test('binfmt_misc disabled as a whole (status) disables every handler, as load_misc_binary does', () => {
    const off = mkdtempSync(join(tmpdir(), 'kiln-binfmt-off-'));
    try {
      writeFileSync(join(off, 'status'), 'disabled\n');
      writeFileSync(join(off, 'qemu-aarch64'), AARCH64);
      expect(readBinfmtHandlers(off)).toEqual([expect.objectContaining({ name: 'qemu-aarch64', enabled: false, disabledBy: 'binfmt_misc' })]);
      expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on(readBinfmtHandlers(off))).kind).toBe('none');
      expect(parseBinfmtHandler('qemu-aarch64', AARCH64.replace('enabled', 'disabled'))?.disabledBy).toBe('handler');
    } finally {
      rmSync(off, { recursive: true, force: true });
    }
  });

  test('amd64 variants: the CPU level runs natively, v2 is always tried, v3/v4 above it are refused (BuildKit getEmulator)', () => {
    const v = (variant: string, level: number): string => platformRunner({ ...amd64, variant }, on([], { amd64Level: level })).kind;
    expect([v('v2', 3), v('v3', 3), v('v4', 3), v('v2', 1), v('v3', 2)]).toEqual(['native', 'native', 'none', 'maybe', 'none']);
    expect(platformRunner({ ...amd64, variant: 'v4' }, on([], { amd64Level: 3 }))).toMatchObject({ kind: 'none', level: 3 });
    const cpu = (flags: string): number => amd64Level(`processor\t: 0\nflags\t\t: ${flags}\n`);
    const v2 = 'fpu cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3';
    const v3 = `${v2} avx avx2 bmi1 bmi2 f16c fma abm movbe xsave`;
    expect([cpu('fpu sse2'), cpu(v2), cpu(v3), cpu(`${v3} avx512f avx512bw avx512cd avx512dq avx512vl`), cpu(`${v2} avx512f avx512bw avx512cd avx512dq avx512vl`)]).toEqual([1, 2, 3, 4, 2]);
  });

  test("the host's own 32-bit programs (386 on amd64, arm on arm64) are checked by running one, as archutil does", () => {
    const arm64 = { os: 'linux', architecture: 'arm64' };
    const i386 = { os: 'linux', architecture: '386' };
    expect(platformRunner(i386, on([], { runsNatively: (a) => a === '386' }))).toEqual({ kind: 'native' });
    expect(platformRunner(i386, on([], { runsNatively: () => undefined }))).toEqual({ kind: 'maybe' });
    expect(platformRunner(i386, on([]))).toEqual({ kind: 'none', unusable: [], kernel: true });
    expect(platformRunner({ os: 'linux', architecture: 'arm', variant: 'v7' }, on([], { host: arm64, runsNatively: (a) => a === 'arm' }))).toEqual({ kind: 'native' });
    expect(platformRunner({ os: 'linux', architecture: 'arm', variant: 'v6' }, on([], { host: arm64 }))).toMatchObject({ kind: 'none', kernel: true });
    // arm variants are one handler (qemu-arm) on amd64
    const arm = [{ name: 'qemu-arm', enabled: true, interpreter: '/x', flags: 'F', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }];
    for (const variant of ['v5', 'v6', 'v7', 'v8']) expect(platformRunner({ os: 'linux', architecture: 'arm', variant }, on(arm)).kind).toBe('emulated');
  });

  test('the probe programs are real: each runs under its qemu, and 386 is found to run natively exactly when the kernel runs it (IA-32 emulation)', () => {
    const d = mkdtempSync(join(tmpdir(), 'kiln-exitprog-'));
    try {
      for (const [arch, qemu] of [['386', 'qemu-i386-static'], ['arm', 'qemu-arm-static']] as const) {
        const f = join(d, arch);
        writeFileSync(f, exitProgram(arch), { mode: 0o755 });
        expect(elfPlatform(exitProgram(arch))?.architecture).toBe(arch);
        const r = spawnSync(qemu, [f]);
        expect(r.error).toBeUndefined();
        expect(r.status).toBe(0);
      }
      if (process.arch === 'x64') {
        // What the kernel says, asked without glibc's execvp (which hands an ENOEXEC file to
        // /bin/sh): a plain execve of the probe. IA-32 emulation is a kernel setting, on or off.
        const execve = spawnSync('python3', ['-c', 'import os,sys\ntry: os.execv(sys.argv[1], [sys.argv[1]])\nexcept OSError as e: sys.exit(100 + e.errno)', join(d, '386')]);
        expect([0, 108]).toContain(execve.status);
        expect(runsNatively('386')).toBe(execve.status === 0);
        // the kernel refuses an ARM program (ENOEXEC) while no qemu-arm handler takes it
        if (!readBinfmtHandlers().some((h) => h.platform?.architecture === 'arm' && h.enabled)) expect(runsNatively('arm')).toBe(false);
      }
      expect(runsNatively('riscv64')).toBeUndefined();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("BuildKit's buildkit-qemu-<arch> on PATH runs a platform no handler emulates", () => {
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const emu = join(bin, 'buildkit-qemu-aarch64');
    writeFileSync(emu, '');
    expect(findQemuEmulator('arm64', `/nonexistent:${bin}`)).toBeUndefined(); // not executable
    chmodSync(emu, 0o755);
    expect(findQemuEmulator('arm64', `/nonexistent::${bin}`)).toBe(emu);
    symlinkSync('/usr/bin/qemu-mips64el-static', join(bin, 'buildkit-qemu-mips64el'));
    expect(findQemuEmulator('mips64le', bin)).toBe(join(bin, 'buildkit-qemu-mips64el'));
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on([], { path: bin }))).toEqual({ kind: 'qemu', path: emu });
    // a usable handler wins: nothing to mount
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, on(readBinfmtHandlers(dir), { path: bin })).kind).toBe('emulated');
    // not listed as a worker platform, as in BuildKit
    expect(runnablePlatforms(on([], { path: bin }))).toEqual(['linux/amd64', 'linux/amd64/v2', 'linux/amd64/v3']);
  });

  test("runnablePlatforms lists as BuildKit's worker: the host, its x86-64 levels, then archutil's order", () => {
    const hs = readBinfmtHandlers(dir);
    const arm = { name: 'qemu-arm', enabled: true, interpreter: '/x', flags: 'OCF', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } };
    expect(runnablePlatforms(on([...hs, arm], { runsNatively: (a) => a === '386' }))).toEqual([
      'linux/amd64',
      'linux/amd64/v2',
      'linux/amd64/v3',
      'linux/arm64',
      'linux/386',
      'linux/arm/v7',
      'linux/arm/v6',
    ]);
    expect(runnablePlatforms(on([], { host: { os: 'linux', architecture: 'arm64' } }))).toEqual(['linux/arm64']);
    expect(runnablePlatforms(on([], { host: { os: 'linux', architecture: 'arm64' }, runsNatively: () => true }))).toEqual(['linux/arm64', 'linux/arm/v7', 'linux/arm/v6']);
  });

  test('qemuArch names QEMU targets', () => {
    expect(['arm64', 'amd64', '386', 'riscv64', 'arm', 'mips64le', 'loong64'].map(qemuArch)).toEqual(['aarch64', 'x86_64', 'i386', 'riscv64', 'arm', 'mips64el', 'loongarch64']);
  });
});
