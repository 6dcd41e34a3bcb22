import type { PbPlatform } from '@kiln/llb-core';
import { formatPlatform, hostPlatform, normalizePlatform, platformEquals, platformRunner, qemuArch, readBinfmtHandlers, BINFMT_MISC_DIR, type Platform } from '@kiln/runtime';
import { SolverError } from '../errors.js';

/**
 * Refuses an exec whose platform this machine cannot run, before anything is mounted: BuildKit
 * starts it anyway and the user reads `exec /bin/sh: exec format error`. The host's own platform
 * never reads the handler table.
 */
export function checkExecPlatform(p: PbPlatform | undefined, binfmtDir: string = BINFMT_MISC_DIR): void {
  if (p?.os === undefined || p.os === '' || p.architecture === undefined || p.architecture === '') return;
  const want: Platform = normalizePlatform({ os: p.os, architecture: p.architecture, ...(p.variant === undefined || p.variant === '' ? {} : { variant: p.variant }) });
  const host = hostPlatform();
  if (platformEquals(want, host)) return;
  const runner = platformRunner(want, readBinfmtHandlers(binfmtDir), host);
  if (runner.kind !== 'none') return;
  const name = formatPlatform(want);
  const off = runner.unusable.find((h) => !h.enabled);
  const noF = runner.unusable.find((h) => h.enabled && !h.flags.includes('F'));
  const hint =
    want.os !== 'linux'
      ? 'kiln runs Linux containers only'
      : off !== undefined
        ? `its emulator is registered but disabled: echo 1 > ${binfmtDir}/${off.name}`
        : noF !== undefined
          ? `its emulator (${noF.name}) is registered without the F flag, so containers cannot reach it: kiln binfmt --install ${want.architecture} registers it again with F`
          : `install QEMU's user-mode emulator and register it: apt-get install -y qemu-user-static && kiln binfmt --install ${want.architecture} (qemu-${qemuArch(want.architecture)}); or run this stage on the build platform (FROM --platform=$BUILDPLATFORM) and cross-compile`;
  throw new SolverError('SOLVER_UNSUPPORTED', `this step runs ${name} programs, and this ${formatPlatform(host)} machine has no emulator for them`, { hint });
}
