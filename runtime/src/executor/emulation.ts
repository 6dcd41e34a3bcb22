import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsc, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
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
  /** Why it is not enabled: its own switch, or binfmt_misc's (`status`), which turns every handler off. */
  readonly disabledBy?: 'handler' | 'binfmt_misc';
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
  const enabled = lines[0] === 'enabled';
  return { name, enabled, ...(enabled ? {} : { disabledBy: 'handler' as const }), interpreter, flags: field('flags') ?? '', ...(platform === undefined ? {} : { platform }) };
}

/**
 * The handlers registered with the kernel (none when binfmt_misc is not mounted). With
 * binfmt_misc itself disabled (`echo 0 > status`) the kernel runs none of them
 * (load_misc_binary returns ENOEXEC first): each reads as disabled then.
 */
export function readBinfmtHandlers(dir: string = BINFMT_MISC_DIR): BinfmtHandler[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  let off = false;
  try {
    off = readFileSync(join(dir, 'status'), 'utf8').trim() === 'disabled';
  } catch {
    // no status file: nothing says binfmt_misc is off
  }
  const out: BinfmtHandler[] = [];
  for (const n of names) {
    if (n === 'register' || n === 'status') continue;
    try {
      const h = parseBinfmtHandler(n, readFileSync(join(dir, n), 'utf8'));
      if (h !== undefined) out.push(off ? { ...h, enabled: false, disabledBy: 'binfmt_misc' } : h);
    } catch {
      // removed meanwhile, or not readable: not a handler kiln can count on
    }
  }
  return out;
}

/** Where BuildKit mounts a `buildkit-qemu-<arch>` emulator in the container, and runs the command through it. */
export const QEMU_EMULATOR_PATH = '/dev/.buildkit_qemu_emulator';

/** How a platform's programs would run here. */
export type PlatformRunner =
  | { readonly kind: 'native' }
  /** A handler with the `F` flag emulates it (works in containers). */
  | { readonly kind: 'emulated'; readonly handler: BinfmtHandler }
  /**
   * No usable handler, but BuildKit's `buildkit-qemu-<arch>` is on PATH: it is mounted at
   * {@link QEMU_EMULATOR_PATH} and runs the command (exec_binfmt.go). Only the command's own
   * process is emulated: stock QEMU does not follow execve into other programs.
   */
  | { readonly kind: 'qemu'; readonly path: string }
  /**
   * Kiln cannot tell, so it tries, as BuildKit does: amd64/v2 on an older CPU (BuildKit never
   * refuses v2), a CPU check that could not run, or several enabled handlers, some without `F`
   * (the kernel takes the last registered, which its table does not show).
   */
  | { readonly kind: 'maybe' }
  /**
   * Nothing runs it. `unusable`: handlers that match but are disabled or lack `F`; `level`: the
   * CPU's x86-64 level when an amd64 variant above it was asked for; `kernel`: the kernel
   * refused the host's own 32-bit programs (386 on amd64, arm on arm64).
   */
  | { readonly kind: 'none'; readonly unusable: readonly BinfmtHandler[]; readonly level?: number; readonly kernel?: boolean };

/** What {@link platformRunner} and {@link runnablePlatforms} look at (each read from this machine by default). */
export interface PlatformRunnerOptions {
  readonly handlers?: readonly BinfmtHandler[];
  readonly host?: Platform;
  /** The CPU's x86-64 microarchitecture level, 1–4 (amd64 hosts). */
  readonly amd64Level?: number;
  /** Whether the host runs `architecture`'s programs without an emulator; undefined: could not tell. */
  readonly runsNatively?: (architecture: string) => boolean | undefined;
  /** Where to look for `buildkit-qemu-<arch>` (default: kiln's PATH, as buildkitd's). */
  readonly path?: string;
}

/** Older architectures a host's CPU may run itself, depending on its kernel and model (archutil checks them). */
const MAYBE_NATIVE: Readonly<Record<string, string>> = { amd64: '386', arm64: 'arm' };

/** The x86-64 levels and the /proc/cpuinfo flags each needs (psABI; `pni` is SSE3, `abm` LZCNT). */
const AMD64_LEVELS: ReadonlyArray<readonly [number, readonly string[]]> = [
  [2, ['cx16', 'lahf_lm', 'popcnt', 'pni', 'sse4_1', 'sse4_2', 'ssse3']],
  [3, ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave']],
  [4, ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl']],
];

/** This x86-64 CPU's microarchitecture level (1–4) from `/proc/cpuinfo`, as archutil's amd64 check finds it with cpuid. */
export function amd64Level(cpuinfo?: string): number {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return 1;
    }
  }
  const line = text.split('\n').find((l) => /^flags\s*:/.test(l));
  const flags = new Set((line ?? '').replace(/^flags\s*:/, '').trim().split(/\s+/));
  let level = 1;
  for (const [n, need] of AMD64_LEVELS) {
    if (!need.every((f) => flags.has(f))) break;
    level = n;
  }
  return level;
}

/**
 * A static program of `architecture` that only exits 0 (ELF32, one PT_LOAD segment, the code
 * right after the headers), as archutil's check binaries: 386 `xor ebx,ebx; xor eax,eax; inc eax;
 * int 0x80`; arm (EABI) `mov r0,#0; mov r7,#1; svc #0`.
 */
export function exitProgram(architecture: '386' | 'arm'): Buffer {
  const code = architecture === '386' ? Buffer.from([0x31, 0xdb, 0x31, 0xc0, 0x40, 0xcd, 0x80]) : Buffer.from('0000a0e30170a0e3000000ef', 'hex');
  const vaddr = architecture === '386' ? 0x08048000 : 0x00010000;
  const size = 52 + 32 + code.length;
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1], 0); // ELF, 32-bit, little-endian, version 1
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(architecture === '386' ? 0x03 : 0x28, 18);
  b.writeUInt32LE(1, 20);
  b.writeUInt32LE(vaddr + 84, 24); // e_entry
  b.writeUInt32LE(52, 28); // e_phoff
  b.writeUInt32LE(architecture === '386' ? 0 : 0x05000400, 36); // e_flags (arm: EABI5, hard float)
  b.writeUInt16LE(52, 40);
  b.writeUInt16LE(32, 42);
  b.writeUInt16LE(1, 44);
  // Program header: PT_LOAD of the whole file, read + execute.
  b.writeUInt32LE(1, 52);
  b.writeUInt32LE(0, 56);
  b.writeUInt32LE(vaddr, 60);
  b.writeUInt32LE(vaddr, 64);
  b.writeUInt32LE(size, 68);
  b.writeUInt32LE(size, 72);
  b.writeUInt32LE(5, 76);
  b.writeUInt32LE(0x1000, 80);
  code.copy(b, 84);
  return b;
}

const probed = new Map<string, boolean | undefined>();

/**
 * Whether this machine runs `architecture`'s programs itself: runs {@link exitProgram} once per
 * process (cached). false when the kernel refuses the format (ENOEXEC: IA-32 emulation off, an
 * arm64 CPU without AArch32); undefined when it cannot tell (no program for it, or the temporary
 * directory does not allow exec).
 */
export function runsNatively(architecture: string): boolean | undefined {
  if (architecture !== '386' && architecture !== 'arm') return undefined;
  if (probed.has(architecture)) return probed.get(architecture);
  let result: boolean | undefined;
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'kiln-archcheck-'));
    const file = join(dir, 'check');
    writeFileSync(file, exitProgram(architecture), { mode: 0o755 });
    const r = spawnSync(file, [], { stdio: 'ignore', timeout: 10_000 });
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    result = r.error === undefined ? r.status === 0 : code === 'ENOEXEC' ? false : undefined;
  } catch {
    result = undefined;
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
  probed.set(architecture, result);
  return result;
}

/** BuildKit's `buildkit-qemu-<arch>` emulator on `path` (QEMU's architecture names), or undefined. */
export function findQemuEmulator(architecture: string, path: string = process.env['PATH'] ?? ''): string | undefined {
  const name = `buildkit-qemu-${qemuArch(architecture)}`;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue; // Go's LookPath would take the working directory: never for an emulator
    const file = join(dir, name);
    try {
      accessSync(file, fsc.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * How programs of `want` would run on this machine (or the one `opts` describes). The older form
 * `(want, handlers, host)` still reads as `{ handlers, host }`.
 */
export function platformRunner(want: Platform, options: PlatformRunnerOptions | readonly BinfmtHandler[] = {}, host?: Platform): PlatformRunner {
  const opts: PlatformRunnerOptions = Array.isArray(options) ? { handlers: options, ...(host === undefined ? {} : { host }) } : (options as PlatformRunnerOptions);
  const w = normalizePlatform(want);
  const h = normalizePlatform(opts.host ?? hostPlatform());
  if (w.os !== 'linux') return { kind: 'none', unusable: [] };
  if (w.architecture === h.architecture) {
    if (w.architecture === 'amd64') {
      // BuildKit's getEmulator: a level this CPU has runs; v2 is always tried; v3, v4 above it are refused.
      const want = w.variant === undefined ? 1 : Number(w.variant.replace(/^v/, ''));
      const level = opts.amd64Level ?? amd64Level();
      if (want <= level) return { kind: 'native' };
      return w.variant === 'v2' ? { kind: 'maybe' } : { kind: 'none', unusable: [], level };
    }
    // arm/v8 on an arm/v7 host, a variant kiln does not know: tried.
    return compatiblePlatforms(h).some((c) => (c.variant ?? '') === (w.variant ?? '')) ? { kind: 'native' } : { kind: 'maybe' };
  }
  const matching = (opts.handlers ?? readBinfmtHandlers()).filter((x) => x.platform?.architecture === w.architecture);
  const enabled = matching.filter((x) => x.enabled);
  const withF = enabled.find((x) => x.flags.includes('F'));
  if (withF !== undefined) return enabled.every((x) => x.flags.includes('F')) ? { kind: 'emulated', handler: withF } : { kind: 'maybe' };
  let kernel = false;
  if (MAYBE_NATIVE[h.architecture] === w.architecture) {
    const native = (opts.runsNatively ?? runsNatively)(w.architecture);
    if (native === true) return { kind: 'native' };
    if (native === undefined) return { kind: 'maybe' };
    kernel = true;
  }
  const qemu = findQemuEmulator(w.architecture, opts.path);
  if (qemu !== undefined) return { kind: 'qemu', path: qemu };
  return { kind: 'none', unusable: matching, ...(kernel ? { kernel } : {}) };
}

/** The architectures BuildKit's archutil checks, in the order it lists them. */
const ARCHUTIL_ORDER = ['amd64', 'arm64', 'riscv64', 'ppc64le', 's390x', '386', 'mips64le', 'mips64', 'loong64', 'arm'];

/**
 * The platforms this machine runs programs of, as BuildKit's worker lists them (archutil's
 * SupportedPlatforms): the host's first, the x86-64 levels its CPU has (amd64/v2…), then in
 * archutil's order each architecture the CPU runs itself or a usable binfmt_misc handler
 * emulates (arm as arm/v7 and arm/v6). `buildkit-qemu-*` emulators are not listed, as in BuildKit.
 */
export function runnablePlatforms(opts: PlatformRunnerOptions = {}): string[] {
  const host = normalizePlatform(opts.host ?? hostPlatform());
  const handlers = opts.handlers ?? readBinfmtHandlers();
  const out = [formatPlatform(host)];
  const add = (p: string): void => void (out.includes(p) ? undefined : out.push(p));
  if (host.architecture === 'amd64') {
    const level = opts.amd64Level ?? amd64Level();
    for (let v = 2; v <= level; v++) add(`linux/amd64/v${v}`);
  }
  if (host.architecture === 'arm' && host.variant === 'v7') add('linux/arm/v6');
  for (const arch of ARCHUTIL_ORDER) {
    if (arch === host.architecture) continue;
    const r = platformRunner({ os: 'linux', architecture: arch }, { ...opts, handlers, host, path: '' });
    if (r.kind !== 'native' && r.kind !== 'emulated') continue;
    if (arch === 'arm') {
      add('linux/arm/v7');
      add('linux/arm/v6');
    } else add(`linux/${arch}`);
  }
  // Handlers of architectures archutil does not check (a qemu-sparc64 the user registered).
  for (const x of handlers) {
    if (x.platform !== undefined && x.enabled && x.flags.includes('F')) add(formatPlatform(x.platform));
  }
  return out;
}

/** QEMU's name for an architecture (`qemu-<name>-static`, `/usr/lib/binfmt.d/qemu-<name>.conf`, `buildkit-qemu-<name>`). */
export function qemuArch(architecture: string): string {
  const map: Record<string, string> = { arm64: 'aarch64', amd64: 'x86_64', '386': 'i386', loong64: 'loongarch64', mips64le: 'mips64el' };
  return map[architecture] ?? architecture;
}
