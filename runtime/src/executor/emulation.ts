import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { compatiblePlatforms, formatPlatform, hostPlatform, normalizePlatform } from '../image/platform.js';
import type { Platform } from '../image/types.js';

/**
 * Which platforms' programs this machine can run in a container: its own, and those a
 * binfmt_misc handler (QEMU user mode, as Debian's qemu-user-static registers) emulates.
 * BuildKit finds them by running a tiny test binary per architecture; kiln reads the kernel's
 * handler table instead, which also tells a handler that cannot work in a container (no `F`
 * flag: the kernel looks the interpreter up inside the container, where it is not) from one that can.
 */

/** The binfmt_misc mount point. */
export const BINFMT_MISC_DIR = '/proc/sys/fs/binfmt_misc';

/** One binfmt_misc handler as `/proc/sys/fs/binfmt_misc/<name>` describes it. */
export interface BinfmtHandler {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  /** The flag letters (`F`: the interpreter was opened at registration, so it works in containers). */
  readonly flags: string;
  /** The platform of the ELF programs it matches, when its magic is an ELF header kiln knows. */
  readonly platform?: Platform;
}

/** ELF e_machine values (with class and byte order) of the architectures BuildKit's archutil knows. */
const ELF_MACHINES: ReadonlyArray<{ readonly cls: 1 | 2; readonly le: boolean; readonly machine: number; readonly platform: Platform }> = [
  { cls: 2, le: true, machine: 0x3e, platform: { os: 'linux', architecture: 'amd64' } },
  { cls: 1, le: true, machine: 0x03, platform: { os: 'linux', architecture: '386' } },
  { cls: 2, le: true, machine: 0xb7, platform: { os: 'linux', architecture: 'arm64' } },
  { cls: 1, le: true, machine: 0x28, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
  { cls: 2, le: true, machine: 0xf3, platform: { os: 'linux', architecture: 'riscv64' } },
  { cls: 2, le: true, machine: 0x15, platform: { os: 'linux', architecture: 'ppc64le' } },
  { cls: 2, le: false, machine: 0x16, platform: { os: 'linux', architecture: 's390x' } },
  { cls: 2, le: true, machine: 0x08, platform: { os: 'linux', architecture: 'mips64le' } },
  { cls: 2, le: false, machine: 0x08, platform: { os: 'linux', architecture: 'mips64' } },
  { cls: 2, le: true, machine: 0x102, platform: { os: 'linux', architecture: 'loong64' } },
];

/** The platform of an ELF file from its first 20 bytes, or undefined (not ELF, or an unknown machine). */
export function elfPlatform(head: Uint8Array): Platform | undefined {
  if (head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  const cls = head[4];
  const le = head[5] === 1;
  if (!le && head[5] !== 2) return undefined;
  const machine = le ? (head[18] ?? 0) | ((head[19] ?? 0) << 8) : ((head[18] ?? 0) << 8) | (head[19] ?? 0);
  return ELF_MACHINES.find((m) => m.cls === cls && m.le === le && m.machine === machine)?.platform;
}

/** Parses one handler file; undefined for `register`/`status` or a non-magic (extension) handler. */
export function parseBinfmtHandler(name: string, text: string): BinfmtHandler | undefined {
  const lines = text.split('\n');
  const field = (key: string): string | undefined => {
    const l = lines.find((x) => x.startsWith(`${key} `) || x.startsWith(`${key}:`));
    return l === undefined ? undefined : l.slice(key.length + 1).trim();
  };
  const interpreter = field('interpreter');
  if (interpreter === undefined) return undefined;
  const magic = field('magic');
  const offset = Number(field('offset') ?? '0');
  let platform: Platform | undefined;
  if (magic !== undefined && offset === 0 && /^(?:[0-9a-f]{2})+$/i.test(magic)) {
    // The mask clears bits the match ignores (e_type's low bit: EXEC and DYN both match); the
    // bytes that name the machine are never masked.
    platform = elfPlatform(Buffer.from(magic, 'hex'));
  }
  return { name, enabled: lines[0] === 'enabled', interpreter, flags: field('flags') ?? '', ...(platform === undefined ? {} : { platform }) };
}

/** The handlers registered with the kernel (none when binfmt_misc is not mounted). */
export function readBinfmtHandlers(dir: string = BINFMT_MISC_DIR): BinfmtHandler[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: BinfmtHandler[] = [];
  for (const n of names) {
    if (n === 'register' || n === 'status') continue;
    try {
      const h = parseBinfmtHandler(n, readFileSync(join(dir, n), 'utf8'));
      if (h !== undefined) out.push(h);
    } catch {
      // removed meanwhile, or not readable: not a handler kiln can count on
    }
  }
  return out;
}

/** How a platform's programs would run here. */
export type PlatformRunner =
  | { readonly kind: 'native' }
  /** A handler with the `F` flag emulates it (works in containers). */
  | { readonly kind: 'emulated'; readonly handler: BinfmtHandler }
  /**
   * An older variant the host may run natively (amd64 running 386, arm64 running arm): it
   * depends on the kernel and CPU, so kiln tries, as BuildKit does without an emulator.
   */
  | { readonly kind: 'maybe' }
  /** Nothing runs it: `unusable` holds handlers that match but are disabled or lack `F`. */
  | { readonly kind: 'none'; readonly unusable: readonly BinfmtHandler[] };

/** Architectures a host architecture's CPU may run without an emulator. */
const MAYBE_NATIVE: Readonly<Record<string, readonly string[]>> = { amd64: ['386'], arm64: ['arm'] };

/** How programs of `want` would run on a host of `host` with `handlers` registered. */
export function platformRunner(want: Platform, handlers: readonly BinfmtHandler[], host: Platform = hostPlatform()): PlatformRunner {
  const w = normalizePlatform(want);
  const h = normalizePlatform(host);
  if (w.os !== 'linux') return { kind: 'none', unusable: [] };
  if (compatiblePlatforms(h).some((c) => c.architecture === w.architecture && (c.variant ?? '') === (w.variant ?? ''))) return { kind: 'native' };
  if (w.architecture === h.architecture && w.variant !== undefined) return { kind: 'native' };
  const matching = handlers.filter((x) => x.platform !== undefined && x.platform.architecture === w.architecture);
  const usable = matching.find((x) => x.enabled && x.flags.includes('F'));
  if (usable !== undefined) return { kind: 'emulated', handler: usable };
  if (MAYBE_NATIVE[h.architecture]?.includes(w.architecture) === true) return { kind: 'maybe' };
  return { kind: 'none', unusable: matching };
}

/**
 * The platforms this machine runs programs of, host first (as BuildKit's worker lists them):
 * the host's, then each emulated by a usable handler.
 */
export function runnablePlatforms(handlers: readonly BinfmtHandler[] = readBinfmtHandlers(), host: Platform = hostPlatform()): string[] {
  const out = [formatPlatform(host)];
  for (const x of handlers) {
    if (x.platform === undefined || !x.enabled || !x.flags.includes('F')) continue;
    const p = formatPlatform(x.platform);
    if (!out.includes(p)) out.push(p);
    // qemu-arm runs both ARM variants BuildKit lists.
    if (p === 'linux/arm/v7' && !out.includes('linux/arm/v6')) out.push('linux/arm/v6');
  }
  return out;
}

/** QEMU's name for an architecture (`qemu-<name>-static`, `/usr/lib/binfmt.d/qemu-<name>.conf`). */
export function qemuArch(architecture: string): string {
  const map: Record<string, string> = { arm64: 'aarch64', amd64: 'x86_64', '386': 'i386', loong64: 'loongarch64' };
  return map[architecture] ?? architecture;
}
