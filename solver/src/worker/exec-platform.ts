import { realpathSync } from 'node:fs';
import {
  BINFMT_MISC_DIR,
  QEMU_EMULATOR_PATH,
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  platformEquals,
  platformRunner,
  qemuArch,
  readBinfmtHandlers,
  runnablePlatforms,
  type ExecMount,
  type Platform,
  type PlatformRunnerOptions,
} from '@kiln/runtime';
import { SolverError } from '../errors.js';

/** Where {@link checkExecPlatform} looks (this machine's by default; tests point it elsewhere). */
export interface ExecPlatformOptions extends Omit<PlatformRunnerOptions, 'handlers'> {
  /** What runs, for the message: `this step` (default), `this container`. */
  readonly subject?: string;
  /** The binfmt_misc mount. */
  readonly binfmtDir?: string;
}

/** An op's pb.Platform, or a container's platform. */
export type ExecPlatform = { readonly os?: string | undefined; readonly architecture?: string | undefined; readonly variant?: string | undefined };

/** How an exec of another platform runs: `emulator`, BuildKit's `buildkit-qemu-<arch>` to mount and run the command through. */
export interface ExecEmulation {
  readonly emulator?: string;
}

/**
 * The one check for every process kiln starts in a container of some platform (a RUN, `kiln build
 * --invoke`, a frontend's NewContainer): says when BuildKit's `buildkit-qemu-<arch>` on PATH runs
 * it instead of a binfmt_misc handler, and refuses an amd64 variant above the CPU's level as
 * BuildKit's getEmulator does. A platform nothing here runs is not refused: the stage's programs
 * may be the host's all the same (a single-platform base image resolves for any platform, as in
 * containerd), so the exec runs, and when it fails {@link noEmulator} says why (see
 * exec-foreign.ts). The host's own platform reads no handler table.
 */
export function checkExecPlatform(p: ExecPlatform | undefined, opts: ExecPlatformOptions = {}): ExecEmulation {
  const want = platformOf(p);
  if (want === undefined) return {};
  const host = opts.host ?? hostPlatform();
  if (platformEquals(want, host)) return {};
  const runOpts: PlatformRunnerOptions = { ...opts, host, handlers: readBinfmtHandlers(opts.binfmtDir ?? BINFMT_MISC_DIR) };
  const runner = platformRunner(want, runOpts);
  if (runner.kind === 'qemu') return { emulator: realpathSync(runner.path) };
  if (runner.kind === 'none' && runner.level !== undefined) {
    const supported = runnablePlatforms(runOpts).filter((x) => x.startsWith('linux/amd64'));
    throw new SolverError('SOLVER_UNSUPPORTED', `${opts.subject ?? 'this step'} runs ${formatPlatform(want)} programs, and this CPU runs x86-64 up to v${runner.level} (supported: ${supported.join(', ')})`, {
      hint: `build for ${supported[supported.length - 1] ?? 'linux/amd64'} or lower, or on a machine whose CPU has the x86-64-${want.variant ?? ''} instructions`,
    });
  }
  return {};
}

/** A pb.Platform as a normalized Platform, or undefined when it names none. */
function platformOf(p: ExecPlatform | undefined): Platform | undefined {
  if (p?.os === undefined || p.os === '' || p.architecture === undefined || p.architecture === '') return undefined;
  return normalizePlatform({ os: p.os, architecture: p.architecture, ...(p.variant === undefined || p.variant === '' ? {} : { variant: p.variant }) });
}

/**
 * Why programs of platform `p` cannot run here (no usable emulator; the kernel refuses the host's
 * 32-bit ones), with a hint for each reason, and the interpreters of the enabled handlers for `p`
 * registered without `F`: the kernel opens such an interpreter by its path inside the container when the program
 * starts, so a root that holds it (an image shipping its own `qemu-*-static`, as old balena
 * images do) runs `p`'s programs all the same.
 */
export function noEmulator(p: ExecPlatform, opts: ExecPlatformOptions = {}): { readonly error: SolverError; readonly interpreters: readonly string[] } | undefined {
  const want = platformOf(p);
  if (want === undefined) return undefined;
  const host = opts.host ?? hostPlatform();
  if (platformEquals(want, host)) return undefined;
  const binfmtDir = opts.binfmtDir ?? BINFMT_MISC_DIR;
  const runner = platformRunner(want, { ...opts, host, handlers: readBinfmtHandlers(binfmtDir) });
  if (runner.kind !== 'none' || runner.level !== undefined) return undefined;
  const name = formatPlatform(want);
  const subject = opts.subject ?? 'this step';
  const arch = want.architecture;
  const install = `install QEMU's user-mode emulator and register it: apt-get install -y qemu-user-static && kiln binfmt --install ${arch} (qemu-${qemuArch(arch)}), or put BuildKit's buildkit-qemu-${qemuArch(arch)} on kiln's PATH; or run this stage on the build platform (FROM --platform=$BUILDPLATFORM) and cross-compile`;
  const off = runner.unusable.find((h) => !h.enabled);
  const noF = runner.unusable.find((h) => h.enabled && !h.flags.includes('F'));
  const hint =
    want.os !== 'linux'
      ? 'kiln runs Linux containers only'
      : off?.disabledBy === 'binfmt_misc'
        ? `binfmt_misc is disabled, so no emulator runs: echo 1 > ${binfmtDir}/status`
        : off !== undefined
          ? `its emulator is registered but disabled: echo 1 > ${binfmtDir}/${off.name}`
          : noF !== undefined
            ? `its emulator (${noF.name}) is registered without the F flag, so containers cannot reach it: kiln binfmt --install ${arch} registers it again with F`
            : install;
  const why = runner.kernel === true ? `this ${formatPlatform(host)} machine's kernel does not run them itself (tried) and has no emulator for them` : `this ${formatPlatform(host)} machine has no emulator for them`;
  const interpreters = runner.unusable.filter((h) => h.enabled && !h.flags.includes('F')).map((h) => h.interpreter);
  return { error: new SolverError('SOLVER_UNSUPPORTED', `${subject} runs ${name} programs, and ${why}`, { hint }), interpreters };
}

/**
 * BuildKit's emulator mount and command (exec_binfmt.go): the emulator read-only at
 * /dev/.buildkit_qemu_emulator, the command run through it. Unchanged without an emulator.
 */
export function emulatedCommand(e: ExecEmulation, args: readonly string[]): { readonly args: readonly string[]; readonly mounts: readonly ExecMount[] } {
  if (e.emulator === undefined) return { args, mounts: [] };
  return { args: [QEMU_EMULATOR_PATH, ...args], mounts: [{ kind: 'bind', target: QEMU_EMULATOR_PATH, source: e.emulator, readonly: true }] };
}
