/**
 * What a build function receives (`export default (ctx: Ctx) => …`) and may return. The ctx
 * calls that need the gateway (solve and reads, image config lookups, warnings) are answered
 * by the kiln/ts frontend; the rest (args, target, platforms, local) is known up front.
 */
import type { ImageResult } from './image-result.js';
import type { LocalOpts } from './sources.js';
import type { State } from './state.js';

/** Metadata of a file in a solved result. */
export interface FileInfo {
  readonly path: string;
  /** Go `os.FileMode` bits (dir `1 << 31`, symlink `1 << 27`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Modification time in Unix nanoseconds. */
  readonly modTime: bigint;
  readonly linkname?: string;
}

/** A solved (on first read) result of {@link Ctx.solve}. */
export interface Ref {
  /** A file as UTF-8 text. */
  readFile(path: string): Promise<string>;
  /** A file as bytes. */
  readBytes(path: string): Promise<Uint8Array>;
  /** A directory listing, optionally filtered by a glob. */
  readDir(path: string, include?: string): Promise<readonly FileInfo[]>;
  /** One path's metadata (symlinks not followed). */
  stat(path: string): Promise<FileInfo>;
}

/** An image config lookup's answer. */
export interface ResolvedImage {
  /** Manifest digest. */
  readonly digest: string;
  /** The image config JSON, parsed. */
  readonly config: Readonly<Record<string, unknown>>;
}

/** A single build result. */
export type SingleResult = ImageResult | State;

/** Results per platform, made by {@link Ctx.platforms}. */
export class PlatformResults {
  constructor(/** Each target platform with its result. */ readonly results: ReadonlyMap<string, SingleResult>) {}
}

/** What a build function returns. */
export type BuildResult = SingleResult | PlatformResults;

/** The build context passed to the build function. */
export interface Ctx {
  /** Build args (`--build-arg NAME=value`). */
  readonly args: Readonly<Record<string, string>>;
  /** `--target`, if given (with a `targets` export, the name of the target being built). */
  readonly target: string | undefined;
  /** The target platform (`--platform`, first entry; default: the host's). */
  readonly platform: string;
  /** Every target platform (`--platform a,b`). */
  readonly targetPlatforms: readonly string[];
  /** Calls `fn` once per target platform: a multi-platform result. */
  platforms(fn: (platform: string) => SingleResult | Promise<SingleResult>): Promise<PlatformResults>;
  /** A directory of the client: `context` is the build context. */
  local(name: string, opts?: LocalOpts): State;
  /**
   * Solves a state now, so the build can read its files. Ops that name no platform get
   * `opts.platform`, else (inside {@link Ctx.platforms}) the platform being built, else
   * {@link Ctx.platform}.
   */
  solve(state: State, opts?: { readonly platform?: string }): Ref;
  /** Looks up an image's config in the registry or store. */
  resolveImageConfig(ref: string, opts?: { platform?: string }): Promise<ResolvedImage>;
  /** Shows a warning to the user. */
  warn(message: string): void;
}

/** The type of a build file's default export. */
export type Build = (ctx: Ctx) => BuildResult | Promise<BuildResult>;

/** What a named target builds: a result made when the file loads, or a function of ctx making one. */
export type TargetBuild = SingleResult | Build;

/** A named target with a description, which `kiln build --call=targets` lists. */
export interface TargetSpec {
  readonly build: TargetBuild;
  readonly description?: string;
}

/** One entry of a build file's `targets` export. */
export type Target = TargetBuild | TargetSpec;

/**
 * A build file's named targets (`export const targets = { api, web } satisfies Targets`):
 * `kiln build --target NAME` builds one (its function gets `ctx.target === NAME`); without
 * `--target`, the default export is built.
 */
export type Targets = Readonly<Record<string, Target>>;
