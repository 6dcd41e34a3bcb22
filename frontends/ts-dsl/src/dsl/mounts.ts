/**
 * Mount values for `run(cmd, { mounts: { "/target": … } })`: typed constructors for the
 * BuildKit mount types (cache, secret, bind, tmpfs, ssh). A plain State as a mount value is a
 * writable bind mount whose result `Exec.output(target)` returns (Go `AddMount`).
 */
import type { CacheSharing } from '@kiln/llb-core';
import type { State } from './state.js';
import { TsDslError } from '../errors.js';
import { bool, checkArg, checkOptions, count, oneOf, permissions, state, str } from './options.js';

/** A persistent cache directory (Go `AsPersistentCacheDir`); its content never reaches the image. */
export interface CacheMount {
  readonly kind: 'cache';
  readonly id: string;
  readonly sharing: CacheSharing;
  /** Seed the cache from this state (Go's AddMount source). */
  readonly from: State | undefined;
  /** Mount only this path of `from` (the selector). */
  readonly path: string | undefined;
}

/** A secret file (Go `AddSecret`), or an environment variable in `secretEnv`. */
export interface SecretMount {
  readonly kind: 'secret';
  readonly id: string;
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly optional: boolean;
}

/** A bind mount of a state (Go `AddMount` with `SourcePath`/`Readonly`). */
export interface BindMount {
  readonly kind: 'bind';
  readonly from: State;
  readonly path: string | undefined;
  readonly readonly: boolean;
}

/** A tmpfs (Go `Tmpfs`, `TmpfsSize` in bytes). */
export interface TmpfsMount {
  readonly kind: 'tmpfs';
  readonly size: number | undefined;
}

/** An SSH agent socket (Go `AddSSHSocket`). */
export interface SshMount {
  readonly kind: 'ssh';
  readonly id: string | undefined;
  readonly target: string | undefined;
  readonly mode: number | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  readonly optional: boolean;
}

/** Any mount value. */
export type Mount = CacheMount | SecretMount | BindMount | TmpfsMount | SshMount;

/** A cache mount shared across builds under `id` (sharing `shared` by default, as BuildKit). */
export function cache(id: string, opts: { sharing?: CacheSharing; from?: State; path?: string } = {}): CacheMount {
  checkArg('cache', 'the id', id, str);
  checkOptions('cache', opts, { sharing: oneOf('shared', 'private', 'locked'), from: state, path: str });
  // an empty id is no cache at all to BuildKit (a plain writable mount): refuse it
  if (id === '') throw new TsDslError('KLN0805', 'cache: the id is empty', { hint: 'cache("go-build") names the cache shared across builds' });
  return { kind: 'cache', id, sharing: opts.sharing ?? 'shared', from: opts.from, path: opts.path };
}

/** A secret (`--secret id=…`); mounted read-only with mode 0400 unless told otherwise. Its value never enters the LLB. */
export function secret(id: string, opts: { mode?: number; uid?: number; gid?: number; optional?: boolean } = {}): SecretMount {
  checkArg('secret', 'the id', id, str);
  checkOptions('secret', opts, { mode: permissions, uid: count, gid: count, optional: bool });
  return { kind: 'secret', id, mode: opts.mode, uid: opts.uid, gid: opts.gid, optional: opts.optional === true };
}

/** A bind mount of `from` (writable unless `readonly`; a writable one has an output, see `Exec.output`). */
export function bind(from: State, opts: { path?: string; readonly?: boolean } = {}): BindMount {
  checkArg('bind', 'the source', from, state);
  checkOptions('bind', opts, { path: str, readonly: bool });
  return { kind: 'bind', from, path: opts.path, readonly: opts.readonly === true };
}

/** A tmpfs, optionally limited to `size` bytes. */
export function tmpfs(opts: { size?: number } = {}): TmpfsMount {
  checkOptions('tmpfs', opts, { size: count });
  return { kind: 'tmpfs', size: opts.size };
}

/** An SSH agent socket (`--ssh id=…`); the first one also sets `SSH_AUTH_SOCK`. */
export function ssh(opts: { id?: string; target?: string; mode?: number; uid?: number; gid?: number; optional?: boolean } = {}): SshMount {
  checkOptions('ssh', opts, { id: str, target: str, mode: permissions, uid: count, gid: count, optional: bool });
  return { kind: 'ssh', id: opts.id, target: opts.target, mode: opts.mode, uid: opts.uid, gid: opts.gid, optional: opts.optional === true };
}
