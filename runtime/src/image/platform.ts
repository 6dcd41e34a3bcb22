import { ImageStoreError } from '../content/errors.js';
import type { Descriptor, Platform } from './types.js';

/**
 * Normalises a platform the way containerd's `platforms.Normalize` does: `x86_64`→`amd64`,
 * `aarch64`→`arm64` (variant `v8` dropped), `armhf`→`arm/v7`, `armel`→`arm/v6`, `i386`→`386`,
 * `arm` without variant → `arm/v7`, OS lower-cased (`macos`→`darwin`).
 */
export function normalizePlatform(p: Platform): Platform {
  let os = p.os.toLowerCase();
  if (os === 'macos') os = 'darwin';
  let arch = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() ?? '';
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      arch = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = '';
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = `v${variant}`;
      break;
    default:
      break;
  }
  const out: { os: string; architecture: string; variant?: string; 'os.version'?: string } = { os, architecture: arch };
  if (variant !== '') out.variant = variant;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'];
  return out;
}

/** Go's GOOS values (containerd's knownOS). */
const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos']);
/** Go's GOARCH values (containerd's knownArch). */
const KNOWN_ARCH = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le',
  'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm',
]);

/** Parses `os/arch[/variant]`, or one known OS or architecture, as `--platform` takes it. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  if (parts.some((x) => x === '') || parts.length > 3 || parts.length === 0) {
    throw new ImageStoreError('PLATFORM_NOT_FOUND', `invalid platform "${s}"`, { hint: 'use os/arch[/variant], e.g. linux/arm64' });
  }
  if (parts.length === 1) {
    // containerd's platforms.Parse: a known OS with the host's architecture, else a known
    // architecture on linux, else an error.
    const one = (parts[0] ?? '').toLowerCase();
    if (KNOWN_OS.has(one)) return normalizePlatform({ ...hostPlatform(), os: one });
    const p = normalizePlatform({ os: 'linux', architecture: one });
    if (KNOWN_ARCH.has(p.architecture)) return p;
    throw new ImageStoreError('PLATFORM_NOT_FOUND', `invalid platform "${s}": unknown operating system or architecture`, { hint: 'use os/arch[/variant], e.g. linux/arm64' });
  }
  return normalizePlatform({ os: parts[0] ?? '', architecture: parts[1] ?? '', variant: parts[2] });
}

/** `os/arch[/variant]` of a platform. */
export function formatPlatform(p: Platform): string {
  const n = normalizePlatform(p);
  return n.variant !== undefined ? `${n.os}/${n.architecture}/${n.variant}` : `${n.os}/${n.architecture}`;
}

/** The platform of this Node process (always linux, as kiln runs Linux containers). */
export function hostPlatform(): Platform {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const architecture = map[process.arch] ?? process.arch;
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>)['arm_version'];
    return normalizePlatform({ os: 'linux', architecture, variant: typeof v === 'string' ? v : '7' });
  }
  return { os: 'linux', architecture };
}

/**
 * The platforms a host of `want` can run, best first (containerd's `platforms.Only`): the exact
 * platform, then older variants (`arm/v7` runs `v6`, `v5`; `arm64` runs `arm/v8`…; `amd64/v3` runs v2, v1).
 */
export function compatiblePlatforms(want: Platform): Platform[] {
  const n = normalizePlatform(want);
  const out: Platform[] = [n];
  const armVariants = ['v8', 'v7', 'v6', 'v5'];
  if (n.architecture === 'arm' && n.variant !== undefined) {
    const i = armVariants.indexOf(n.variant);
    if (i >= 0) for (const v of armVariants.slice(i + 1)) out.push({ os: n.os, architecture: 'arm', variant: v });
  } else if (n.architecture === 'arm64') {
    for (const v of armVariants) out.push({ os: n.os, architecture: 'arm', variant: v });
  } else if (n.architecture === 'amd64') {
    const amd = ['v4', 'v3', 'v2'];
    const i = n.variant === undefined ? amd.length : amd.indexOf(n.variant);
    for (const v of amd.slice(i + 1)) out.push({ os: n.os, architecture: 'amd64', variant: v });
    if (n.variant !== undefined) out.push({ os: n.os, architecture: 'amd64' });
  }
  return out;
}

/** True if `have` equals `want` after normalisation (OS version is ignored, as on Linux). */
export function platformEquals(have: Platform, want: Platform): boolean {
  const a = normalizePlatform(have);
  const b = normalizePlatform(want);
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** How well `have` suits `want`: 0 is best, -1 means it cannot run. */
export function platformRank(have: Platform, want: Platform): number {
  return compatiblePlatforms(want).findIndex((c) => platformEquals(have, c));
}

/**
 * Picks the index entry for a platform: the best-ranked compatible one; ties keep index order.
 * Throws `PLATFORM_NOT_FOUND` listing the platforms that exist.
 */
export function selectPlatformManifest(manifests: ReadonlyArray<Descriptor>, want: Platform): Descriptor {
  let best: Descriptor | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const m of manifests) {
    if (m.platform === undefined) continue;
    const r = platformRank(m.platform, want);
    if (r >= 0 && r < bestRank) {
      best = m;
      bestRank = r;
    }
  }
  if (best === undefined) {
    const have = manifests.filter((m) => m.platform !== undefined).map((m) => formatPlatform(m.platform as Platform));
    throw new ImageStoreError('PLATFORM_NOT_FOUND', `no image for platform ${formatPlatform(want)} (image has ${have.join(', ') || 'no platforms'})`, {
      hint: 'pick one of the listed platforms with --platform',
    });
  }
  return best;
}
