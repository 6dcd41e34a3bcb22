import {
  detectMediaType,
  digestOf,
  isDigest,
  isIndexMediaType,
  isManifestMediaType,
  MediaTypes,
  normalizePlatform,
  parseDescriptor,
  parseManifest,
  type Descriptor,
  type Digest,
  type Platform,
} from '@kiln/runtime';
import type { Annotation } from './annotations.js';
import { ImagetoolsError, parseJsonContent } from './errors.js';
import { goIndex, goJson, withExtras } from './go-json.js';
import { isLayoutName, locationName, parseLocation, repositoryKey, withDigest, type Location } from './location.js';
import { platformString } from './platform-format.js';

/** A source of `imagetools create` as given: a reference or layout, a bare digest, or a descriptor (JSON). */
export type SourceSpec =
  | { readonly kind: 'ref'; readonly loc: Location; readonly given: string }
  | { readonly kind: 'digest'; readonly digest: Digest; readonly given: string }
  | { readonly kind: 'descriptor'; readonly desc: PartialDescriptor; readonly given: string };

/** A descriptor from the command line: only the digest is required. */
export interface PartialDescriptor {
  readonly digest: Digest;
  readonly mediaType?: string | undefined;
  readonly size?: number | undefined;
  readonly platform?: Platform | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

/** A resolved source: its repository or layout and the full descriptor of its manifest or index. */
export interface Source {
  readonly loc: Location;
  desc: Descriptor;
}

const OTHER_TRANSPORT = /^(?:[a-z][a-z0-9+.-]*:\/\/|docker-daemon:|oci:|oci-archive:|docker-archive:|dir:|containers-storage:|\.{0,2}\/)/;

/** Rejects `docker-daemon:…`, `oci:…`, bare paths: imagetools talks to registries and `oci-layout://` directories. */
export function assertSupportedName(s: string, role: 'target' | 'source' | 'name'): void {
  if (!isLayoutName(s) && OTHER_TRANSPORT.test(s)) {
    // skopeo's docker://REF is a registry reference with a transport prefix kiln does not take
    const bare = /^docker:\/\/(.+)$/.exec(s)?.[1];
    const give = role === 'target' ? 'give -t [registry/]name[:tag] or -t oci-layout://DIR[:TAG]; for a tarball use kiln build --output or kiln save' : 'give [registry/]name[:tag|@digest] or oci-layout://DIR[:TAG|@DIGEST]';
    throw new ImagetoolsError('KLN0864', `${role} "${s}" is neither a registry reference nor an OCI layout: kiln imagetools reads and writes registries and oci-layout:// directories`, {
      hint: bare === undefined ? give : `drop docker:// (skopeo's transport): ${role === 'target' ? `-t ${bare}` : bare}`,
    });
  }
}

/** Parses one source argument (buildx's order: digest, then reference or layout, then JSON descriptor); a relative layout path is resolved against `cwd`. */
export function parseSource(s: string, cwd: string): SourceSpec {
  const t = s.trim();
  if (isDigest(t)) return { kind: 'digest', digest: t, given: s };
  if (t.startsWith('sha256')) throw new ImagetoolsError('KLN0860', `invalid source "${s}": bad digest`, { hint: 'a digest is sha256: and 64 lowercase hex digits' });
  if (!t.startsWith('{')) {
    assertSupportedName(t, 'source');
    try {
      return { kind: 'ref', loc: parseLocation(t, cwd), given: s };
    } catch (e) {
      throw new ImagetoolsError('KLN0860', `invalid source "${s}": valid sources are digests, references, oci-layout:// locations and descriptors`, { hint: (e as { hint?: string }).hint, cause: e });
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch (e) {
    throw new ImagetoolsError('KLN0860', `invalid source descriptor: not JSON (${(e as Error).message})`, { cause: e });
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (typeof o['digest'] !== 'string' || !isDigest(o['digest'])) throw new ImagetoolsError('KLN0860', 'invalid source descriptor: no valid "digest"');
  // parseDescriptor validates the optional fields (it needs mediaType and size: fill them in for it).
  let full: Descriptor;
  try {
    full = parseDescriptor({ mediaType: '', size: 0, ...o });
  } catch (e) {
    throw new ImagetoolsError('KLN0860', `invalid source descriptor: ${(e as Error).message}`, { cause: e });
  }
  const desc: PartialDescriptor = {
    digest: full.digest,
    ...(typeof o['mediaType'] === 'string' && o['mediaType'] !== '' ? { mediaType: o['mediaType'] } : {}),
    ...(typeof o['size'] === 'number' && o['size'] !== 0 ? { size: o['size'] } : {}),
    ...(full.platform !== undefined ? { platform: full.platform } : {}),
    ...(full.annotations !== undefined && Object.keys(full.annotations).length > 0 ? { annotations: full.annotations } : {}),
  };
  return { kind: 'descriptor', desc, given: s };
}

/**
 * The repository (or layout) of each source: its own for references; for digests and descriptors
 * the one repository or layout named by the targets and reference sources (buildx: "cannot infer
 * repository" when there are several or none).
 */
export function sourceLocations(specs: ReadonlyArray<SourceSpec>, targets: ReadonlyArray<Location>): Location[] {
  const repos = new Map<string, Location>();
  for (const t of targets) repos.set(repositoryKey(t), t);
  for (const s of specs) if (s.kind === 'ref') repos.set(repositoryKey(s.loc), s.loc);
  const only = repos.size === 1 ? [...repos.values()][0] : undefined;
  return specs.map((s) => {
    if (s.kind === 'ref') return s.loc;
    if (only === undefined) {
      throw new ImagetoolsError('KLN0860', repos.size === 0 ? 'no repository given: set -t or a source reference' : `several repositories given, cannot infer the repository of "${s.given}"`, {
        hint: 'give the source as REPO@sha256:… or oci-layout://DIR@sha256:…',
      });
    }
    return withDigest(only, s.kind === 'digest' ? s.digest : s.desc.digest);
  });
}

/** A descriptor given on the command line, over the one the registry resolved (buildx's mergeDesc). */
export function mergeDescriptor(resolved: Descriptor, given: PartialDescriptor): Descriptor {
  if (given.size !== undefined && given.size !== resolved.size) {
    throw new ImagetoolsError('KLN0860', `size mismatch for ${resolved.digest}: the descriptor says ${given.size}, the registry ${resolved.size}`);
  }
  return {
    ...resolved,
    ...(given.mediaType !== undefined ? { mediaType: given.mediaType } : {}),
    // Replaced, not merged, so a descriptor can drop annotations.
    ...(given.annotations !== undefined ? { annotations: given.annotations } : {}),
    ...(given.platform !== undefined ? { platform: given.platform } : {}),
  };
}

/** Fetches a manifest or blob of a source's repository or layout. */
export type Fetch = (loc: Location, desc: Descriptor) => Promise<Buffer>;

/** The new index (or a source's own bytes when it is copied as is). */
export interface Combined {
  readonly bytes: Buffer;
  readonly desc: Descriptor;
  /** Annotations dropped because the result is a Docker manifest list (buildx drops them silently). */
  readonly dropped: ReadonlyArray<Annotation>;
  /**
   * `manifest-descriptor[PLATFORM]` annotations no manifest of the index has the platform of
   * (buildx applies them to nothing, silently), with the platforms there are.
   */
  readonly unmatched?: { readonly annotations: ReadonlyArray<Annotation>; readonly platforms: readonly string[] };
}

const REFERENCE_DIGEST = ['com.docker.reference.digest', 'vnd.docker.reference.digest'];

/**
 * Combines the sources as buildx's `Combine` does: manifests get a platform (from their config
 * when the descriptor has none); one index source without annotations is copied as is, and so is
 * one manifest without `preferIndex`; otherwise every index is flattened into its children, and
 * descriptors are deduplicated by digest (later platform and annotations win). The result is a
 * Docker manifest list when every child is a Docker type, else an OCI index, written as
 * `json.MarshalIndent(…, "", "  ")`. Unlike buildx, two different manifests for one platform are
 * refused (KLN0863): a puller would take either.
 */
export async function combine(sources: Source[], annotations: ReadonlyArray<Annotation>, preferIndex: boolean, fetch: Fetch): Promise<Combined> {
  for (const a of annotations) {
    if (a.type === 'manifest' || a.type === '') throw new ImagetoolsError('KLN0860', `${a.type === '' ? 'untyped' : '"manifest"'} annotations are not supported by imagetools create (${a.key})`, { hint: 'use index:KEY=VALUE or manifest-descriptor:KEY=VALUE' });
    if (a.type === 'index-descriptor') throw new ImagetoolsError('KLN0860', `"index-descriptor" annotations are invalid while creating an image (${a.key})`, { hint: 'use index:KEY=VALUE or manifest-descriptor:KEY=VALUE' });
  }
  const bytes = await Promise.all(
    sources.map(async (s) => {
      const dt = await fetch(s.loc, s.desc);
      const mt = s.desc.mediaType !== '' ? s.desc.mediaType : detectMediaType(dt);
      if (mt === 'application/vnd.docker.distribution.manifest.v1+json' || mt === 'application/vnd.docker.distribution.manifest.v1+prettyjws') {
        throw new ImagetoolsError('KLN0865', `${locationName(s.loc)}: schema 1 manifests are not allowed in manifest lists`, { hint: 'rebuild or re-push the image with a schema 2 / OCI manifest' });
      }
      if (!isIndexMediaType(mt) && !isManifestMediaType(mt)) throw new ImagetoolsError('KLN0865', `${locationName(s.loc)}: unsupported media type ${mt}`);
      s.desc = { ...s.desc, mediaType: mt };
      if (isManifestMediaType(mt) && (s.desc.platform === undefined || s.desc.platform.os === '' || s.desc.platform.architecture === '')) {
        s.desc = { ...s.desc, platform: await platformFromConfig(s, dt, fetch) };
      }
      return dt;
    }),
  );
  const [first] = sources;
  if (sources.length === 1 && first !== undefined && annotations.length === 0 && (isIndexMediaType(first.desc.mediaType) || !preferIndex)) {
    return { bytes: bytes[0] as Buffer, desc: first.desc, dropped: [] };
  }
  const descs: Descriptor[] = [];
  const byDigest = new Map<string, number>();
  const add = (d: Descriptor): void => {
    const i = byDigest.get(d.digest);
    if (i === undefined) {
      byDigest.set(d.digest, descs.length);
      descs.push(d);
      return;
    }
    const old = descs[i] as Descriptor;
    descs[i] = {
      ...old,
      mediaType: old.mediaType !== '' ? old.mediaType : d.mediaType,
      ...(d.platform !== undefined ? { platform: d.platform } : {}),
      annotations: { ...old.annotations, ...d.annotations },
    };
  };
  sources.forEach((s, i) => {
    if (isIndexMediaType(s.desc.mediaType)) {
      const p = parseManifest(bytes[i] as Buffer, s.desc.mediaType);
      if (p.kind === 'index') for (const d of withExtras(p.index.manifests, bytes[i] as Buffer)) add(d);
    } else {
      add(s.desc);
    }
  });
  checkPlatforms(descs);
  const allDocker = descs.every((d) => d.mediaType.startsWith('application/vnd.docker.'));
  const mt = allDocker ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const indexAnn: Record<string, string> = {};
  const dropped: Annotation[] = [];
  const unmatched: Annotation[] = [];
  for (const a of annotations) {
    if (allDocker) {
      dropped.push(a);
      continue;
    }
    if (a.type === 'index') indexAnn[a.key] = a.value;
    else if (a.type === 'manifest-descriptor') {
      let hit = false;
      descs.forEach((d, i) => {
        if (a.platform === undefined || (d.platform !== undefined && platformString(d.platform) === a.platform)) {
          descs[i] = { ...d, annotations: { ...d.annotations, [a.key]: a.value } };
          hit = true;
        }
      });
      if (!hit) unmatched.push(a);
    }
  }
  const out = Buffer.from(goJson(goIndex(mt, descs, indexAnn), '  '), 'utf8');
  const platforms = [...new Set(descs.flatMap((d) => (d.platform === undefined || REFERENCE_DIGEST.some((k) => d.annotations?.[k] !== undefined) ? [] : [platformString(d.platform)])))];
  return { bytes: out, desc: { mediaType: mt, digest: digestOf(out), size: out.length }, dropped, ...(unmatched.length === 0 ? {} : { unmatched: { annotations: unmatched, platforms } }) };
}

function checkPlatforms(descs: ReadonlyArray<Descriptor>): void {
  const seen = new Map<string, Descriptor>();
  for (const d of descs) {
    // Attestation manifests (unknown/unknown) point at their image; they never collide.
    if (d.platform === undefined || REFERENCE_DIGEST.some((k) => d.annotations?.[k] !== undefined)) continue;
    const key = `${platformString(normalizePlatform(d.platform))}${d.platform['os.version'] !== undefined ? ` ${d.platform['os.version']}` : ''}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      throw new ImagetoolsError('KLN0863', `two different manifests for platform ${key}: ${prev.digest} and ${d.digest}`, {
        hint: 'give one image per platform (to replace one platform of an index, list the others by digest instead of using --append)',
      });
    }
    seen.set(key, d);
  }
}

async function platformFromConfig(s: Source, manifest: Buffer, fetch: Fetch): Promise<Platform> {
  const p = parseManifest(manifest, s.desc.mediaType);
  if (p.kind !== 'manifest') throw new ImagetoolsError('KLN0865', `${locationName(s.loc)}: expected an image manifest`);
  const v = parseJsonContent(await fetch(s.loc, p.manifest.config), `config ${p.manifest.config.digest} of ${locationName(s.loc)}`);
  const cfg = (typeof v === 'object' && v !== null ? v : {}) as { os?: unknown; architecture?: unknown; variant?: unknown };
  const n = normalizePlatform({
    os: typeof cfg.os === 'string' ? cfg.os : '',
    architecture: typeof cfg.architecture === 'string' ? cfg.architecture : '',
    ...(typeof cfg.variant === 'string' && cfg.variant !== '' ? { variant: cfg.variant } : {}),
  });
  const given = s.desc.platform;
  // buildx's loadPlatform: fills only what the descriptor lacks.
  return {
    ...given,
    os: given !== undefined && given.os !== '' ? given.os : n.os,
    architecture: given !== undefined && given.architecture !== '' ? given.architecture : n.architecture,
    ...(given !== undefined && given.architecture !== '' ? {} : n.variant !== undefined && (given?.variant ?? '') === '' ? { variant: n.variant } : {}),
  };
}

/** A manifest's media type from its body when the descriptor has none (buildx's detectMediaType; MANIFEST_INVALID, KLN0865 to the user, when it is not JSON). */
export { detectMediaType } from '@kiln/runtime';
