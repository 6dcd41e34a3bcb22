import type { Platform } from '@kiln/runtime';

/** `os/arch[/variant]` as containerd's `platforms.Format` writes a platform (not normalised; no os: `unknown`). */
export function platformString(p: Platform): string {
  if (p.os === '') return 'unknown';
  return [p.os, p.architecture, p.variant ?? ''].filter((s) => s !== '').join('/');
}
