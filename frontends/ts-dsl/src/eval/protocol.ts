/**
 * The JSON-RPC 2.0 messages between the kiln/ts frontend (parent) and the evaluator (child
 * `node`), one JSON object per line on stdin/stdout. Bytes travel as base64 (Definitions as
 * their pb encoding, so the ops' bytes cross unchanged).
 */

/** What the evaluator knows up front (`init`, parent → child). */
export interface InitParams {
  readonly args: Readonly<Record<string, string>>;
  readonly target?: string;
  /** Target platforms; the first is `ctx.platform`. Never empty. */
  readonly platforms: readonly string[];
  /** Named inputs (base64 pb Definitions) that `ctx.local(name)` returns instead of a local source. */
  readonly inputs: Readonly<Record<string, string>>;
  /**
   * Named contexts (`--build-context NAME=…`, frontend option `context:NAME`) that `ctx.local(name)`
   * returns: an image reference (`docker-image://REF`) or another local name (`local:NAME`).
   */
  readonly contexts?: Readonly<Record<string, { readonly image: string } | { readonly local: string }>>;
  /** `--pull` (`image-resolve-mode`): the resolve mode of image sources and config lookups that name none. */
  readonly resolveMode?: 'pull' | 'local';
  /** LLB caps to marshal with. */
  readonly caps?: readonly string[];
  /** Pins `local.unique`. */
  readonly localUniqueId?: string;
  /** Build file texts by path, for the op source maps (exec failures then point at the `.run()` line). */
  readonly sources?: Readonly<Record<string, string>>;
  /** False: skip the image configs (and the base image lookups they need); `config` is then empty. */
  readonly imageConfig?: boolean;
  /** True (`--call=targets`): build nothing, answer with the `targets` export's names in `done`. */
  readonly listTargets?: boolean;
}

/** A file's metadata on the wire (`modTime` as a decimal string: it is a 64-bit value). */
export interface WireStat {
  readonly path: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly modTime: string;
  readonly linkname?: string;
}

/** Requests the evaluator makes (child → parent), by method. */
export interface Methods {
  solve: { params: { definition: string }; result: { ref: string } };
  readFile: { params: { ref: string; path: string }; result: { data: string } };
  readDir: { params: { ref: string; path: string; include?: string }; result: { entries: WireStat[] } };
  statFile: { params: { ref: string; path: string }; result: { stat: WireStat } };
  resolveImageConfig: { params: { ref: string; platform?: string; resolveMode?: 'pull' | 'local' }; result: { digest: string; config: string } };
  /** The `.dockerignore` exclude patterns of the client directory `name` (asked once per name, when a `local(name)` is lowered). */
  dockerignore: { params: { name: string }; result: { patterns: string[] } };
}

/** One built result: its Definition and image config JSON. */
export interface WireResult {
  readonly platform: string;
  readonly definition: string;
  readonly config: string;
}

/** One named target of a build file, as `--call=targets` lists it (`name` "" is a default export that is none of them). */
export interface WireTarget {
  readonly name: string;
  readonly description?: string;
  readonly default?: boolean;
}

/** A position in a build file. */
export interface WireLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** Notifications the evaluator sends (child → parent). */
export type Notification =
  | { readonly method: 'warn'; readonly params: { message: string; location?: WireLocation } }
  | { readonly method: 'done'; readonly params: { multi: boolean; results: WireResult[]; targets?: WireTarget[] } }
  | { readonly method: 'fail'; readonly params: { message: string; code?: string; hint?: string; location?: WireLocation } };

/** The JSON-RPC error code the parent uses for a failed ctx call. */
export const CALL_FAILED = -32000;
