/**
 * Base images of stages: resolve reachable ones through the meta resolver, pin them by digest
 * and build their source ops (the image-resolution part of BuildKit's toDispatchState).
 */
import { formatImageReference, formatPlatform, image, normalizePlatform, parseImageReference, scratch, tagNameOnly } from '@kiln/llb-core';
import type { ImageMetaResolver, ImageReference, Platform, ResolvedImageConfig, ResolveMode, State } from '@kiln/llb-core';
import { KilnError, suggest } from '../errors.js';
import { prefixCommand, type DispatchState } from './dispatch-state.js';
import { emptyImage, parseDockerImage, type DockerImage } from './image.js';
import type { NamedContext } from './options.js';
import type { PlatformOptions } from './platform-args.js';
import { DOCKERFILE_COMMAND } from './names.js';
import { SCRATCH } from './stage-graph.js';

/**
 * Well-known images a failed base-image lookup is compared with, besides the stage names
 * (BuildKit dockerfile2llb commonImageNames: alpine, busybox, centos, debian, golang, ubuntu,
 * fedora, each also with `:latest`).
 */
const COMMON_IMAGE_NAMES: readonly string[] = ['alpine', 'busybox', 'centos', 'debian', 'golang', 'ubuntu', 'fedora'].flatMap((n) => [n, `${n}:latest`]);

/** What resolution needs from the conversion. */
export interface ResolveContext {
  readonly file: string;
  readonly platforms: PlatformOptions;
  readonly metaResolver: ImageMetaResolver | undefined;
  readonly resolveMode: ResolveMode | undefined;
  readonly multiPlatform: boolean;
  readonly namedContexts: ReadonlyMap<string, NamedContext>;
  readonly stageNames: readonly string[];
  readonly signal: AbortSignal | undefined;
  /** Records the location of the FROM op (by its progress name). */
  readonly location: (name: string, d: DispatchState) => void;
  /** De-duplicates lookups within one conversion. */
  readonly cache: Map<string, Promise<ResolvedImageConfig>>;
}

function autoDetectPlatform(os: string, arch: string, target: Platform, supported: readonly Platform[]): Platform {
  if (target.os === os && target.architecture === arch) return target;
  return supported.find((p) => p.os === os && p.architecture === arch) ?? target;
}

function locationOf(d: DispatchState, file: string): { file: string; line: number; column: number } {
  return { file, ...d.stage.location.start };
}

function resolveOnce(ctx: ResolveContext, ref: string, platform: Platform): Promise<ResolvedImageConfig> {
  const resolver = ctx.metaResolver;
  if (resolver === undefined) {
    return Promise.reject(new KilnError('KLN0503', `no image resolver configured to look up ${ref}`, { hint: 'pass metaResolver (a registry or OCI-layout resolver)' }));
  }
  const key = `${ref}\0${platform.os}/${platform.architecture}/${platform.variant ?? ''}\0${ctx.resolveMode ?? ''}`;
  let p = ctx.cache.get(key);
  if (p === undefined) {
    p = resolver.resolveImageConfig(ref, {
      platform,
      ...(ctx.resolveMode !== undefined && ctx.resolveMode !== 'default' ? { resolveMode: ctx.resolveMode } : {}),
      ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
    });
    ctx.cache.set(key, p);
  }
  return p;
}

/**
 * Find the named context for `name` as BuildKit's dockerui NamedContext does: by the familiar
 * name (`docker.io/library/` and a trailing `:latest` dropped: `FROM docker.io/library/alpine`
 * uses context `alpine`), first suffixed with `::os/arch[/variant]` of `platform`, then alone.
 * The name as written is tried last (kiln has always accepted it).
 */
export function lookupNamedContext(contexts: ReadonlyMap<string, NamedContext>, name: string, platform: Platform): NamedContext | undefined {
  if (contexts.size === 0) return undefined;
  let familiar = name;
  try {
    const r = parseImageReference(name);
    const path = r.domain === 'docker.io' && r.path.startsWith('library/') ? r.path.slice('library/'.length) : r.path;
    familiar = `${r.domain === 'docker.io' ? '' : `${r.domain}/`}${path}${r.tag === undefined ? '' : `:${r.tag}`}${r.digest === undefined ? '' : `@${r.digest}`}`;
    if (familiar.endsWith(':latest')) familiar = familiar.slice(0, -':latest'.length);
  } catch {
    // not a reference (BuildKit fails here); look the name up as written
  }
  return contexts.get(`${familiar}::${formatPlatform(normalizePlatform(platform))}`) ?? contexts.get(familiar) ?? contexts.get(name);
}

/**
 * The state of a named context used with `platform`: an image context (`imageRef`) is an image
 * source for that platform, as dockerui's llb.Image(ref, llb.Platform(opt.Platform)); any other
 * context is its own state.
 */
export function namedContextState(nc: NamedContext, name: string, platform: Platform): State {
  if (nc.imageRef === undefined) return nc.state;
  return image(nc.imageRef, { platform, customName: `[context ${name}] ${nc.imageRef}` });
}

/**
 * The image config of a named context: its `imageConfig`, else the config of its `imageRef`
 * resolved for `platform` (BuildKit frontend/dockerui namedcontext.go resolves a
 * `docker-image://` context's config with ResolveImageConfig, so the stage inherits its Env,
 * WorkingDir, User, Cmd…), else undefined (the converter then uses an empty image).
 */
export async function namedContextImage(ctx: ResolveContext, nc: NamedContext, platform: Platform): Promise<DockerImage | undefined> {
  if (nc.imageConfig !== undefined) return parseDockerImage(nc.imageConfig);
  if (nc.imageRef === undefined) return undefined;
  let parsed: ImageReference;
  try {
    parsed = tagNameOnly(parseImageReference(nc.imageRef));
  } catch (e) {
    throw new KilnError('KLN0504', `invalid image reference ${JSON.stringify(nc.imageRef)} of a named context: ${(e as Error).message}`, {
      hint: 'pass docker-image://REF with a reference such as registry.example.com/repo:tag',
    });
  }
  let res: ResolvedImageConfig;
  try {
    res = await resolveOnce(ctx, formatImageReference(parsed), platform);
  } catch (e) {
    // A `name:tag@digest` reference (how `kiln build` passes an oci-layout context it imported
    // into its image store) may be known to the resolver by `name:tag` only: accept that record
    // when it has exactly the pinned digest.
    const { digest, ...tagged } = parsed;
    const retry = digest !== undefined && tagged.tag !== undefined ? await resolveOnce(ctx, formatImageReference(tagged), platform).catch(() => undefined) : undefined;
    if (retry !== undefined && retry.digest === digest) return parseDockerImage(retry.config);
    throw new KilnError('KLN0503', `${nc.imageRef}: ${e instanceof Error ? e.message : String(e)}`, {
      hint: resolverHint(e) ?? 'check the image name of the build context and that the registry is reachable',
      cause: e,
    });
  }
  return parseDockerImage(res.config);
}

/**
 * The hint the image resolver gave with its error, if any (kiln's registry client says what it
 * knows: a host that does not resolve, one that refuses connections, a certificate to trust);
 * more useful than the generic one when the registry was never reached.
 */
function resolverHint(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 4; c = c.cause, depth++) {
    const h = (c as { hint?: unknown }).hint;
    if (typeof h === 'string' && h !== '') return h;
  }
  return undefined;
}

/** Resolve the base of a stage whose base is not another stage. */
export async function resolveStageBase(d: DispatchState, reachable: boolean, ctx: ResolveContext): Promise<void> {
  const target = ctx.platforms.targetPlatform;
  if (d.baseName === SCRATCH) {
    d.state = scratch();
    d.image = emptyImage(target);
    return;
  }
  const origName = d.baseName;
  let ref: ImageReference;
  try {
    ref = parseImageReference(d.baseName);
  } catch (e) {
    throw new KilnError('KLN0504', `failed to parse stage name ${JSON.stringify(d.baseName)}: ${(e as Error).message}`, {
      location: locationOf(d, ctx.file),
      source: d.stage.node.original,
      hint: 'write a reference such as registry.example.com/repo:tag, or the name of an earlier stage',
    });
  }
  let platform = d.platform ?? target;
  d.baseName = formatImageReference(tagNameOnly(ref));
  const named = lookupNamedContext(ctx.namedContexts, d.baseName, platform) ?? ctx.namedContexts.get(origName);
  if (named !== undefined) {
    let img: DockerImage | undefined;
    try {
      img = reachable ? await namedContextImage(ctx, named, platform) : undefined;
    } catch (e) {
      if (e instanceof KilnError) e.withLocation(locationOf(d, ctx.file), d.stage.node.original);
      throw e;
    }
    d.image = img ?? (named.imageConfig === undefined ? emptyImage(target) : parseDockerImage(named.imageConfig));
    d.state = namedContextState(named, origName, platform).platform(platform);
    d.platform = platform;
    d.fromNamedContext = true;
    return;
  }
  let isScratch = false;
  d.image = emptyImage(target);
  if (reachable) {
    let res: ResolvedImageConfig;
    try {
      res = await resolveOnce(ctx, d.baseName, platform);
    } catch (e) {
      const s = suggest(origName, ctx.stageNames);
      const img = s === undefined ? suggest(origName, COMMON_IMAGE_NAMES) : undefined;
      throw new KilnError('KLN0503', `${origName}: ${e instanceof Error ? e.message : String(e)}`, {
        location: locationOf(d, ctx.file),
        source: d.stage.node.original,
        hint:
          s !== undefined
            ? `did you mean the stage ${JSON.stringify(s)}?`
            : img !== undefined
              ? `did you mean the image ${JSON.stringify(img)}?`
              : (resolverHint(e) ?? 'check the image name and that the registry is reachable'),
        cause: e,
      });
    }
    const img = parseDockerImage(res.config);
    if (d.platform === undefined && ctx.platforms.implicitTarget) {
      platform = autoDetectPlatform(img.os, img.architecture, platform, ctx.platforms.buildPlatforms);
    }
    // A resolver that rewrote the reference (a source policy's CONVERT) names the image the
    // digest belongs to: the stage is pinned under it, as BuildKit's dockerfile2llb takes the
    // resolver's mutated ref. Under the name as written, the solver would fetch that digest from
    // the original repository (an untagged FROM no longer matches the policy's `name:latest`).
    if (res.ref !== undefined && res.ref !== d.baseName) {
      try {
        ref = parseImageReference(res.ref);
      } catch (e) {
        throw new KilnError('KLN0503', `${origName}: the image resolver answered with the reference ${JSON.stringify(res.ref)}: ${(e as Error).message}`, {
          location: locationOf(d, ctx.file),
          source: d.stage.node.original,
          cause: e,
        });
      }
    }
    if (res.digest !== '') ref = { ...ref, digest: res.digest };
    d.baseName = formatImageReference(ref);
    if ((img.rootfs.diff_ids ?? []).length === 0) isScratch = !(img.history ?? []).some((h) => h.empty_layer !== true);
    d.image = img;
  }
  if (isScratch) {
    d.state = scratch();
  } else {
    const name = prefixCommand(d, `FROM ${d.baseName}`, ctx.multiPlatform, platform);
    d.state = image(d.baseName, {
      platform,
      customName: name,
      description: { [DOCKERFILE_COMMAND]: d.stage.sourceCode },
      ...(ctx.resolveMode === undefined ? {} : { resolveMode: ctx.resolveMode }),
    });
    ctx.location(name, d);
  }
  d.platform = platform;
}
