/** Target platform lists from the `platform` frontend option (`linux/amd64,linux/arm64`). */
import { defaultPlatform, formatPlatform, normalizePlatform, parsePlatform } from '@kiln/llb-core';

/** Normalized platforms of a comma-separated list; the host's when empty. */
export function platformsOf(value: string | undefined): string[] {
  const list = (value ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => formatPlatform(parsePlatform(p)));
  return list.length > 0 ? list : [formatPlatform(normalizePlatform(defaultPlatform()))];
}
