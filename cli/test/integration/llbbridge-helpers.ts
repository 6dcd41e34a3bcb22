import { createHash } from 'node:crypto';
import { encodeDefinition, type Definition, type ResolveImageConfigOptions } from '@kiln/llb-core';
import type { BackendSolveOptions, SolveBackend, SolvedRef } from '@kiln/gateway';
import type { SolverBackend } from '../../src/engine/backend.js';

/**
 * The real solver backend, recording the Definitions solved (sha256 of their bytes). It has no
 * frontend containers: an unknown frontend name is KLN0601.
 */
export class RecordingBackend implements SolveBackend {
  readonly solved: string[] = [];
  readonly inner: SolverBackend;
  constructor(inner: SolverBackend) {
    this.inner = inner;
  }
  solve(definition: Definition, options: BackendSolveOptions): Promise<SolvedRef> {
    this.solved.push(createHash('sha256').update(encodeDefinition(definition)).digest('hex'));
    return this.inner.solve(definition, options);
  }
  resolveImageConfig(ref: string, options: ResolveImageConfigOptions) {
    return this.inner.resolveImageConfig(ref, options);
  }
}

/** Frontend options as buildkitd passes them in a frontend container's env: `BUILDKIT_FRONTEND_OPT_<i>=<key>=<value>`. */
export function envOf(opts: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...opts].map(([k, v], i) => [`BUILDKIT_FRONTEND_OPT_${i}`, `${k}=${v}`]));
}
