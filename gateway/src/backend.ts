import type { Definition, FileStat, ImageMetaResolver, ReadFileOptions } from '@kiln/llb-core';

/**
 * A solved result as the gateway needs it: readable, and released when the build is done.
 * The solver adapter implements this over a snapshot.
 */
export interface SolvedRef {
  readFile(path: string, options?: ReadFileOptions): Promise<Uint8Array>;
  readDir(path: string, include?: string): Promise<readonly FileStat[]>;
  statFile(path: string): Promise<FileStat>;
}

/** Options of one {@link SolveBackend.solve} call. */
export interface BackendSolveOptions {
  readonly signal?: AbortSignal;
}

/**
 * What the gateway needs of the solver: evaluate a Definition into a readable result, and
 * resolve image configs (the frontend's `resolveImageConfig`). Kept narrow so the gateway can
 * be tested against a fake and so BuildKit's LLBBridge can be served over the same interface later.
 */
export interface SolveBackend extends ImageMetaResolver {
  solve(definition: Definition, options: BackendSolveOptions): Promise<SolvedRef>;
}
