/**
 * Build and target platforms and the automatic platform ARGs (BuildKit's platformOpt and
 * getPlatformArgs).
 */
import { defaultPlatform, formatPlatform, normalizePlatform, parsePlatform } from '@kiln/llb-core';
import type { Platform } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import type { ArgValue } from './dispatch-state.js';

/** Resolved platforms of a conversion. */
export interface PlatformOptions {
  readonly targetPlatform: Platform;
  readonly buildPlatforms: readonly Platform[];
  /** No target platform was given: it defaults to the first build platform. */
  readonly implicitTarget: boolean;
}

/** Parse a platform option, as a KilnError KLN0505 on failure. */
export function toPlatformOption(p: Platform | string): Platform {
  if (typeof p !== 'string') return normalizePlatform(p);
  try {
    return parsePlatform(p);
  } catch (e) {
    throw new KilnError('KLN0505', `failed to parse platform ${p}: ${(e as Error).message}`, { hint: 'use os/arch[/variant], e.g. linux/arm64' });
  }
}

/** BuildKit's buildPlatformOpt. */
export function platformOptions(target: Platform | string | undefined, build: readonly (Platform | string)[] | undefined): PlatformOptions {
  const targetPlatform = target === undefined ? undefined : toPlatformOption(target);
  let buildPlatforms = build?.map(toPlatformOption) ?? [];
  if (targetPlatform !== undefined && build === undefined) buildPlatforms = [targetPlatform];
  if (buildPlatforms.length === 0) buildPlatforms = [normalizePlatform(defaultPlatform())];
  return {
    targetPlatform: targetPlatform ?? (buildPlatforms[0] as Platform),
    buildPlatforms,
    implicitTarget: targetPlatform === undefined,
  };
}

/** BUILDPLATFORM, BUILDOS, BUILDARCH, BUILDVARIANT, TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT. */
export function platformArgs(po: PlatformOptions): ArgValue[] {
  const bp = po.buildPlatforms[0] as Platform;
  const tp = po.targetPlatform;
  return [
    { key: 'BUILDPLATFORM', value: formatPlatform(bp) },
    { key: 'BUILDOS', value: bp.os },
    { key: 'BUILDARCH', value: bp.architecture },
    { key: 'BUILDVARIANT', value: bp.variant ?? '' },
    { key: 'TARGETPLATFORM', value: formatPlatform(tp) },
    { key: 'TARGETOS', value: tp.os },
    { key: 'TARGETARCH', value: tp.architecture },
    { key: 'TARGETVARIANT', value: tp.variant ?? '' },
  ];
}

/** The meta ARGs as an env for the shell lexer (later entries win). */
export function argsEnv(args: readonly ArgValue[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of args) m.set(a.key, a.value ?? '');
  return m;
}
