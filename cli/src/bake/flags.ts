import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { BuildFlags } from '../commands/build.js';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import type { ResolvedTarget } from './config.js';
import { BakeError } from './errors.js';
import { parseAnnotationFlags } from '../engine/annotation-flag.js';
import { parseBuildContext } from '../engine/session.js';
import { CALLS, parseCall, type CallSpec } from '../engine/call-spec.js';
import { EngineError } from '../engine/errors.js';
import type { ExportAnnotation } from '@kiln/runtime';
import { isRemoteContext } from '@kiln/dockerfile';
import { GIT_AUTH_ENV, GIT_SSH_ENV, isSshGitUrl, remotePath, type RemoteDefinition } from './remote.js';

/** Options of `kiln bake` that every target's build shares. */
export interface BakeCommonFlags {
  readonly progress: string;
  readonly root?: string;
}

/** One target as `kiln build` arguments, and the targets its `target:NAME` contexts wait for. */
export interface TargetBuild {
  readonly name: string;
  /** The context directory (absolute). */
  readonly context: string;
  readonly flags: BuildFlags;
  /** Named contexts that are other targets' results: context name → target name. */
  readonly links: ReadonlyMap<string, string>;
  /** Warnings about keys kiln does not use. */
  readonly warnings: readonly string[];
  /**
   * The local paths the build reads as its inputs: the context, the Dockerfile and named contexts
   * of your machine (buildx's collectLocalPaths), not those inside a remote definition.
   */
  readonly inputs: readonly string[];
  /** `flags.ssh` is the agent kiln gave a target of an ssh remote, not one the target named. */
  readonly impliedAgent: boolean;
}

const stripCwd = (p: string): string => (p.startsWith('cwd://') ? p.slice('cwd://'.length) : p);

/** Where a target's paths resolve: see {@link targetBuild}. */
export interface TargetPaths {
  readonly fileDir?: string | undefined;
  readonly fileRelative: boolean;
  readonly inlineDir: string;
  /** The remote definition the bake files came from (`kiln bake URL`). */
  readonly remote?: RemoteDefinition | undefined;
}

/**
 * Maps a resolved bake target onto `kiln build`'s flags (buildx's bake → build options):
 * the context resolves against the caller's directory (or, with BUILDX_BAKE_FILE_RELATIVE_PATHS=1,
 * the bake file's; `cwd://` always means the caller's), the Dockerfile against the context;
 * `dockerfile-inline` is written to `inlineDir`. Under a remote definition a relative context is
 * inside it (buildx's updateContext, see {@link remotePath}).
 */
export async function targetBuild(rt: ResolvedTarget, common: BakeCommonFlags, io: CliIo, opts: TargetPaths): Promise<TargetBuild> {
  const t = rt.target;
  const warnings: string[] = [];
  const rawContext = t.context ?? '.';
  // A downloaded bake file that is no archive leaves the contexts local (buildx drops its state).
  const def = opts.remote?.kind === 'file' ? undefined : opts.remote;
  const hasScheme = (v: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(v) || isRemoteContext(v);
  const inRemote = (v: string): boolean => def !== undefined && !hasScheme(v);
  // A git or http(s) URL is fetched by the frontend, as `kiln build URL` (buildx bake passes it on).
  let context = inRemote(rawContext) && def !== undefined ? await remotePath(def, rawContext, `target "${rt.name}": context`) : rawContext;
  const remote = isRemoteContext(context);
  if (!remote && /^[a-z][a-z0-9+.-]*:\/\//i.test(rawContext) && !rawContext.startsWith('cwd://')) {
    throw new BakeError('KLN0855', `target "${rt.name}": context "${rawContext}" is not supported`, { hint: 'use a local directory, a git URL (https://HOST/REPO.git#REF:DIR, git://…, git@HOST:…) or an http(s) URL of a tarball' });
  }
  const base = opts.fileRelative && opts.fileDir !== undefined && !rawContext.startsWith('cwd://') ? opts.fileDir : callerPath(io, '.');
  if (!remote && !inRemote(rawContext)) context = resolve(base, stripCwd(rawContext));
  const inputs: string[] = [];
  const localContext = !remote && !inRemote(rawContext);
  if (localContext) inputs.push(context);
  let file: string | undefined;
  if (t['dockerfile-inline'] !== undefined) {
    const dir = join(opts.inlineDir, rt.name);
    await mkdir(dir, { recursive: true });
    file = join(dir, 'Dockerfile');
    await writeFile(file, t['dockerfile-inline']);
  } else if (t.dockerfile !== undefined) {
    const df = t.dockerfile;
    // in a remote context a relative dockerfile is a path inside it (an absolute one is sent)
    file = df.startsWith('cwd://') ? callerPath(io, stripCwd(df)) : isAbsolute(df) || remote ? df : join(context, df);
    if (df.startsWith('cwd://') || localContext) inputs.push(file);
  } else if (localContext) inputs.push(join(context, 'Dockerfile'));
  const platforms = t.platforms ?? [];
  const links = new Map<string, string>();
  const buildContext: string[] = [];
  for (const [name, v] of Object.entries(t.contexts ?? {})) {
    if (v === null) continue;
    if (v.startsWith('target:')) links.set(name, v.slice('target:'.length));
    else if (v.startsWith('cwd://')) {
      buildContext.push(`${name}=${callerPath(io, stripCwd(v))}`);
      inputs.push(callerPath(io, stripCwd(v)));
    } else if (inRemote(v) && def !== undefined) buildContext.push(`${name}=${await remotePath(def, v, `target "${rt.name}": contexts.${name}`)}`);
    else if (!hasScheme(v)) {
      buildContext.push(`${name}=${resolve(base, v)}`);
      inputs.push(resolve(base, v));
    } else {
      buildContext.push(`${name}=${v}`);
      // an OCI layout is a directory of yours too (oci-layout://PATH[:TAG][@DIGEST])
      const layout = v.startsWith('oci-layout://') ? ociLayoutPath(`${name}=${v}`) : undefined;
      if (layout !== undefined) inputs.push(callerPath(io, layout));
    }
  }
  // buildx's call attribute is a --call value (NAME[,format=json]); the build parses it again
  const call = t.call;
  let callSpec: CallSpec | undefined;
  try {
    callSpec = parseCall(call, false, 'call');
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    throw new BakeError('KLN0855', `target "${rt.name}": ${e.message}`, { hint: `use ${CALLS.join(', ')}, with ,format=json for the frontend's JSON` });
  }
  const mapEntries = (m: Readonly<Record<string, string | null>> | undefined, sep: string): string[] =>
    Object.entries(m ?? {}).flatMap(([k, v]) => (v === null ? [] : [`${k}${sep}${v}`]));
  // A target built only for another's context exports nothing itself (buildx: cacheonly).
  let output = (t.output ?? []).filter((o) => !/(^|,)type=cacheonly(,|$)/.test(o));
  const annotations = annotationFields(rt.name, t.annotations ?? []);
  if (annotations.length > 0) {
    // buildx puts the annotations on every export; tags alone mean an image output, named by them.
    if (output.length === 0 && (t.tags ?? []).length > 0 && !rt.linked) output = ['type=image'];
    const isImage = (o: string): boolean => /(^|,)type=(image|oci|docker|registry)(,|$)/.test(o);
    if (!output.some(isImage)) warnings.push(`target "${rt.name}": annotations apply to image outputs (image, oci, docker, registry); this target has none`);
    output = output.map((o) => (isImage(o) ? [o, ...annotations].join(',') : o));
  }
  const impliedSsh = (t.ssh ?? []).length === 0 && ((def?.ssh ?? false) || (remote && isSshGitUrl(context)));
  const flags: BuildFlags = {
    ...(file === undefined ? {} : { file }),
    ...(t.target === undefined ? {} : { target: t.target }),
    buildArg: mapEntries(t.args, '='),
    // Several platforms: one multi-platform build, as `kiln build --platform A,B`.
    ...(platforms.length === 0 ? {} : { platform: platforms.join(',') }),
    secret: [...(t.secret ?? []), ...remoteSecrets(def, t.secret ?? [], io)],
    // buildx: a target of an ssh remote, or whose context is one, gets the default agent unless it
    // names agents (kiln's: the one BUILDX_BAKE_GIT_SSH gave the definition's fetch, if set).
    ssh: impliedSsh ? [impliedAgent(def, io)] : (t.ssh ?? []),
    output,
    tag: rt.linked ? [] : (t.tags ?? []),
    progress: common.progress,
    cache: t['no-cache'] !== true,
    cacheFilter: t['no-cache-filter'] ?? [],
    buildContext,
    allow: t.entitlements ?? [],
    ...(common.root === undefined ? {} : { root: common.root }),
    label: mapEntries(t.labels, '='),
    addHost: mapEntries(t['extra-hosts'], ':'),
    ...(t.pull === true ? { pull: true } : {}),
    ...(t.network === undefined ? {} : { network: t.network }),
    ulimit: t.ulimits ?? [],
    ...(t['shm-size'] === undefined ? {} : { shmSize: t['shm-size'] }),
    ...(callSpec === undefined || call === undefined ? {} : { call }),
    // As given: the build reads them as buildx's ParseCacheEntry (a value without `=` is registry
    // references, `a,b` two of them; "" none), which bake's string entries go through too.
    cacheTo: t['cache-to'] ?? [],
    cacheFrom: t['cache-from'] ?? [],
    attest: t.attest ?? [],
  };
  return { name: rt.name, context, flags, links, warnings, inputs, impliedAgent: impliedSsh };
}

/** The directory of an `oci-layout://` named context (a malformed one is the build flags' to report). */
function ociLayoutPath(value: string): string | undefined {
  try {
    const c = parseBuildContext(value);
    return c.kind === 'oci-layout' ? c.path : undefined;
  } catch {
    return undefined;
  }
}

/** The `default` agent kiln gives a target of an ssh remote: BUILDX_BAKE_GIT_SSH's, else SSH_AUTH_SOCK. */
function impliedAgent(def: RemoteDefinition | undefined, io: CliIo): string {
  const paths = def === undefined ? '' : (callerEnv(io)[GIT_SSH_ENV] ?? '');
  return paths === '' ? 'default' : `default=${paths}`;
}

/**
 * buildx's git auth secrets of a remote definition: `BUILDX_BAKE_GIT_AUTH_TOKEN` and
 * `_HEADER`, as the secrets GIT_AUTH_TOKEN and GIT_AUTH_HEADER a git source reads, for the targets
 * that do not set those ids themselves.
 */
function remoteSecrets(def: RemoteDefinition | undefined, own: readonly string[], io: CliIo): string[] {
  if (def?.kind !== 'git') return [];
  const env = callerEnv(io);
  return Object.entries(GIT_AUTH_ENV)
    .filter(([id, name]) => env[name] !== undefined && !own.some((s) => s.split(',').includes(`id=${id}`)))
    .map(([id, name]) => `id=${id},env=${name}`);
}

/** The directory of a bake file (for BUILDX_BAKE_FILE_RELATIVE_PATHS). */
export const fileDirOf = (path: string | undefined): string | undefined => (path === undefined ? undefined : dirname(path));

/**
 * buildx's annotation values (`KEY=VALUE`, `TYPE[,TYPE…][PLATFORM]:KEY=VALUE`) as output
 * attributes (`annotation-TYPE[PLATFORM].KEY=VALUE`, parsed as `kiln build --annotation`), quoted for the CSV.
 */
export function annotationFields(target: string, values: readonly string[]): string[] {
  let parsed: ExportAnnotation[];
  try {
    parsed = parseAnnotationFlags(values);
  } catch (e) {
    const why = e instanceof Error ? e.message.replace(/^invalid --annotation /, '') : String(e);
    throw new BakeError('KLN0853', `target "${target}": invalid annotation ${why}`, { hint: 'use KEY=VALUE or TYPE:KEY=VALUE (TYPE manifest, index, manifest-descriptor, index-descriptor)' });
  }
  return parsed.map((a) => {
    if (a.value.includes('"')) throw new BakeError('KLN0853', `target "${target}": annotation "${a.key}" has a double quote in its value`, { hint: 'kiln passes annotations as output attributes, which cannot hold a double quote' });
    const k = `annotation-${a.type}${a.platform === undefined ? '' : `[${a.platform}]`}.${a.key}`;
    return /[,"]/.test(a.value) ? `"${k}=${a.value}"` : `${k}=${a.value}`;
  });
}
