/**
 * Compiling a build file outside a build (`kiln llb build.ts`): the same bundle and sandboxed
 * evaluation as the frontend, with image lookups from a resolver and no solver, so `ctx.solve`
 * is refused (reading a result needs `kiln build`).
 */
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { CAPS_V0_11_6, decodeDefinition, normalizeImageReference, parseDockerignore, parsePlatform, type Definition, type ImageMetaResolver } from '@kiln/llb-core';
import { TsDslError, type TsDslLocation } from './errors.js';
import { evaluateBundle } from './eval/host.js';
import type { InitParams } from './eval/protocol.js';
import { bundleBuildFile, type SourceReader } from './load/bundle.js';
import { platformsOf } from './platforms.js';

/** Reads build sources from a directory of the host (paths may not leave it). */
export function directoryReader(dir: string): SourceReader {
  return {
    async read(path) {
      const p = posix.normalize(path);
      if (p.startsWith('../') || p.startsWith('/')) return undefined;
      return readFile(join(dir, p)).then((b) => new Uint8Array(b), () => undefined);
    },
  };
}

/** Options of {@link compileBuildFile}. */
export interface CompileOptions {
  /** Build args (`ctx.args`). */
  readonly args?: ReadonlyMap<string, string>;
  readonly target?: string;
  /** Target platform (default: the host's). */
  readonly platform?: string;
  /** Pins `local.unique`. */
  readonly localUniqueId?: string;
  /** Answers image config lookups (`.image()` inheritance, `resolve: true`). */
  readonly resolver: ImageMetaResolver;
  /** False: no image configs (no base image lookups); `imageConfigJson` is then empty. */
  readonly imageConfig?: boolean;
  /** Receives the build's warnings. */
  readonly warn?: (message: string, location: TsDslLocation | undefined) => void;
  /** Receives the lines the build writes to its console (`console.log`). */
  readonly log?: (line: string) => void;
  /**
   * The build context directory, for its `.dockerignore` (`local("context")`'s exclude patterns;
   * `<entry>.dockerignore` next to the build file wins). Without it nothing is excluded.
   */
  readonly context?: SourceReader;
}

/** One compiled result. */
export interface CompiledBuild {
  readonly platform: string;
  readonly definition: Definition;
  readonly imageConfigJson: string;
}

/** Bundles and evaluates `entry` (relative to `reader`'s root); one result per platform. */
export async function compileBuildFile(entry: string, reader: SourceReader, opts: CompileOptions): Promise<readonly CompiledBuild[]> {
  const bundle = await bundleBuildFile(entry, reader);
  const init: InitParams = {
    args: Object.fromEntries(opts.args ?? []),
    ...(opts.target === undefined ? {} : { target: opts.target }),
    platforms: platformsOf(opts.platform),
    inputs: {},
    caps: CAPS_V0_11_6,
    ...(opts.localUniqueId === undefined ? {} : { localUniqueId: opts.localUniqueId }),
    ...(opts.imageConfig === false ? { imageConfig: false } : {}),
  };
  const noSolver = async (): Promise<never> => {
    throw new TsDslError('KLN0805', 'ctx.solve reads built files: it needs a build (kiln build), not kiln llb', { hint: 'run kiln build; kiln llb only prints the graph' });
  };
  const ev = await evaluateBundle(bundle, init, {
    solve: noSolver,
    readFile: noSolver,
    readDir: noSolver,
    statFile: noSolver,
    async resolveImageConfig({ ref, platform }) {
      const r = await opts.resolver.resolveImageConfig(normalizeImageReference(ref), platform === undefined ? {} : { platform: parsePlatform(platform) });
      return { digest: r.digest, config: Buffer.from(r.config).toString('base64') };
    },
    // as kiln llb of a Dockerfile: <file>.dockerignore, else CONTEXT/.dockerignore
    async dockerignore({ name }) {
      if (name !== 'context') return { patterns: [] };
      const dt = (await reader.read(`${entry}.dockerignore`)) ?? (await opts.context?.read('.dockerignore'));
      return { patterns: dt === undefined || dt.length === 0 ? [] : parseDockerignore(new TextDecoder().decode(dt)) };
    },
    warn: (message, location) => opts.warn?.(message, location),
    ...(opts.log === undefined ? {} : { log: opts.log }),
  });
  return ev.results.map((r) => ({ platform: r.platform, definition: decodeDefinition(new Uint8Array(Buffer.from(r.definition, 'base64'))), imageConfigJson: r.config }));
}
