import { formatPlatform, hostPlatform, parsePlatform, type Platform } from '@kiln/runtime';
import { EngineError } from './errors.js';

/**
 * `--platform A,B` as buildx's platformutil reads it: each entry a platform (`local` is this
 * machine's), an empty entry an error (a trailing or doubled comma), repeats dropped.
 */
export function parsePlatformList(value: string): Platform[] {
  const out: Platform[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') {
      throw new EngineError('KLN0702', `--platform ${JSON.stringify(value)}: an empty platform in the list`, { hint: 'separate platforms with single commas, e.g. --platform linux/amd64,linux/arm64' });
    }
    let p: Platform;
    try {
      p = entry.toLowerCase() === 'local' ? hostPlatform() : parsePlatform(entry);
    } catch (e) {
      const hint = e instanceof Error && 'hint' in e && typeof e.hint === 'string' ? e.hint : 'use os/arch[/variant], e.g. linux/arm64';
      throw new EngineError('KLN0702', `--platform: ${e instanceof Error ? e.message : String(e)}`, { hint });
    }
    const key = formatPlatform(p);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}
