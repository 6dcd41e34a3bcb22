/**
 * InvalidBaseImagePlatform: a base image the registry resolved for the requested platform but
 * whose config says another os or architecture (a single-platform image used for a foreign
 * target, which then fails or runs emulated). Checked for every base image the build resolved.
 */
import { formatPlatform, normalizePlatform, type Platform } from '@kiln/llb-core';
import type { DispatchState } from '../convert/dispatch-state.js';
import type { ShellLex } from '../shell/lex.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

/** An image config with no layers (and no non-empty history) is BuildKit's scratch: not checked. */
function isEmptyImage(d: DispatchState): boolean {
  const img = d.image;
  return (img.rootfs.diff_ids ?? []).length === 0 && !(img.history ?? []).some((h) => h.empty_layer !== true);
}

/**
 * Compare each resolved base image's platform with the one it was resolved for (`d.platform`,
 * set by resolution). `metaEnv` expands the FROM name back to what the user wrote.
 */
export function checkBasePlatforms(states: readonly DispatchState[], reachable: ReadonlySet<DispatchState>, metaEnv: ReadonlyMap<string, string>, shlex: ShellLex, lint: Linter): void {
  if (!lint.enabled(Rules.InvalidBaseImagePlatform)) return;
  for (const d of states) {
    if (!reachable.has(d) || d.base !== undefined || d.fromNamedContext || d.stage.baseName === 'scratch' || d.platform === undefined || d.image === undefined) continue;
    if (isEmptyImage(d)) continue;
    const expected = d.platform;
    const actual: Platform = { os: d.image.os, architecture: d.image.architecture, ...(d.image.variant ? { variant: d.image.variant } : {}) };
    if (expected.os === actual.os && expected.architecture === actual.architecture) continue;
    let name = d.stage.baseName;
    try {
      name = shlex.processWord(d.stage.baseName, metaEnv);
    } catch {
      // keep the name as written
    }
    lint.run(Rules.InvalidBaseImagePlatform, d.stage.location, name, formatPlatform(normalizePlatform(expected)), formatPlatform(normalizePlatform(actual)));
  }
}
