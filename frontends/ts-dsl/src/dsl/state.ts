/**
 * The DSL {@link State}: an immutable, lazy handle on a point of the build graph with BuildKit's
 * vocabulary (`addEnv`, `dir`, `run`, `copy`, …). Each method returns a new State. Consecutive
 * file calls (`copy`, `mkdir`, `mkfile`, `rm`, `symlink`) batch into one FileOp, as Go's chained
 * `llb.Mkdir(…).Copy(…)` does. Nothing is built until the State is lowered onto an
 * `@kiln/llb-core` State (see lower.ts), which owns the ops and their marshalling.
 */
import { ExecState, copy as llbCopy, mkdir as llbMkdir, mkfile as llbMkfile, parsePlatform, rm as llbRm, symlink as llbSymlink } from '@kiln/llb-core';
import type { ChownSpec, FileAction, NetworkMode, SecurityModeName, State as LlbState } from '@kiln/llb-core';
import type { LowerContext } from './lower.js';
import { ImageResult, type ImageSpec } from './image-result.js';
import { NETWORK_MODES, SECURITY_MODES, checkRunOptions, mountOutputs, toRunOptions, validateCommand, type Command, type RunOpts } from './run.js';
import { TsDslError } from '../errors.js';
import { callerLocation, type BuildLocation } from './source-location.js';
import { bool, checkArg, checkOptions, chown, describeValue, oneOf, permissions, str, strings } from './options.js';
import { checkImageSpec } from './image-result.js';

/** The image a State was built on, so `.image()` can inherit its config. */
export interface BaseImage {
  readonly ref: string;
  readonly platform: string | undefined;
  /** @internal Where the build named the image (a failed config lookup points there). */
  readonly at?: BuildLocation | undefined;
}

type FileStep = (prev: FileAction | undefined, c: LowerContext) => Promise<FileAction>;

/** @internal Consecutive file calls waiting to become one FileOp on `parent`. */
interface FileBatch {
  readonly parent: State;
  readonly steps: readonly FileStep[];
  /** Where the batch's first call is in the build file. */
  readonly at: BuildLocation | undefined;
}

/** Options of {@link State.copy}; paths follow Docker's COPY (directory contents, destination created). */
export interface CopyOpts {
  /** Copy only paths matching these patterns. */
  readonly include?: readonly string[];
  /** Skip paths matching these patterns. */
  readonly exclude?: readonly string[];
  /** Owner of the copied files (`user[:group]`, names or ids). */
  readonly chown?: ChownSpec;
  /** Permission bits of the copied files. */
  readonly chmod?: number;
  /** Create missing parents of the destination (default true). */
  readonly createDestPath?: boolean;
  /** Copy a directory's contents, not the directory itself (default true, as COPY). */
  readonly contentsOnly?: boolean;
  /** Resolve a symlink given as source (default false). */
  readonly followSymlinks?: boolean;
  /** Treat the source as a wildcard pattern (default false). */
  readonly allowWildcard?: boolean;
}

/** Options of {@link State.mkdir}. */
export interface MkdirOpts {
  /** Permission bits (default 0o755). */
  readonly mode?: number;
  /** Create missing parents. */
  readonly parents?: boolean;
  /** Owner. */
  readonly chown?: ChownSpec;
}

/** Options of {@link State.mkfile}. */
export interface MkfileOpts {
  /** Permission bits (default 0o644). */
  readonly mode?: number;
  /** Owner. */
  readonly chown?: ChownSpec;
}

/** Options of {@link State.rm}. */
export interface RmOpts {
  /** Succeed when the path does not exist. */
  readonly allowNotFound?: boolean;
  /** Treat the path as a wildcard pattern. */
  readonly allowWildcard?: boolean;
}

/** A point in the build graph; see the module comment. */
export class State {
  /** @internal */
  constructor(
    /** @internal Builds the llb-core State (call {@link State.lower}, which memoizes). */
    readonly lowerFn: (c: LowerContext) => Promise<LlbState>,
    /** The base image whose config `.image()` inherits (undefined for scratch-based states). */
    readonly baseImage: BaseImage | undefined,
    /** @internal The pending file batch this state ends with. */
    readonly batch: FileBatch | undefined = undefined,
  ) {}

  /** @internal The llb-core State, built once per lowering context. */
  lower(c: LowerContext): Promise<LlbState> {
    return c.once(this, () => this.lowerFn(c));
  }

  private derive(f: (s: LlbState) => LlbState): State {
    return new State(async (c) => f(await this.lower(c)), this.baseImage);
  }

  /** Adds or replaces an environment variable of later `run`s (Go `AddEnv`). */
  addEnv(key: string, value: string): State {
    checkArg('addEnv', 'the name', key, str);
    checkArg('addEnv', `the value of ${key}`, value, str);
    return this.derive((s) => s.addEnv(key, value));
  }

  /** Sets the working directory; a relative path joins the current one (Go `Dir`). */
  dir(path: string): State {
    checkArg('dir', 'the path', path, str);
    return this.derive((s) => s.dir(path));
  }

  /** Sets the user later `run`s run as. */
  user(user: string): State {
    checkArg('user', 'the user', user, str);
    return this.derive((s) => s.user(user));
  }

  /** Sets the platform of the ops built on this state (`linux/arm64`). */
  platform(platform: string): State {
    checkPlatform(platform);
    return this.derive((s) => s.platform(platform));
  }

  /** Sets the network mode of later `run`s. */
  network(mode: NetworkMode): State {
    checkArg('network', 'the mode', mode, oneOf(...NETWORK_MODES));
    return this.derive((s) => s.network(mode));
  }

  /** Sets the security mode of later `run`s (`insecure` needs `--allow security.insecure`). */
  security(mode: SecurityModeName): State {
    checkArg('security', 'the mode', mode, oneOf(...SECURITY_MODES));
    return this.derive((s) => s.security(mode));
  }

  /** Sets the hostname of later `run`s. */
  hostname(name: string): State {
    return this.derive((s) => s.hostname(name));
  }

  /** Adds an /etc/hosts entry to later `run`s (Go `AddExtraHost`). */
  addHost(host: string, ip: string): State {
    return this.derive((s) => s.addExtraHost(host, ip));
  }

  private file(step: FileStep): State {
    const parent = this.batch?.parent ?? this;
    const steps = [...(this.batch?.steps ?? []), step];
    // frames: callerLocation, file, copy/mkdir/…, the build file
    const at = this.batch?.at ?? callerLocation();
    return new State(
      async (c) => {
        const base = await parent.lower(c);
        let action: FileAction | undefined;
        for (const s of steps) action = await s(action, c);
        return base.file(action as FileAction, c.locate(at));
      },
      parent.baseImage,
      { parent, steps, at },
    );
  }

  /**
   * Copies `src` of `from` to `dest` (relative paths: `from`'s and this state's working
   * directories). As in COPY, a `dest` of `.`, `""` or ending in `/` is a directory to copy into.
   */
  copy(from: State, src: string, dest: string, opts: CopyOpts = {}): State {
    if (!(from instanceof State)) throw new TsDslError('KLN0805', `copy: the source must be a State (got ${describeValue(from)})`, { hint: 'copy(image("…"), src, dest) or copy(ctx.local("context"), src, dest)' });
    checkArg('copy', 'the source path', src, str);
    checkArg('copy', 'the destination', dest, str);
    checkOptions('copy', opts, { include: strings, exclude: strings, chown, chmod: permissions, createDestPath: bool, contentsOnly: bool, followSymlinks: bool, allowWildcard: bool });
    const o = {
      copyDirContentsOnly: opts.contentsOnly ?? true,
      createDestPath: opts.createDestPath ?? true,
      ...(opts.followSymlinks === true ? { followSymlinks: true } : {}),
      ...(opts.allowWildcard === true ? { allowWildcard: true } : {}),
      ...(opts.include === undefined ? {} : { includePatterns: opts.include }),
      ...(opts.exclude === undefined ? {} : { excludePatterns: opts.exclude }),
      ...(opts.chown === undefined ? {} : { chown: opts.chown }),
      ...(opts.chmod === undefined ? {} : { mode: opts.chmod }),
    };
    // COPY's rule (dockerfile2llb dispatchCopy): "." and "" name the working directory as a
    // directory, so a file lands inside it. Go's llb.Copy takes "." as the directory's own path:
    // with the directory missing, `copy(src, "package.json", ".")` made the file /app.
    const to = dest === '.' || dest === '' ? './' : dest;
    return this.file(async (prev, c) => {
      const f = await from.lower(c);
      return prev === undefined ? llbCopy(f, src, to, o) : prev.copy(f, src, to, o);
    });
  }

  /** Creates a directory. */
  mkdir(path: string, opts: MkdirOpts = {}): State {
    checkArg('mkdir', 'the path', path, str);
    checkOptions('mkdir', opts, { mode: permissions, parents: bool, chown });
    const mode = opts.mode ?? 0o755;
    const o = { ...(opts.parents === true ? { parents: true } : {}), ...(opts.chown === undefined ? {} : { chown: opts.chown }) };
    return this.file(async (prev) => (prev === undefined ? llbMkdir(path, mode, o) : prev.mkdir(path, mode, o)));
  }

  /** Creates a file holding `data`. */
  mkfile(path: string, data: string | Uint8Array, opts: MkfileOpts = {}): State {
    checkArg('mkfile', 'the path', path, str);
    checkArg('mkfile', 'the data', data, { what: 'a string or a Uint8Array', ok: (v) => typeof v === 'string' || v instanceof Uint8Array, hint: 'mkfile("/app/config.json", JSON.stringify(config))' });
    checkOptions('mkfile', opts, { mode: permissions, chown });
    const mode = opts.mode ?? 0o644;
    const o = opts.chown === undefined ? {} : { chown: opts.chown };
    return this.file(async (prev) => (prev === undefined ? llbMkfile(path, mode, data, o) : prev.mkfile(path, mode, data, o)));
  }

  /** Removes a path. */
  rm(path: string, opts: RmOpts = {}): State {
    checkArg('rm', 'the path', path, str);
    checkOptions('rm', opts, { allowNotFound: bool, allowWildcard: bool });
    const o = { ...(opts.allowNotFound === true ? { allowNotFound: true } : {}), ...(opts.allowWildcard === true ? { allowWildcard: true } : {}) };
    return this.file(async (prev) => (prev === undefined ? llbRm(path, o) : prev.rm(path, o)));
  }

  /** Creates a symlink at `path` pointing at `target`. */
  symlink(target: string, path: string, opts: { chown?: ChownSpec } = {}): State {
    checkArg('symlink', 'the target', target, str);
    checkArg('symlink', 'the path', path, str);
    checkOptions('symlink', opts, { chown });
    const o = opts.chown === undefined ? {} : { chown: opts.chown };
    return this.file(async (prev) => (prev === undefined ? llbSymlink(target, path, o) : prev.symlink(target, path, o)));
  }

  /**
   * Runs a command (`string[]` argv, or a shell script from the `sh` tag) on this state. The
   * returned {@link Exec} is the root filesystem afterwards; `.output(path)` gives a writable
   * mount's result.
   */
  run(cmd: Command, opts: RunOpts = {}): Exec {
    validateCommand(cmd);
    checkRunOptions(opts);
    const at = callerLocation();
    return new Exec(async (c) => (await this.lower(c)).run({ ...(await toRunOptions(cmd, opts, c)), ...c.locate(at) }), this.baseImage, mountOutputs(opts));
  }

  /** This state as an image: `spec` fields override the base image's config, unset ones inherit it. */
  image(spec: ImageSpec = {}): ImageResult {
    checkImageSpec(spec);
    return new ImageResult(this, spec, callerLocation());
  }
}

/** The result of {@link State.run}: the root filesystem after the command. */
export class Exec extends State {
  /** @internal */
  constructor(
    lowerFn: (c: LowerContext) => Promise<LlbState>,
    baseImage: BaseImage | undefined,
    /** @internal Mount targets: undefined when writable, else why the mount has no output. */
    private readonly outputs: ReadonlyMap<string, string | undefined>,
  ) {
    super(lowerFn, baseImage);
  }

  /**
   * The content of the mount at `target` after the command (Go `GetMount`); writable mounts
   * only (a State or a writable `bind()`), or `/` for the root. Unlike Go, which hands back a
   * read-only mount's source unchanged, asking for a mount without output is an error: the
   * command's work would silently be lost.
   */
  output(target: string): State {
    if (target === '/' && this.outputs.get('/') === undefined) return this;
    if (!this.outputs.has(target)) {
      const known = [...this.outputs.keys()].filter((t) => t !== '/');
      throw new TsDslError('KLN0805', `output("${target}"): the run has no mount at ${target}${known.length > 0 ? ` (its mounts: ${known.join(', ')})` : ''}`, {
        hint: 'mount a State there: run(cmd, { mounts: { "/out": scratch() } }).output("/out")',
      });
    }
    const why = this.outputs.get(target);
    if (why !== undefined) throw new TsDslError('KLN0805', `output("${target}"): ${why}`, { hint: 'only writable mounts (a State or bind(state)) have an output' });
    return new State(async (c) => {
      const e = await this.lower(c);
      // lowerFn of an Exec always yields llb-core's ExecState (State.run)
      return e instanceof ExecState ? e.getMount(target) : e;
    }, undefined);
  }
}

/** Throws KLN0805 for a platform string Go's `platforms.Parse` would refuse. */
export function checkPlatform(platform: string): void {
  try {
    parsePlatform(platform);
  } catch (e) {
    throw new TsDslError('KLN0805', e instanceof Error ? e.message : `invalid platform "${platform}"`, { hint: 'os/arch[/variant], e.g. linux/arm64 or linux/arm/v7', cause: e });
  }
}

export { describeValue };
