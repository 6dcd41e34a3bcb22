import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINFMT_MISC_DIR, ContentStore, ImageStore, createBusyboxImage, readBinfmtHandlers, withFileLock, writeIndex } from '@kiln/runtime';
import { expect } from 'vitest';
import { kilnBin, type KilnSandbox } from './build-helpers.js';

/**
 * What the multi-platform e2e files share. The kernel's binfmt_misc table is one for the whole
 * machine: the files that change it hold one lock from beforeAll to afterAll (vitest runs files
 * side by side), and each puts the handler back exactly as it found it.
 */

/** Debian's arm64 busybox-static, unpacked by .ci/run (dpkg --add-architecture arm64; apt-get download busybox-static:arm64). */
export const ARM64_BUSYBOX = '/var/cache/kiln-test/busybox-arm64/bin/busybox';
export const QEMU_AARCH64 = 'qemu-aarch64';
export const QEMU_HANDLER = join(BINFMT_MISC_DIR, QEMU_AARCH64);

/** Fails with the install command when QEMU or the arm64 busybox is missing. */
export function requireEmulation(): void {
  if (!existsSync(ARM64_BUSYBOX) || spawnSync('sh', ['-c', 'command -v qemu-aarch64-static']).status !== 0) {
    throw new Error(`missing prerequisites: apt-get install -y qemu-user-static, and ${ARM64_BUSYBOX} from busybox-static:arm64 (.ci/run fetches it)`);
  }
}

/** Whether the arm64 emulator is registered, enabled and with F (as kiln binfmt leaves it). */
export const registered = (): boolean => readBinfmtHandlers().some((h) => h.name === QEMU_AARCH64 && h.enabled && h.flags.includes('F'));

/** `kiln binfmt ARGS` (root: the tests run as root, as .ci/run does), failing the test when it fails. */
export function binfmt(...args: string[]): string {
  const r = spawnSync(process.execPath, [kilnBin, 'binfmt', ...args], { encoding: 'utf8' });
  expect(r.stderr).not.toContain('error');
  expect(r.status).toBe(0);
  return r.stdout;
}

/** The registration line that makes the kernel show `text` for handler `name` again. */
function registrationLine(name: string, text: string): string {
  const field = (key: string): string => {
    const l = text.split('\n').find((x) => x.startsWith(`${key} `) || x.startsWith(`${key}:`));
    return l === undefined ? '' : l.slice(key.length + 1).trim();
  };
  const esc = (hex: string): string => hex.replace(/../g, (b) => `\\x${b}`);
  const ext = field('extension');
  if (ext !== '') return `:${name}:E::${ext.replace(/^\./, '')}::${field('interpreter')}:${field('flags')}`;
  return `:${name}:M:${field('offset')}:${esc(field('magic'))}:${esc(field('mask'))}:${field('interpreter')}:${field('flags')}`;
}

/**
 * Takes the machine-wide binfmt lock and remembers handler `name` as it is; the returned function
 * puts it back as it was (removed, registered with its own line and flags, disabled) and lets go.
 */
export async function holdBinfmt(name: string = QEMU_AARCH64): Promise<() => Promise<void>> {
  let release: () => void = () => undefined;
  const held = new Promise<void>((got) => {
    void withFileLock('/tmp/kiln-test-binfmt.lock', undefined, () => {
      got();
      return new Promise<void>((r) => (release = r));
    });
  });
  await held;
  const file = join(BINFMT_MISC_DIR, name);
  const before = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  return async () => {
    try {
      const now = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
      if (now !== before) {
        if (now !== undefined) writeFileSync(file, '-1');
        if (before !== undefined) {
          writeFileSync(join(BINFMT_MISC_DIR, 'register'), registrationLine(name, before));
          if (before.startsWith('disabled')) writeFileSync(file, '0');
        }
      }
      expect(existsSync(file) ? readFileSync(file, 'utf8') : undefined).toBe(before);
    } finally {
      release();
    }
  };
}

/** Names `busybox` as an index of the host's busybox and Debian's arm64 one, as a multi-platform base on a registry would. */
export async function multiPlatformBusybox(sb: KilnSandbox): Promise<void> {
  const content = await ContentStore.open(sb.root);
  const images = await ImageStore.open(sb.root);
  const host = await createBusyboxImage(content, {});
  const arm = await createBusyboxImage(content, { busybox: ARM64_BUSYBOX });
  expect(JSON.parse(arm.configBytes.toString()) as unknown).toMatchObject({ architecture: 'arm64', os: 'linux' });
  const index = await writeIndex(content, [
    { ...host.manifest, platform: { os: 'linux', architecture: 'amd64' } },
    { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
  ]);
  await images.put('docker.io/library/busybox:latest', index);
}
