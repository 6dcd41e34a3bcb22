import { decodeOp, digestOf, MountType, NetMode, opJson, type Definition, type Digest, type Locations, type Op, type PbPlatform } from '@kiln/llb-core';
import { digestSet, formatPlatform, imagePurl, normalizePlatform, parseReference, type Descriptor, type Platform } from '@kiln/runtime';
import { goJson, goTime, RawJson, sortedMap, type GoJsonValue } from './provenance-json.js';
import type { ProvenanceOptions } from './provenance-spec.js';
import { isProxyArg, redactCredentials, redactProxy } from './url-credentials.js';

export { redactCredentials } from './url-credentials.js';

/** The SLSA v0.2 provenance predicate type and BuildKit's build type (slsa-definitions.md). */
export const SLSA_PROVENANCE_V02 = 'https://slsa.dev/provenance/v0.2';
export const BUILDKIT_BUILD_TYPE = 'https://mobyproject.org/buildkit@v1';
const BUILDKIT_METADATA = 'https://mobyproject.org/buildkit@v1#metadata';
const BUILDKIT_HERMETIC = 'https://mobyproject.org/buildkit@v1#hermetic';

/** An image the frontend resolved (BuildKit captures ResolveImageConfig calls). */
export interface ResolvedImage {
  readonly ref: string;
  readonly platform?: Platform | undefined;
  readonly digest: string;
}

/**
 * What one build captured for its provenance (BuildKit's provenance.Capture, from every
 * Definition the frontend solved and every image it resolved).
 */
export interface ProvenanceCapture {
  /** The frontend that ran (`dockerfile.v0`, `kiln/ts`…). */
  readonly frontend: string;
  /** The frontend options as sent (`filename`, `target`, `build-arg:*`, `label:*`…). */
  readonly frontendOpts: ReadonlyMap<string, string>;
  /** Every Definition solved during the build (sources, secrets and SSH ids, network use). */
  readonly definitions: readonly Definition[];
  readonly resolvedImages: readonly ResolvedImage[];
}

/** Per-platform inputs of {@link provenancePredicate}. */
export interface PredicateInputs {
  /** The Definition of the exported result (mode=max `buildConfig`). */
  readonly result?: Definition | undefined;
  /**
   * mode=max `layers`: the layer chains that exist as blobs for results of the build's ops (the
   * exported result's at least), by op digest and output, as BuildKit's RemoteOnly cache walk
   * finds them. Ops not in the result's Definition are left out.
   */
  readonly layers?: readonly StepLayers[] | undefined;
  readonly invocationId: string;
  readonly startedOn: Date;
  readonly finishedOn: Date;
  /** The build machine's platform (`invocation.environment.platform`). */
  readonly hostPlatform: Platform;
}

/** The layer chain of one op output's result. */
export interface StepLayers {
  readonly op: Digest;
  readonly output: number;
  readonly layers: readonly Descriptor[];
}

interface ImageSource {
  readonly ref: string;
  readonly platform?: Platform | undefined;
  readonly digest: string;
}

/** Sources found in the solved Definitions (BuildKit's Capture.Sources and request parts). */
interface Sources {
  readonly images: ImageSource[];
  readonly git: { url: string; commit: string }[];
  readonly http: { url: string; digest: string }[];
  readonly locals: Set<string>;
  readonly secrets: Map<string, boolean>;
  readonly ssh: Map<string, boolean>;
  networkAccess: boolean;
  incompleteMaterials: boolean;
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function pbPlatform(p: PbPlatform | undefined): Platform | undefined {
  if (p?.os === undefined || p.architecture === undefined) return undefined;
  return { os: p.os, architecture: p.architecture, ...(p.variant === undefined || p.variant === '' ? {} : { variant: p.variant }) };
}

function samePlatform(a: Platform | undefined, b: Platform | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '') && (a['os.version'] ?? '') === (b['os.version'] ?? '');
}

/** Capture.AddImage: one entry per ref and platform. */
function addImage(s: Sources, img: ImageSource): void {
  if (!s.images.some((v) => v.ref === img.ref && samePlatform(v.platform, img.platform))) s.images.push(img);
}

/** The ref's `name:tag` (`latest` without a tag), as Capture.OptimizeImageSources compares them. */
function nameTag(ref: string): string {
  const r = parseReference(ref);
  return `${r.domain}/${r.path}:${r.tag ?? 'latest'}`;
}

/**
 * What the ops of the solved Definitions contribute (BuildKit's captureProvenance walk of the
 * results, merged over every solve): image, git and http sources pinned, local source names,
 * secret and SSH ids with their optional flag (never values), and whether a RUN had network.
 */
function collectSources(capture: ProvenanceCapture): Sources {
  const s: Sources = { images: [], git: [], http: [], locals: new Set(), secrets: new Map(), ssh: new Map(), networkAccess: false, incompleteMaterials: false };
  const seen = new Set<Digest>();
  for (const def of capture.definitions) {
    for (const bytes of def.def) {
      const d = digestOf(bytes);
      if (seen.has(d)) continue;
      seen.add(d);
      addOp(s, decodeOp(bytes), capture.resolvedImages);
    }
  }
  // getProvenance: the resolved images join the captured ones, then tag refs win over the
  // digest refs of the same name:tag (OptimizeImageSources), then everything is sorted.
  for (const img of capture.resolvedImages) addImage(s, img);
  const tagged = new Set(s.images.filter((i) => parseReference(i.ref).digest === undefined).map((i) => nameTag(i.ref)));
  const kept = s.images.filter((i) => parseReference(i.ref).digest === undefined || !tagged.has(nameTag(i.ref)));
  s.images.splice(0, s.images.length, ...kept.sort((a, b) => byteOrder(a.ref, b.ref)));
  s.git.sort((a, b) => byteOrder(a.url, b.url));
  s.http.sort((a, b) => byteOrder(a.url, b.url));
  return s;
}

function addOp(s: Sources, op: Op, resolved: readonly ResolvedImage[]): void {
  switch (op.kind) {
    case 'source': {
      const id = op.source.identifier ?? '';
      const scheme = id.slice(0, id.indexOf('://'));
      const rest = id.slice(scheme.length + 3);
      if (scheme === 'docker-image' || scheme === 'oci-layout') {
        const platform = pbPlatform(op.platform);
        // The pin is the digest the source resolved to: the ref's own, or what the frontend resolved.
        const pin = parseReference(rest).digest ?? resolved.find((r) => r.ref === rest && samePlatform(r.platform, platform))?.digest;
        if (pin === undefined) s.incompleteMaterials = true;
        else addImage(s, { ref: rest, platform, digest: pin });
      } else if (scheme === 'local') {
        s.locals.add(rest);
      } else if (scheme === 'git') {
        const hash = rest.indexOf('#');
        const remote = op.source.attrs?.get('git.fullurl') ?? `https://${hash < 0 ? rest : rest.slice(0, hash)}`;
        const ref = hash < 0 ? '' : rest.slice(hash + 1).split(':')[0] ?? '';
        // Only a commit named in the identifier is known without the source's pin.
        if (/^[0-9a-f]{40}$/.test(ref)) {
          const url = redactCredentials(`${remote}#${ref}`);
          if (!s.git.some((g) => g.url === url)) s.git.push({ url, commit: ref });
        } else s.incompleteMaterials = true;
      } else if (scheme === 'http' || scheme === 'https') {
        const sum = op.source.attrs?.get('http.checksum');
        if (sum !== undefined && sum !== '') {
          const url = redactCredentials(id);
          if (!s.http.some((h) => h.url === url)) s.http.push({ url, digest: sum });
        } else s.incompleteMaterials = true;
      }
      return;
    }
    case 'exec': {
      for (const m of op.exec.mounts ?? []) {
        if (m.mountType === MountType.SECRET) addRequest(s.secrets, m.secretOpt?.id ?? '', m.secretOpt?.optional === true);
        if (m.mountType === MountType.SSH) addRequest(s.ssh, m.sshOpt?.id === undefined || m.sshOpt.id === '' ? 'default' : m.sshOpt.id, m.sshOpt?.optional === true);
      }
      for (const e of op.exec.secretenv ?? []) addRequest(s.secrets, e.id ?? '', e.optional === true);
      if ((op.exec.network ?? NetMode.UNSET) !== NetMode.NONE) s.networkAccess = true;
      return;
    }
    case 'build':
      s.incompleteMaterials = true; // BuildKit: not supported yet
      return;
    case 'file':
    case 'merge':
    case 'diff':
    case 'none':
      return;
  }
}

/**
 * BuildKit's filterImagePlatforms: of a multi-platform result, an image resolved for every one
 * of its platforms counts only in the provenance of the platform (OS and architecture) it was
 * resolved for; other images count everywhere.
 */
export function filterImagePlatforms(images: readonly ResolvedImage[], platforms: readonly Platform[], current: Platform): ResolvedImage[] {
  if (platforms.length <= 1) return [...images];
  const perPlatform = new Set<string>();
  for (const img of images) {
    if (perPlatform.has(img.ref)) continue;
    const everywhere = platforms.every((p) => images.some((i) => i.ref === img.ref && i.platform !== undefined && platformMatches(i.platform, p)));
    if (everywhere) perPlatform.add(img.ref);
  }
  return images.filter((i) => !perPlatform.has(i.ref) || (i.platform !== undefined && i.platform.os === current.os && i.platform.architecture === current.architecture));
}

/** containerd's platform matcher, as far as resolved images need it: same OS, architecture and variant (normalized). */
function platformMatches(have: Platform, want: Platform): boolean {
  const a = normalizePlatform(have);
  const b = normalizePlatform(want);
  return a.os === b.os && a.architecture === b.architecture && (b.variant === undefined || (a.variant ?? '') === b.variant);
}

/** Capture.AddSecret / AddSSH: one entry per id; required wins over optional. */
function addRequest(m: Map<string, boolean>, id: string, optional: boolean): void {
  m.set(id, (m.get(id) ?? true) && optional);
}

/** Frontend options that describe the host, not the build (provenance.FilterArgs). */
const HOST_SPECIFIC_ARGS = new Set(['cgroup-parent', 'image-resolve-mode', 'platform', 'cache-imports']);

/**
 * The SLSA v0.2 provenance predicate of one platform's result as BuildKit v0.11 writes it
 * (solver/llbsolver/provenance/predicate.go, provenance.go): Go field order, map keys sorted,
 * compact JSON bytes. mode=min drops `build-arg:`/`label:` args (parameters then incomplete),
 * secrets and SSH; mode=max adds `buildConfig` (the result's LLB as steps) and the source map
 * and layers under the BuildKit metadata. Secret values never appear: only their ids.
 */
export function provenancePredicate(capture: ProvenanceCapture, opts: ProvenanceOptions, inputs: PredicateInputs): Uint8Array {
  const src = collectSources(capture);
  const args = new Map<string, string>();
  for (const [k, v] of capture.frontendOpts) if (!HOST_SPECIFIC_ARGS.has(k) && !k.startsWith('attest:')) args.set(k, v);

  const materials: GoJsonValue[] = [
    ...src.images.map((i) => ({ uri: imagePurl(i.ref, i.platform), digest: digestSet(i.digest) })),
    ...src.git.map((g) => ({ uri: g.url, digest: { sha1: g.commit } })),
    ...src.http.map((h) => ({ uri: h.url, digest: digestSet(h.digest) })),
  ];

  const configSource: Record<string, GoJsonValue> = {};
  const contextKey = args.get('contextkey') || 'context';
  const context = args.get(contextKey);
  if (context !== undefined && context !== '') {
    const uri = redactCredentials(context);
    configSource['uri'] = uri;
    const g = src.git.find((x) => x.url === uri);
    const h = src.http.find((x) => x.url === uri);
    if (g !== undefined) configSource['digest'] = { sha1: g.commit };
    else if (h !== undefined) configSource['digest'] = digestSet(h.digest);
    args.delete(contextKey);
  }
  const filename = args.get('filename');
  if (filename !== undefined && filename !== '') {
    configSource['entryPoint'] = filename;
    args.delete('filename');
  }
  // Named contexts are sources as the main context is: their URL credentials go (BuildKit keeps them
  // here). So do a proxy's (`--build-arg HTTPS_PROXY=http://user:pass@…`), which BuildKit keeps too.
  for (const [k, v] of args) if (k.startsWith('context:') || isProxyArg(k)) args.set(k, isProxyArg(k) ? redactProxy(v) : redactCredentials(v));
  const vcs = new Map<string, string>();
  for (const [k, v] of [...args]) {
    if (!k.startsWith('vcs:')) continue;
    args.delete(k);
    if (v !== '') vcs.set(k.slice(4), k === 'vcs:source' ? redactCredentials(v) : v);
  }

  let parametersComplete = capture.frontend !== '';
  if (opts.mode === 'min') {
    for (const k of [...args.keys()]) {
      if (k.startsWith('build-arg:') || k.startsWith('label:')) {
        args.delete(k);
        parametersComplete = false;
      }
    }
  }
  const max = opts.mode === 'max';
  const secrets = max ? [...src.secrets].sort(([a], [b]) => byteOrder(a, b)).map(([id, optional]) => ({ id, ...(optional ? { optional } : {}) })) : [];
  const ssh = max ? [...src.ssh].sort(([a], [b]) => byteOrder(a, b)).map(([id, optional]) => ({ id, ...(optional ? { optional } : {}) })) : [];
  const locals = [...src.locals].sort(byteOrder).map((name) => ({ name }));
  const incomplete = src.incompleteMaterials || src.locals.size > 0;

  const parameters: Record<string, GoJsonValue | undefined> = {
    frontend: capture.frontend === '' ? undefined : capture.frontend,
    args: args.size === 0 ? undefined : sortedMap(args),
    secrets: secrets.length === 0 ? undefined : secrets,
    ssh: ssh.length === 0 ? undefined : ssh,
    locals: locals.length === 0 ? undefined : locals,
  };

  const bkMetadata: Record<string, GoJsonValue | undefined> = { vcs: vcs.size === 0 ? undefined : sortedMap(vcs) };
  let buildConfig: GoJsonValue | undefined;
  if (max && inputs.result !== undefined) {
    const steps = buildSteps(inputs.result);
    if (steps !== undefined) {
      buildConfig = { llbDefinition: steps.steps, digestMapping: digestMapping(steps.indexes) };
      const source = sourceInfo(inputs.result, steps.indexes);
      if (source !== undefined) bkMetadata['source'] = source;
      const layers: [string, GoJsonValue][] = [];
      for (const l of inputs.layers ?? []) {
        const i = steps.indexes.get(l.op);
        if (i === undefined || l.layers.length === 0) continue;
        const key = `step${i}:${l.output}`;
        if (layers.some(([k]) => k === key)) continue;
        layers.push([key, [l.layers.map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size, ...publicAnnotations(d.annotations) }))]]);
      }
      if (layers.length > 0) bkMetadata['layers'] = sortedMap(layers);
    }
  }

  const predicate: Record<string, GoJsonValue | undefined> = {
    builder: { id: opts.builderId ?? '' },
    buildType: BUILDKIT_BUILD_TYPE,
    materials: materials.length === 0 ? undefined : materials,
    invocation: {
      configSource,
      parameters,
      environment: { platform: formatPlatform(normalizePlatform(inputs.hostPlatform)) },
    },
    buildConfig,
    metadata: {
      buildInvocationID: inputs.invocationId,
      buildStartedOn: goTime(inputs.startedOn),
      buildFinishedOn: goTime(inputs.finishedOn),
      reproducible: opts.reproducible === true,
      completeness: {
        parameters: parametersComplete,
        environment: true,
        materials: !incomplete,
        [BUILDKIT_HERMETIC]: !incomplete && !src.networkAccess ? true : undefined,
      },
      [BUILDKIT_METADATA]: bkMetadata,
    },
  };
  return Buffer.from(goJson(predicate), 'utf8');
}

/** RemoveInternalLayerAnnotations: what a layer descriptor keeps in the provenance. */
function publicAnnotations(a: Readonly<Record<string, string>> | undefined): { annotations?: Record<string, string> } {
  const kept = Object.entries(a ?? {}).filter(([k]) => k !== 'containerd.io/uncompressed' && k !== 'buildkit/createdat' && !k.startsWith('containerd.io/distribution.source.'));
  return kept.length === 0 ? {} : { annotations: sortedMap(kept) };
}

/**
 * BuildKit's toBuildSteps: the ops reachable from the terminal, depth first (inputs before the
 * op), numbered `step0…`; each step is the op's Go JSON without its inputs (and without the
 * session-bound `local.session`/`local.unique` attrs), its inputs as `stepN:OUTPUT`.
 */
export function buildSteps(def: Definition): { steps: GoJsonValue[]; indexes: Map<Digest, number> } | undefined {
  if (def.def.length === 0) return undefined;
  const ops = new Map<Digest, Op>();
  let last: Digest | undefined;
  for (const bytes of def.def) {
    last = digestOf(bytes);
    ops.set(last, decodeOp(bytes));
  }
  const terminal = last === undefined ? undefined : ops.get(last);
  if (last === undefined || terminal === undefined || terminal.kind !== 'none' || terminal.inputs.length !== 1) return undefined;
  const order: Digest[] = [];
  const visited = new Set<Digest>();
  const walk = (d: Digest): void => {
    if (visited.has(d)) return;
    const op = ops.get(d);
    if (op === undefined) return;
    visited.add(d);
    for (const i of op.inputs) walk(i.digest);
    order.push(d);
  };
  walk(last);
  const indexes = new Map(order.map((d, i) => [d, i] as const));
  const steps = order.map((d, i) => {
    const op = ops.get(d) as Op;
    const inputs = op.inputs.map((inp) => `step${indexes.get(inp.digest) ?? 0}:${inp.index}`);
    const bare = redactedProxyEnv(redactedSource(withoutSessionAttrs({ ...op, inputs: [] })));
    return { id: `step${i}`, op: new RawJson(opJson(bare)), inputs: inputs.length === 0 ? undefined : inputs };
  });
  return { steps, indexes };
}

function withoutSessionAttrs(op: Op): Op {
  if (op.kind !== 'source' || op.source.attrs === undefined) return op;
  const attrs = new Map([...op.source.attrs].filter(([k]) => k !== 'local.session' && k !== 'local.unique'));
  return { ...op, source: { ...op.source, attrs } };
}

/**
 * A source step as the attestation shows it: the URL credentials of an http or git identifier
 * and of `git.fullurl` become `xxxxx`, as in the materials. BuildKit copies the op as it is, so a
 * `--build-context NAME=https://user:token@…` or an ADD of such a URL put the token into every
 * pushed mode=max attestation; the digest mapping still names the op's real digest.
 */
function redactedSource(op: Op): Op {
  if (op.kind !== 'source') return op;
  const identifier = op.source.identifier === undefined ? undefined : redactCredentials(op.source.identifier);
  const fullUrl = op.source.attrs?.get('git.fullurl');
  const attrs = fullUrl === undefined || op.source.attrs === undefined ? op.source.attrs : new Map([...op.source.attrs, ['git.fullurl', redactCredentials(fullUrl)]]);
  return { ...op, source: { ...op.source, ...(identifier === undefined ? {} : { identifier }), ...(attrs === undefined ? {} : { attrs }) } };
}

/** An exec step's proxy URLs without their user and password (see {@link redactProxy}). */
function redactedProxyEnv(op: Op): Op {
  const proxy = op.kind === 'exec' ? op.exec.meta?.proxyEnv : undefined;
  if (op.kind !== 'exec' || proxy === undefined || op.exec.meta === undefined) return op;
  const redacted = Object.fromEntries(Object.entries(proxy).map(([k, v]) => [k, typeof v === 'string' ? redactProxy(v) : v]));
  return { ...op, exec: { ...op.exec, meta: { ...op.exec.meta, proxyEnv: redacted } } };
}

function digestMapping(indexes: ReadonlyMap<Digest, number>): Record<string, string> {
  return sortedMap([...indexes].map(([d, i]) => [d, `step${i}`] as const));
}

/** mode=max `source`: the Definition's source map keyed by step (only when it has source infos). */
function sourceInfo(def: Definition, indexes: ReadonlyMap<Digest, number>): GoJsonValue | undefined {
  const infos = def.source?.infos ?? [];
  if (infos.length === 0) return undefined;
  const locations: [string, GoJsonValue][] = [];
  for (const [d, l] of def.source?.locations ?? []) {
    const i = indexes.get(d as Digest);
    if (i !== undefined) locations.push([`step${i}`, locationsJson(l)]);
  }
  return {
    locations: locations.length === 0 ? undefined : sortedMap(locations),
    infos: infos.map((info) => {
      const nested = info.definition === undefined ? undefined : buildSteps(info.definition);
      return {
        filename: info.filename || undefined,
        language: info.language || undefined,
        data: info.data === undefined || info.data.length === 0 ? undefined : Buffer.from(info.data).toString('base64'),
        llbDefinition: nested === undefined || nested.steps.length === 0 ? undefined : nested.steps,
        digestMapping: nested === undefined || nested.indexes.size === 0 ? undefined : digestMapping(nested.indexes),
      };
    }),
  };
}

/** A `pb.Locations` as gogo's Go JSON (omitempty numbers, start/end always there). */
function locationsJson(l: Locations): GoJsonValue {
  const pos = (p: { line?: number; character?: number }): GoJsonValue => ({ line: p.line || undefined, character: p.character || undefined });
  return {
    locations: (l.locations ?? []).length === 0
      ? undefined
      : (l.locations ?? []).map((x) => ({
          sourceIndex: x.sourceIndex || undefined,
          ranges: (x.ranges ?? []).length === 0 ? undefined : (x.ranges ?? []).map((r) => ({ start: pos(r.start), end: pos(r.end) })),
        })),
  };
}

/** BuildKit's identity.NewID: 25 base-36 characters (a build invocation id). */
export function newInvocationId(random: (n: number) => Uint8Array): string {
  const bytes = random(32);
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n.toString(36).padStart(25, '0').slice(-25);
}
