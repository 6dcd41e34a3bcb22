import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BINFMT_MISC_DIR,
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  qemuArch,
  readBinfmtHandlers,
  runnablePlatforms,
  type BinfmtHandler,
} from '@kiln/runtime';
import { EngineError } from './errors.js';

/**
 * `kiln binfmt`: QEMU user-mode emulators registered with binfmt_misc, so `RUN` steps of other
 * platforms run (what `docker run --privileged tonistiigi/binfmt --install` does for buildx). The
 * registrations come from the distribution's own files (Debian's qemu-user-static ships
 * `/usr/lib/binfmt.d/qemu-<arch>.conf`), always with the `F` flag: the kernel opens the emulator
 * once, at registration, so it also runs inside containers whose root has no such file.
 */

/** Where systemd-binfmt reads registrations, later directories overridden by earlier ones. */
export const BINFMT_CONF_DIRS: readonly string[] = ['/etc/binfmt.d', '/run/binfmt.d', '/usr/lib/binfmt.d'];

/** The architectures BuildKit's archutil checks, in its order. */
const KNOWN_ARCHES = ['amd64', 'arm64', 'riscv64', 'ppc64le', 's390x', '386', 'mips64le', 'mips64', 'arm', 'loong64'];

export interface BinfmtPaths {
  /** The binfmt_misc mount (default /proc/sys/fs/binfmt_misc). */
  readonly dir?: string;
  readonly confDirs?: readonly string[];
}

/** What `kiln binfmt` prints (as tonistiigi/binfmt's status: `supported`, `emulators`). */
export interface BinfmtStatus {
  readonly mounted: boolean;
  readonly supported: string[];
  readonly emulators: BinfmtHandler[];
}

export function binfmtStatus(paths: BinfmtPaths = {}): BinfmtStatus {
  const dir = paths.dir ?? BINFMT_MISC_DIR;
  const emulators = readBinfmtHandlers(dir).filter((h) => h.platform !== undefined);
  return { mounted: existsSync(join(dir, 'register')), supported: runnablePlatforms({ handlers: emulators }), emulators };
}

/** `arm64`, `linux/arm64`, `aarch64` or `qemu-aarch64` as a Go architecture name. */
export function binfmtArch(given: string): string {
  const s = given.trim().replace(/^qemu-/, '');
  let arch: string;
  try {
    arch = s.includes('/') ? parsePlatform(s).architecture : normalizePlatform({ os: 'linux', architecture: s === 'x86_64' ? 'amd64' : s === 'loongarch64' ? 'loong64' : s }).architecture;
  } catch {
    arch = '';
  }
  if (!KNOWN_ARCHES.includes(arch)) {
    throw new EngineError('KLN0713', `unknown architecture ${JSON.stringify(given)}`, { hint: `use one of ${KNOWN_ARCHES.join(', ')}, or all` });
  }
  return arch;
}

/** The registration line for `arch`'s QEMU emulator from the binfmt.d files, with the F flag. */
export function qemuRegistration(arch: string, confDirs: readonly string[] = BINFMT_CONF_DIRS): { readonly name: string; readonly line: string } | undefined {
  const name = `qemu-${qemuArch(arch)}`;
  for (const d of confDirs) {
    let text: string;
    try {
      text = readFileSync(join(d, `${name}.conf`), 'utf8');
    } catch {
      continue;
    }
    const line = text.split('\n').find((l) => l.startsWith(':'));
    if (line === undefined) return undefined;
    // :name:type:offset:magic:mask:interpreter:flags (magic and mask never hold a raw ':', they are \x-escaped)
    const fields = line.trimEnd().split(':');
    const flags = fields[7] ?? '';
    if (fields.length < 8 || fields[1] !== name) return undefined;
    fields[7] = flags.includes('F') ? flags : `${flags}F`;
    return { name, line: fields.slice(0, 8).join(':') };
  }
  return undefined;
}

/** Mounts binfmt_misc at `dir` when it is not (as systemd's automount would). */
async function ensureMounted(dir: string): Promise<void> {
  if (existsSync(join(dir, 'register'))) return;
  try {
    await promisify(execFile)('mount', ['-t', 'binfmt_misc', 'binfmt_misc', dir]);
  } catch (e) {
    const why = e instanceof Error && 'stderr' in e ? String((e as { stderr: unknown }).stderr).trim() : String(e);
    throw new EngineError('KLN0713', `cannot mount binfmt_misc at ${dir}: ${why}`, { hint: 'kiln binfmt needs root on the host (a container needs --privileged)' });
  }
}

/**
 * A write to the kernel's handler table, its refusal as KLN0713: ENOENT for a registration whose
 * interpreter is missing (F opens it now), EPERM/EACCES without the right to (rootless, a container).
 */
function writeTable(file: string, data: string, what: string): void {
  try {
    writeFileSync(file, data);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    const hint =
      code === 'ENOENT' && what.startsWith('register')
        ? `the emulator the registration names is missing: apt-get install --reinstall -y qemu-user-static`
        : 'kiln binfmt needs root on the host (a container needs --privileged; rootless kiln cannot change it)';
    throw new EngineError('KLN0713', `cannot ${what}: writing ${file} failed (${code})`, { hint });
  }
}

function needRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new EngineError('KLN0713', `kiln binfmt ${what} needs root: it registers emulators with the kernel, for every user of this machine`, { hint: `sudo kiln binfmt ${what} …` });
}

/** The architectures `list` names (`all`: every one with an emulator in the binfmt.d files, but the host's). */
function archesOf(list: readonly string[], confDirs: readonly string[]): string[] {
  const host = hostPlatform().architecture;
  if (list.some((a) => a.trim() === 'all')) return KNOWN_ARCHES.filter((a) => a !== host && qemuRegistration(a, confDirs) !== undefined);
  return [...new Set(list.flatMap((x) => x.split(',')).filter((x) => x.trim() !== '').map(binfmtArch))];
}

/**
 * Registers QEMU's emulators for `arches` (with F); an emulator registered already with F and
 * enabled is left as it is, one without F (or disabled) is registered again.
 */
export async function installEmulators(arches: readonly string[], paths: BinfmtPaths = {}): Promise<{ installed: string[]; kept: string[] }> {
  const dir = paths.dir ?? BINFMT_MISC_DIR;
  const confDirs = paths.confDirs ?? BINFMT_CONF_DIRS;
  needRoot('--install');
  const wanted = archesOf(arches, confDirs);
  const host = hostPlatform().architecture;
  const regs = wanted.map((a) => ({ arch: a, reg: a === host ? undefined : qemuRegistration(a, confDirs) }));
  const missing = regs.filter((r) => r.reg === undefined && r.arch !== host).map((r) => r.arch);
  if (missing.length > 0) {
    throw new EngineError('KLN0713', `no QEMU emulator for ${missing.join(', ')} in ${confDirs.join(', ')}`, {
      hint: `apt-get install -y qemu-user-static (it ships ${missing.map((a) => `qemu-${qemuArch(a)}.conf`).join(', ')})`,
    });
  }
  await ensureMounted(dir);
  const installed: string[] = [];
  const kept: string[] = [];
  for (const { arch, reg } of regs) {
    if (reg === undefined) continue; // the host's own architecture needs no emulator
    const have = readBinfmtHandlers(dir).find((h) => h.name === reg.name);
    if (have !== undefined && have.enabled && have.flags.includes('F')) {
      kept.push(arch);
      continue;
    }
    if (have !== undefined) writeTable(join(dir, reg.name), '-1', `remove ${reg.name}`);
    writeTable(join(dir, 'register'), reg.line, `register ${reg.name}`);
    installed.push(arch);
  }
  return { installed, kept };
}

/** Removes the QEMU emulators of `arches` (`all`: every registered handler whose magic is a known ELF machine). */
export async function uninstallEmulators(arches: readonly string[], paths: BinfmtPaths = {}): Promise<string[]> {
  const dir = paths.dir ?? BINFMT_MISC_DIR;
  needRoot('--uninstall');
  const all = arches.some((a) => a.trim() === 'all');
  const wanted = all ? undefined : new Set(arches.flatMap((x) => x.split(',')).filter((x) => x.trim() !== '').map(binfmtArch));
  const removed: string[] = [];
  for (const h of readBinfmtHandlers(dir)) {
    if (h.platform === undefined || !h.name.startsWith('qemu-')) continue;
    if (wanted !== undefined && !wanted.has(h.platform.architecture)) continue;
    writeTable(join(dir, h.name), '-1', `remove ${h.name}`);
    removed.push(h.name);
  }
  return removed;
}

/** The status as text: the platforms, then one line per emulator. */
export function formatBinfmtStatus(s: BinfmtStatus): string {
  const lines = [`Platforms:  ${s.supported.join(', ')}`];
  if (!s.mounted) lines.push('binfmt_misc is not mounted: no emulator is registered (kiln binfmt --install mounts it)');
  else if (s.emulators.length === 0) lines.push('No emulator is registered (kiln binfmt --install arm64 registers QEMU\'s from qemu-user-static).');
  else {
    const rows = s.emulators.map((h) => [h.name, h.platform === undefined ? '' : formatPlatform(h.platform), h.enabled ? 'enabled' : 'disabled', h.flags, h.interpreter]);
    const head = ['EMULATOR', 'PLATFORM', 'STATE', 'FLAGS', 'INTERPRETER'];
    const w = head.map((t, i) => Math.max(t.length, ...rows.map((r) => (r[i] ?? '').length)));
    for (const r of [head, ...rows]) lines.push(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i] ?? 0))).join('  '));
    const noF = s.emulators.filter((h) => !h.flags.includes('F'));
    if (noF.length > 0) lines.push(`${noF.map((h) => h.name).join(', ')}: no F flag, so RUN steps in containers cannot use it (kiln binfmt --install registers it again with F)`);
  }
  return `${lines.join('\n')}\n`;
}
