import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostPlatform } from '@kiln/runtime';
import { afterAll, expect, test } from 'vitest';
import { checkExecPlatform } from './exec-platform.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-exec-platform-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// A host this test does not run on: an emulator for it would be registered as for any other.
const other = hostPlatform().architecture === 'riscv64' ? 'arm64' : 'riscv64';
const magic = other === 'riscv64' ? '7f454c460201010000000000000000000200f300' : '7f454c460201010000000000000000000200b700';

test('an exec of the host platform, or of none, is never refused (and reads no handler table)', () => {
  expect(() => checkExecPlatform(undefined, join(dir, 'nowhere'))).not.toThrow();
  expect(() => checkExecPlatform({ os: 'linux', architecture: hostPlatform().architecture }, join(dir, 'nowhere'))).not.toThrow();
});

test('an exec of another platform is refused without a usable emulator, with a hint for each reason', () => {
  const p = { os: 'linux', architecture: other };
  expect(() => checkExecPlatform(p, dir)).toThrow(expect.objectContaining({ code: 'SOLVER_UNSUPPORTED', message: expect.stringContaining(`this step runs linux/${other} programs`), hint: expect.stringContaining(`kiln binfmt --install ${other}`) }));
  writeFileSync(join(dir, 'qemu-x'), `disabled\ninterpreter /usr/bin/qemu-x-static\nflags: F\noffset 0\nmagic ${magic}\n`);
  expect(() => checkExecPlatform(p, dir)).toThrow(expect.objectContaining({ hint: `its emulator is registered but disabled: echo 1 > ${dir}/qemu-x` }));
  writeFileSync(join(dir, 'qemu-x'), `enabled\ninterpreter /usr/bin/qemu-x-static\nflags: OC\noffset 0\nmagic ${magic}\n`);
  expect(() => checkExecPlatform(p, dir)).toThrow(expect.objectContaining({ hint: expect.stringContaining('without the F flag') }));
  writeFileSync(join(dir, 'qemu-x'), `enabled\ninterpreter /usr/bin/qemu-x-static\nflags: OCF\noffset 0\nmagic ${magic}\n`);
  expect(() => checkExecPlatform(p, dir)).not.toThrow();
});
