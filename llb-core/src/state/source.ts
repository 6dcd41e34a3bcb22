/**
 * Source ops (client/llb `source.go`): images, local directories, git repositories,
 * HTTP files and OCI layouts. Each returns a {@link State} on a SourceOp whose
 * identifier and attributes are exactly what BuildKit v0.11.6 writes.
 */
import { createHash } from 'node:crypto';
import { LlbError } from '../errors.js';
import type { Op } from '../op.js';
import type { ImageMetaResolver, ResolveMode } from '../image-config.js';
import { defaultPlatform, normalizePlatform, toPlatform, type Platform } from '../platform.js';
import { formatImageReference, parseImageReference, tagNameOnly } from '../reference.js';
import { Attr, Scheme } from './attrs.js';
import { Caps } from './caps.js';
import { addCap, cloneConstraints, constraintsFrom, marshalConstraints, type Constraints, type ConstraintsOptions } from './constraints.js';
import { State } from './state.js';
import { finishVertex, Output, Vertex, type MarshalContext, type MarshaledVertex } from './vertex.js';

/** @internal A SourceOp vertex. */
class SourceVertex extends Vertex {
  readonly output: Output;
  constructor(
    readonly id: string,
    readonly attrs: ReadonlyMap<string, string>,
    readonly constraints: Constraints,
    readonly error: LlbError | undefined,
  ) {
    super();
    this.output = new Output(this, () => 0, constraints.platform);
  }

  inputs(): readonly Vertex[] {
    return [];
  }

  marshal(ctx: MarshalContext): MarshaledVertex {
    if (this.error) throw this.error;
    if (this.id === '') throw new LlbError('LLB_INVALID_STATE', "source identifier can't be empty");
    const c = cloneConstraints(this.constraints);
    const attrs = new Map(this.attrs);
    if (this.id.startsWith(Scheme.local) && !attrs.has(Attr.localSessionID)) {
      const uid = c.localUniqueId ?? ctx.constraints.localUniqueId ?? stableLocalUniqueId(this.id);
      attrs.set(Attr.localUniqueID, uid);
      addCap(c, Caps.sourceLocalUnique);
    }
    const mc = marshalConstraints(ctx.constraints, c);
    const platformSpecific = this.id.startsWith(Scheme.image) || this.id.startsWith(Scheme.ociLayout);
    const op: Op = {
      kind: 'source',
      inputs: [],
      source: attrs.size > 0 ? { identifier: this.id, attrs } : { identifier: this.id },
      ...(platformSpecific ? { platform: mc.platform } : {}),
      constraints: mc.workerConstraints.length > 0 ? { filter: mc.workerConstraints } : {},
    };
    return finishVertex(op, mc.metadata, [], c.sourceLocations);
  }
}

/**
 * BuildKit puts a random `local.unique` on session-less local sources each marshal;
 * kiln derives a stable one from the identifier instead (pin it with `localUniqueId`).
 */
function stableLocalUniqueId(id: string): string {
  return createHash('sha256').update(`kiln-local-unique:${id}`).digest('hex').slice(0, 25);
}

function sourceState(id: string, attrs: Map<string, string>, c: Constraints, error?: LlbError): State {
  return State.fromOutput(new SourceVertex(id, attrs, c, error).output, error);
}

/** Options of {@link image}. */
export interface ImageOptions extends ConstraintsOptions {
  /** `pull` forces a registry lookup, `local` prefers the local store (Go `ResolveMode`). */
  readonly resolveMode?: ResolveMode;
  /** Only use the first N layers (Go `WithLayerLimit`). */
  readonly layerLimit?: number;
  /** Record type, e.g. `internal` (Go `MarkImageInternal`). */
  readonly recordType?: string;
  /** Pin the manifest digest into the identifier (`name:tag@digest`), as a resolved image. */
  readonly digest?: string;
}

/**
 * An image (Go `llb.Image`): `docker-image://<normalized ref>`, carrying the platform
 * (the option's, or the marshal-time one). The reference is normalized
 * (`busybox` → `docker.io/library/busybox:latest`); an invalid one fails at marshal.
 */
export function image(ref: string, opts: ImageOptions = {}): State {
  const c = constraintsFrom(opts);
  let normalized = ref;
  let error: LlbError | undefined;
  try {
    let r = tagNameOnly(parseImageReference(ref));
    if (opts.digest !== undefined) r = { ...r, digest: opts.digest };
    normalized = formatImageReference(r);
  } catch (e) {
    error = e instanceof LlbError ? e : new LlbError('LLB_INVALID_STATE', String(e));
  }
  addCap(c, Caps.sourceImage);
  const attrs = new Map<string, string>();
  if (opts.resolveMode !== undefined && opts.resolveMode !== 'default') {
    attrs.set(Attr.imageResolveMode, opts.resolveMode);
    if (opts.resolveMode === 'pull') addCap(c, Caps.sourceImageResolveMode);
  }
  if (opts.recordType) attrs.set(Attr.imageRecordType, opts.recordType);
  if (opts.layerLimit !== undefined) {
    attrs.set(Attr.imageLayerLimit, String(opts.layerLimit));
    addCap(c, Caps.sourceImageLayerLimit);
  }
  return sourceState(Scheme.image + normalized, attrs, c, error);
}

/** Options of {@link resolveImage}. */
export interface ResolveImageOptions extends ImageOptions {
  /** Looks up the digest and config. */
  readonly metaResolver: ImageMetaResolver;
  /** Pin the resolved digest into the identifier (Go `ResolveDigest(true)`); default true. */
  readonly resolveDigest?: boolean;
  /** Platform to resolve for when `platform` is unset (the marshal platform); default: host. */
  readonly defaultPlatform?: Platform | string;
  /** Cancels the lookup. */
  readonly signal?: AbortSignal;
}

/**
 * An image resolved through a meta resolver (Go `llb.Image` with `WithMetaResolver`):
 * the identifier gains `@<digest>` (unless `resolveDigest: false` or the ref already
 * has a digest), and the config's `Env`, `WorkingDir` and platform flow into the state.
 */
export async function resolveImage(ref: string, opts: ResolveImageOptions): Promise<State> {
  const base = image(ref, opts);
  if (base.error) return base;
  const platform = toPlatform(opts.platform ?? opts.defaultPlatform ?? normalizePlatform(defaultPlatform()));
  const normalized = formatImageReference(tagNameOnly(parseImageReference(ref)));
  const res = await opts.metaResolver.resolveImageConfig(normalized, {
    platform,
    ...(opts.resolveMode ? { resolveMode: opts.resolveMode } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const hasDigest = parseImageReference(ref).digest !== undefined;
  const st = hasDigest || opts.resolveDigest === false ? base : image(ref, { ...opts, digest: res.digest });
  return st.withImageConfig(res.config);
}

/** Options of {@link local}. */
export interface LocalOptions extends ConstraintsOptions {
  /** Session that serves the directory (`local.session`). */
  readonly sessionId?: string;
  /** Transfer only paths matching these patterns. */
  readonly includePatterns?: readonly string[];
  /** Do not transfer paths matching these patterns. */
  readonly excludePatterns?: readonly string[];
  /** Paths (and symlink targets) the build needs. */
  readonly followPaths?: readonly string[];
  /** Cache key hint shared across sessions (`local.sharedkeyhint`). */
  readonly sharedKeyHint?: string;
  /** How changes are detected (`local.differ`); `required` adds the differ cap. */
  readonly differ?: { readonly type: 'none' | 'metadata'; readonly required?: boolean };
}

/** A directory from the client (Go `llb.Local`): `local://<name>`. */
export function local(name: string, opts: LocalOptions = {}): State {
  const c = constraintsFrom(opts);
  const attrs = new Map<string, string>();
  addCap(c, Caps.sourceLocal);
  if (opts.sessionId) {
    attrs.set(Attr.localSessionID, opts.sessionId);
    addCap(c, Caps.sourceLocalSessionID);
  }
  if (opts.includePatterns && opts.includePatterns.length > 0) {
    attrs.set(Attr.includePatterns, goJsonStrings(opts.includePatterns));
    addCap(c, Caps.sourceLocalIncludePatterns);
  }
  if (opts.followPaths && opts.followPaths.length > 0) {
    attrs.set(Attr.followPaths, goJsonStrings(opts.followPaths));
    addCap(c, Caps.sourceLocalFollowPaths);
  }
  if (opts.excludePatterns && opts.excludePatterns.length > 0) {
    attrs.set(Attr.excludePatterns, goJsonStrings(opts.excludePatterns));
    addCap(c, Caps.sourceLocalExcludePatterns);
  }
  if (opts.sharedKeyHint) {
    attrs.set(Attr.sharedKeyHint, opts.sharedKeyHint);
    addCap(c, Caps.sourceLocalSharedKeyHint);
  }
  if (opts.differ) {
    attrs.set(Attr.localDiffer, opts.differ.type);
    if (opts.differ.required) addCap(c, Caps.sourceLocalDiffer);
  }
  return sourceState(Scheme.local + name, attrs, c);
}

/** Go `json.Marshal([]string)`: HTML-safe escaping. */
function goJsonStrings(list: readonly string[]): string {
  return JSON.stringify(list).replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${(ch.codePointAt(0) as number).toString(16).padStart(4, '0')}`);
}

/** Options of {@link git}. */
export interface GitOptions extends ConstraintsOptions {
  /** Keep the `.git` directory in the checkout. */
  readonly keepGitDir?: boolean;
  /** Secret name holding an auth token (default `GIT_AUTH_TOKEN`). */
  readonly authTokenSecret?: string;
  /** Secret name holding an auth header (default `GIT_AUTH_HEADER`). */
  readonly authHeaderSecret?: string;
  /** known_hosts content for SSH remotes. */
  readonly knownSshHosts?: string;
  /** SSH agent socket ID for SSH remotes (default `default`). */
  readonly mountSshSock?: string;
}

// BuildKit v0.11.6 sshutil.IsImplicitSSHTransport: `user@host:path` with these characters only
// (`first.last@host:repo` is no ssh remote there, so not here: the identifier must agree).
const SCP_LIKE = /^[A-Za-z0-9_-]+@[A-Za-z0-9.-]+:/;

/**
 * A git repository (Go `llb.Git`): `git://<host/path>[#ref]`, with `git.fullurl`
 * keeping the original URL. A remote without scheme is https; an scp-style
 * `user@host:path` remote is SSH. `ref` may be `ref:subdir`.
 */
export function git(remote: string, ref = '', opts: GitOptions = {}): State {
  const c = constraintsFrom(opts);
  let url = remote.split('#')[0] as string;
  let rest = remote;
  let protocol: 'http' | 'https' | 'git' | 'ssh' | 'unknown' = 'unknown';
  for (const [prefix, p] of [
    ['http://', 'http'],
    ['https://', 'https'],
    ['git://', 'git'],
    ['ssh://', 'ssh'],
  ] as const) {
    if (rest.startsWith(prefix)) {
      rest = rest.slice(prefix.length);
      protocol = p;
    }
  }
  if (protocol === 'unknown' && SCP_LIKE.test(rest)) protocol = 'ssh';
  if (protocol === 'ssh') {
    // As gitutil.ParseProtocol and llb.Git: drop up to the first `@`, then the first `:` becomes
    // `/` (user@host:path → host/path, consistent with http(s)).
    const at = rest.indexOf('@');
    if (at >= 0) rest = rest.slice(at + 1);
    const colon = rest.indexOf(':');
    if (colon >= 0) rest = `${rest.slice(0, colon)}/${rest.slice(colon + 1)}`;
  }
  if (protocol === 'unknown') url = `https://${url}`;
  let id = rest;
  if (ref !== '') id += `#${ref}`;

  const attrs = new Map<string, string>();
  if (opts.keepGitDir) {
    attrs.set(Attr.keepGitDir, 'true');
    addCap(c, Caps.sourceGitKeepDir);
  }
  if (url !== '') {
    attrs.set(Attr.fullRemoteURL, url);
    addCap(c, Caps.sourceGitFullURL);
  }
  const token = opts.authTokenSecret ?? 'GIT_AUTH_TOKEN';
  const header = opts.authHeaderSecret ?? 'GIT_AUTH_HEADER';
  const customAuth = opts.authTokenSecret !== undefined || opts.authHeaderSecret !== undefined;
  if (token) {
    attrs.set(Attr.authTokenSecret, token);
    if (customAuth) addCap(c, Caps.sourceGitHTTPAuth);
  }
  if (header) {
    attrs.set(Attr.authHeaderSecret, header);
    if (customAuth) addCap(c, Caps.sourceGitHTTPAuth);
  }
  if (protocol === 'ssh') {
    if (opts.knownSshHosts) attrs.set(Attr.knownSSHHosts, opts.knownSshHosts);
    addCap(c, Caps.sourceGitKnownSSHHosts);
    attrs.set(Attr.mountSSHSock, opts.mountSshSock || 'default');
    addCap(c, Caps.sourceGitMountSSHSock);
  }
  addCap(c, Caps.sourceGit);
  return sourceState(Scheme.git + id, attrs, c);
}

/** Options of {@link http}. */
export interface HttpOptions extends ConstraintsOptions {
  /** Expected digest of the content (`http.checksum`). */
  readonly checksum?: string;
  /** File name to save as (`http.filename`). */
  readonly filename?: string;
  /** Permission bits (`http.perm`, written in octal). */
  readonly chmod?: number;
  /** Owner UID of the downloaded file. */
  readonly uid?: number;
  /** Owner GID of the downloaded file. */
  readonly gid?: number;
}

/** A file downloaded over HTTP(S) (Go `llb.HTTP`); the identifier is the URL. */
export function http(url: string, opts: HttpOptions = {}): State {
  const c = constraintsFrom(opts);
  const attrs = new Map<string, string>();
  if (opts.checksum) {
    attrs.set(Attr.httpChecksum, opts.checksum);
    addCap(c, Caps.sourceHTTPChecksum);
  }
  if (opts.filename) attrs.set(Attr.httpFilename, opts.filename);
  if (opts.chmod) {
    attrs.set(Attr.httpPerm, `0${opts.chmod.toString(8)}`);
    addCap(c, Caps.sourceHTTPPerm);
  }
  if (opts.uid) {
    attrs.set(Attr.httpUID, String(opts.uid));
    addCap(c, Caps.sourceHTTPUIDGID);
  }
  if (opts.gid) {
    attrs.set(Attr.httpGID, String(opts.gid));
    addCap(c, Caps.sourceHTTPUIDGID);
  }
  addCap(c, Caps.sourceHTTP);
  return sourceState(url, attrs, c);
}

/** Options of {@link ociLayout}. */
export interface OCILayoutOptions extends ConstraintsOptions {
  /** Session that serves the layout store. */
  readonly sessionId?: string;
  /** Store ID within the session. */
  readonly storeId?: string;
  /** Only use the first N layers. */
  readonly layerLimit?: number;
}

/** An image from an OCI layout store on the client (Go `llb.OCILayout`): `oci-layout://<ref>`. */
export function ociLayout(ref: string, opts: OCILayoutOptions = {}): State {
  const c = constraintsFrom(opts);
  const attrs = new Map<string, string>();
  if (opts.sessionId) attrs.set(Attr.ociLayoutSessionID, opts.sessionId);
  if (opts.storeId) attrs.set(Attr.ociLayoutStoreID, opts.storeId);
  if (opts.layerLimit !== undefined) attrs.set(Attr.ociLayoutLayerLimit, String(opts.layerLimit));
  addCap(c, Caps.sourceOCILayout);
  return sourceState(Scheme.ociLayout + ref, attrs, c);
}
