/**
 * OCI platforms (`os/arch[/variant]`), parsed, formatted and normalized like
 * containerd's `platforms` package, which BuildKit uses everywhere.
 */
import { LlbError } from './errors.js';
import type { PbPlatform } from './op.js';

/** An OCI image-spec platform. Field names follow the OCI JSON (`os.version` → `osVersion`). */
export interface Platform {
  /** Operating system, e.g. `linux`. */
  readonly os: string;
  /** CPU architecture, e.g. `amd64`, `arm64`. */
  readonly architecture: string;
  /** Architecture variant, e.g. `v7` for 32-bit ARM. */
  readonly variant?: string | undefined;
  /** OS version (Windows build), e.g. `10.0.17763.1234`. */
  readonly osVersion?: string | undefined;
  /** Required OS features. */
  readonly osFeatures?: readonly string[] | undefined;
}

function normalizeOs(os: string): string {
  const l = os.toLowerCase();
  return l === 'macos' ? 'darwin' : l;
}

function normalizeArch(arch: string, variant: string): [string, string] {
  const a = arch.toLowerCase();
  const v = variant.toLowerCase();
  switch (a) {
    case 'i386':
    case 'i686':
    case 'x86':
    case '386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', v === 'v1' ? '' : v];
    case 'aarch64':
    case 'arm64':
      return ['arm64', v === '8' || v === 'v8' ? '' : v];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      switch (v) {
        case '':
        case '7':
          return ['arm', 'v7'];
        case '5':
        case '6':
        case '8':
          return ['arm', `v${v}`];
        default:
          return ['arm', v];
      }
    default:
      return [a, v];
  }
}

/** containerd `platforms.Normalize`: canonical os, architecture and variant spellings. */
export function normalizePlatform(p: Platform): Platform {
  const [architecture, variant] = normalizeArch(p.architecture, p.variant ?? '');
  const out: { -readonly [K in keyof Platform]: Platform[K] } = { os: normalizeOs(p.os), architecture };
  if (variant) out.variant = variant;
  if (p.osVersion) out.osVersion = p.osVersion;
  if (p.osFeatures && p.osFeatures.length > 0) out.osFeatures = p.osFeatures;
  return out;
}

const COMPONENT = /^[A-Za-z0-9_.-]+$/;

/**
 * Parses `os[/arch[/variant]]` (or just a known arch, taken as linux) into a normalized
 * platform. Throws {@link LlbError} `LLB_PLATFORM` on malformed input.
 */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length > 3 || parts.some((p) => !COMPONENT.test(p))) {
    throw new LlbError('LLB_PLATFORM', `invalid platform ${JSON.stringify(spec)}`, {
      hint: 'use os/arch[/variant], e.g. linux/arm64 or linux/arm/v7',
    });
  }
  if (parts.length === 1) {
    const only = parts[0] as string;
    const [arch] = normalizeArch(only, '');
    if (['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64', 'mips64le'].includes(arch)) {
      return normalizePlatform({ os: 'linux', architecture: only });
    }
    return normalizePlatform({ os: only, architecture: defaultPlatform().architecture });
  }
  const [os, arch, variant] = parts as [string, string, string | undefined];
  return normalizePlatform(variant === undefined ? { os, architecture: arch } : { os, architecture: arch, variant });
}

/** Formats a platform as `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The host's platform, normalized (BuildKit's default when no platform is given). */
export function defaultPlatform(): Platform {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return normalizePlatform({ os, architecture: archMap[process.arch] ?? process.arch });
}

/** Accepts a platform object or string and returns it normalized. */
export function toPlatform(p: Platform | string): Platform {
  return typeof p === 'string' ? parsePlatform(p) : p;
}

/** Converts a platform to its LLB wire form (`pb.Platform`). */
export function platformToPb(p: Platform): PbPlatform {
  const out: { -readonly [K in keyof PbPlatform]: PbPlatform[K] } = { os: p.os, architecture: p.architecture };
  if (p.variant) out.variant = p.variant;
  if (p.osVersion) out.osVersion = p.osVersion;
  if (p.osFeatures) out.osFeatures = [...p.osFeatures];
  return out;
}

/** Converts an LLB `pb.Platform` back to a Platform. */
export function platformFromPb(p: PbPlatform): Platform {
  const out: { -readonly [K in keyof Platform]: Platform[K] } = { os: p.os ?? '', architecture: p.architecture ?? '' };
  if (p.variant) out.variant = p.variant;
  if (p.osVersion) out.osVersion = p.osVersion;
  if (p.osFeatures) out.osFeatures = p.osFeatures;
  return out;
}

/** True when two platforms are equal field by field. */
export function platformEquals(a: Platform, b: Platform): boolean {
  return (
    a.os === b.os &&
    a.architecture === b.architecture &&
    (a.variant ?? '') === (b.variant ?? '') &&
    (a.osVersion ?? '') === (b.osVersion ?? '') &&
    (a.osFeatures ?? []).join('\0') === (b.osFeatures ?? []).join('\0')
  );
}
