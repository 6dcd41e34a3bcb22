/**
 * Plain mirrors of BuildKit's `solver/pb/ops.proto` FileOp actions, independent of any protobuf
 * code. Timestamps are unix nanoseconds as `bigint` or `number`; `-1` means "keep" (BuildKit's
 * `timestampToTime`). Modes are numeric permission bits (only `0o7777` is used).
 */

/**
 * A user or group, by name or by id. A name is looked up in /etc/passwd or /etc/group of `root`
 * (BuildKit: the mount of NamedUserOpt.input), else of {@link FileOpOptions.ownerRoot}, else of
 * the destination root.
 */
export type UserOpt = { readonly byName: string; readonly root?: string } | { readonly byID: number };

/** pb.ChownOpt: the owner to set; a missing group means the user's primary group (by name) or the uid (by id). */
export interface ChownOpt {
  readonly user?: UserOpt;
  readonly group?: UserOpt;
}

/** A unix-nanosecond timestamp; `-1` keeps the current (or source) time. */
export type Timestamp = bigint | number;

/** pb.FileActionMkDir. */
export interface FileActionMkDir {
  readonly path: string;
  readonly mode: number;
  readonly makeParents: boolean;
  readonly owner?: ChownOpt;
  readonly timestamp: Timestamp;
}

/** pb.FileActionMkFile. `data` is written as is (a string is encoded as UTF-8). */
export interface FileActionMkFile {
  readonly path: string;
  readonly mode: number;
  readonly data: Uint8Array | string;
  readonly owner?: ChownOpt;
  readonly timestamp: Timestamp;
}

/** pb.FileActionRm. */
export interface FileActionRm {
  readonly path: string;
  readonly allowNotFound: boolean;
  readonly allowWildcard: boolean;
}

/** pb.FileActionCopy. `mode` `-1` keeps the source mode; `modeStr` (e.g. `u+x,go-w`) wins over `mode`. */
export interface FileActionCopy {
  readonly src: string;
  readonly dest: string;
  readonly owner?: ChownOpt;
  readonly mode: number;
  readonly followSymlink: boolean;
  readonly dirCopyContents: boolean;
  readonly attemptUnpackDockerCompatibility: boolean;
  readonly createDestPath: boolean;
  readonly allowWildcard: boolean;
  readonly allowEmptyWildcard: boolean;
  readonly timestamp: Timestamp;
  readonly includePatterns?: ReadonlyArray<string>;
  readonly excludePatterns?: ReadonlyArray<string>;
  readonly alwaysReplaceExistingDestPaths: boolean;
  readonly modeStr?: string;
}

/** pb.FileActionSymlink: create `newpath` pointing at `oldpath` (stored verbatim). */
export interface FileActionSymlink {
  readonly oldpath: string;
  readonly newpath: string;
  readonly owner?: ChownOpt;
  readonly timestamp: Timestamp;
}

/** One FileOp action, a discriminated union mirroring the pb `oneof action`. */
export type FileAction =
  | ({ readonly kind: 'mkdir' } & FileActionMkDir)
  | ({ readonly kind: 'mkfile' } & FileActionMkFile)
  | ({ readonly kind: 'rm' } & FileActionRm)
  | ({ readonly kind: 'copy' } & FileActionCopy)
  | ({ readonly kind: 'symlink' } & FileActionSymlink);

/** A resolved numeric owner. */
export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** Options shared by every file action. */
export interface FileOpOptions {
  /**
   * Directory whose /etc/passwd and /etc/group resolve owners given by name (BuildKit reads them
   * from the ChownOpt's input mount). Defaults to the destination root.
   */
  readonly ownerRoot?: string;
  /** Cancels the action between files. */
  readonly signal?: AbortSignal;
  /** Maximum number of file copies in flight (default 8). */
  readonly concurrency?: number;
  /**
   * Copy actions only: hard-link regular files instead of copying their bytes. Valid only when
   * the copy's source root is an immutable directory (a committed snapshot's own layer, never
   * written in place) on the same filesystem as `destLayer`. A file is linked when the copy
   * would give it exactly the source's owner, mode and times (no chown, chmod or timestamp
   * changes it) and it goes into a directory this copy created (so only this copy's own
   * directories receive links). The links are not made by the copy: they are added to `links`
   * (and the directories they land in, with the times they must end with, to `stamps`, deepest
   * first) for the caller to make in `destLayer` once the destination is no longer mounted
   * (writing to an overlay's upper directory under a mounted overlay is not allowed).
   */
  readonly copyLinks?: {
    /** The destination root's own layer directory on the host: its overlay upperdir, or the root itself. */
    readonly destLayer: string;
    readonly links: Array<{ readonly from: string; readonly to: string }>;
    readonly stamps: Array<{ readonly path: string; readonly atime: number; readonly mtime: number }>;
  };
}
