import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { elfPlatform, parseBinfmtHandler, platformRunner, qemuArch, readBinfmtHandlers, runnablePlatforms, type BinfmtHandler } from './emulation.js';

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

  test('only an enabled handler with F runs a platform in containers; runnablePlatforms lists the host first', () => {
    const hs = readBinfmtHandlers(dir);
    const amd64 = { os: 'linux', architecture: 'amd64' };
    expect(platformRunner({ os: 'linux', architecture: 'amd64' }, hs, amd64)).toEqual({ kind: 'native' });
    expect(platformRunner({ os: 'linux', architecture: 'amd64', variant: 'v2' }, hs, amd64)).toEqual({ kind: 'native' });
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, hs, amd64)).toMatchObject({ kind: 'emulated', handler: { name: 'qemu-aarch64' } });
    // registered, but without F: the kernel would look the emulator up inside the container
    expect(platformRunner({ os: 'linux', architecture: 's390x' }, hs, amd64)).toMatchObject({ kind: 'none', unusable: [{ name: 'qemu-s390x' }] });
    expect(platformRunner({ os: 'linux', architecture: 'riscv64' }, hs, amd64)).toEqual({ kind: 'none', unusable: [] });
    // 386 on amd64 depends on the kernel: tried, not refused
    expect(platformRunner({ os: 'linux', architecture: '386' }, hs, amd64)).toEqual({ kind: 'maybe' });
    expect(platformRunner({ os: 'windows', architecture: 'amd64' }, hs, amd64).kind).toBe('none');
    const off: BinfmtHandler[] = hs.map((h) => ({ ...h, enabled: false }));
    expect(platformRunner({ os: 'linux', architecture: 'arm64' }, off, amd64).kind).toBe('none');
    expect(runnablePlatforms(hs, amd64)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(runnablePlatforms([], { os: 'linux', architecture: 'arm64' })).toEqual(['linux/arm64']);
  });

  test('qemuArch names QEMU targets', () => {
    expect(['arm64', 'amd64', '386', 'riscv64', 'arm'].map(qemuArch)).toEqual(['aarch64', 'x86_64', 'i386', 'riscv64', 'arm']);
  });
});
