import type { Definition, FileStat, ImageMetaResolver, ReadFileOptions, ResolveImageConfigOptions } from '@kiln/llb-core';

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
  /**
   * Optional: start making an image the frontend just resolved ready for the FROM that usually
   * follows (pull its layers, unpack them), while the frontend is still converting. Called by the
   * gateway after each successful `resolveImageConfig`, with the same reference and options. Must
   * return at once and never throw; what it starts must not fail the build or leak when the image
   * is not used after all.
   */
  prefetchImage?(ref: string, options: ResolveImageConfigOptions): void;
}
