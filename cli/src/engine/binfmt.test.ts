import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { binfmtArch, binfmtStatus, formatBinfmtStatus, installEmulators, qemuRegistration } from './binfmt.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-binfmt-conf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const etc = join(dir, 'etc');
const usr = join(dir, 'usr');
mkdirSync(etc);
mkdirSync(usr);
const line = (name: string, flags: string): string =>
  `:${name}:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:${flags}`;
writeFileSync(join(usr, 'qemu-aarch64.conf'), `# from qemu-user-static\n${line('qemu-aarch64', 'OP')}\n`);
writeFileSync(join(usr, 'qemu-riscv64.conf'), `${line('qemu-riscv64', 'OCF')}\n`);

describe('kiln binfmt', () => {
  test('architectures are named as buildx and QEMU name them', () => {
    expect(['arm64', 'linux/arm64', 'aarch64', 'qemu-aarch64', 'armhf', 'x86_64', 'i386'].map(binfmtArch)).toEqual(['arm64', 'arm64', 'arm64', 'arm64', 'arm', 'amd64', '386']);
    expect(() => binfmtArch('sparc')).toThrow(expect.objectContaining({ code: 'KLN0713', message: 'unknown architecture "sparc"' }));
  });

  test("a registration comes from the first binfmt.d directory that has it, always with F (the kernel opens the emulator once, for containers too)", () => {
    expect(qemuRegistration('arm64', [etc, usr])).toEqual({ name: 'qemu-aarch64', line: line('qemu-aarch64', 'OPF') });
    expect(qemuRegistration('riscv64', [etc, usr])?.line).toBe(line('qemu-riscv64', 'OCF'));
    writeFileSync(join(etc, 'qemu-aarch64.conf'), `${line('qemu-aarch64', 'F')}\n`);
    expect(qemuRegistration('arm64', [etc, usr])?.line).toBe(line('qemu-aarch64', 'F'));
    expect(qemuRegistration('s390x', [etc, usr])).toBeUndefined();
    // a file whose line names another handler is not used
    writeFileSync(join(etc, 'qemu-s390x.conf'), `${line('qemu-aarch64', 'F')}\n`);
    expect(qemuRegistration('s390x', [etc, usr])).toBeUndefined();
  });

  test('the status says when binfmt_misc is not mounted, and names an emulator without F', () => {
    expect(formatBinfmtStatus(binfmtStatus({ dir: join(dir, 'nowhere') }))).toContain('binfmt_misc is not mounted');
    const misc = join(dir, 'misc');
    mkdirSync(misc);
    writeFileSync(join(misc, 'register'), '');
    writeFileSync(join(misc, 'qemu-aarch64'), 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n');
    const text = formatBinfmtStatus(binfmtStatus({ dir: misc }));
    expect(text).toMatch(/^qemu-aarch64 +linux\/arm64 +enabled +OC +\/usr\/bin\/qemu-aarch64-static$/m);
    expect(text).toContain('qemu-aarch64: no F flag, so RUN steps in containers cannot use it');
    expect(binfmtStatus({ dir: misc }).supported).toEqual(binfmtStatus({ dir: join(dir, 'nowhere') }).supported);
  });

  test("a write the kernel's table refuses is KLN0713 naming the file and the reason, never a raw error", async () => {
    // register as a directory: the write fails (EISDIR), as a rootless write fails with EACCES
    const misc = join(dir, 'refusing');
    mkdirSync(join(misc, 'register'), { recursive: true });
    await expect(installEmulators(['arm64'], { dir: misc, confDirs: [usr] })).rejects.toMatchObject({
      code: 'KLN0713',
      message: `cannot register qemu-aarch64: writing ${join(misc, 'register')} failed (EISDIR)`,
      hint: expect.stringContaining('needs root on the host'),
    });
  });
});
