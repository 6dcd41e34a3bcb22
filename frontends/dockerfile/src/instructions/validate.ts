/**
 * Value checks BuildKit's converter applies after expansion (EXPOSE ports via
 * go-connections/nat, STOPSIGNAL via moby/sys/signal): llb-core's, as KLN0405 errors.
 */
import { ImageConfigValueError, parsePortSpecs as portSpecs, parseSignal as signal } from '@kiln/llb-core';
import { KilnError } from '../errors.js';

function kiln<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ImageConfigValueError) throw new KilnError('KLN0405', e.message, { hint: e.hint });
    throw e;
  }
}

/** nat.ParsePortSpecs for EXPOSE words (already expanded and split); throws KLN0405. */
export function parsePortSpecs(specs: readonly string[]): string[] {
  return kiln(() => portSpecs(specs));
}

/** signal.ParseSignal (Linux table); throws KLN0405 `Invalid signal: X`. */
export function parseSignal(raw: string): number {
  return kiln(() => signal(raw));
}
