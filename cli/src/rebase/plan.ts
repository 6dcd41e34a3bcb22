/**
 * The rebase itself, on parsed manifests and configs (no I/O): lifecycle's rebaser checks
 * (phase/rebaser.go) and go-containerregistry's mutate.Rebase layer surgery, as `pack rebase`
 * does them. The app's layers above the old run image's top layer are kept as they are (same
 * descriptors: same blobs, nothing recompressed); below them go the new run image's layers.
 */
import { CnbLabel, RUN_IMAGE_LABEL_PREFIXES, readRunImageMetadata, type RunImageMetadata } from '@kiln/buildpacks';
import { MediaTypes, formatReference, layerCompression, layerMediaType, parseReference, repositoryName, type Descriptor, type ImageFormat, type Digest, type HistoryEntry, type ImageConfig, type ImageManifest } from '@kiln/runtime';
import { RebaseError } from './errors.js';

/** A single-platform image as read from the store or a registry. */
export interface RebaseImage {
  /** The name it was read under (messages, and the run image name rebase records). */
  readonly name: string;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
}

/** The new run image: the image plus its identifier (`repo@sha256:…`, what runImage.reference records). */
export interface NewRunImage extends RebaseImage {
  readonly reference: string;
}

/** Inputs of {@link planRebase}. */
export interface RebasePlanInput {
  readonly app: RebaseImage;
  readonly runImage: NewRunImage;
  /** `--force`: skip the rebasable label, target and run image name checks (warnings instead). */
  readonly force: boolean;
  /**
   * The old run image's rootfs (by runImage.reference), when its top layer occurs more than once
   * in the app image ({@link topLayerAmbiguous}) and it could be read: a prefix of the app's
   * diff_ids ending in the top layer says exactly where the run image layers end.
   */
  readonly oldRunImage?: { readonly diffIds: ReadonlyArray<string> };
}

/** The rebased image, not yet stored. */
export interface RebasePlan {
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  /** The app's layers kept (above the old run image), in order: same descriptors as in the app image. */
  readonly appLayers: ReadonlyArray<Descriptor>;
  /** How many layers of the app image were the old run image's. */
  readonly oldRunLayers: number;
  /** What --force let through, as lifecycle warns about it. */
  readonly warnings: ReadonlyArray<string>;
}

/** OCI annotations naming the base image (image-spec annotations.md); rewritten when present. */
const BASE_NAME = 'org.opencontainers.image.base.name';
const BASE_DIGEST = 'org.opencontainers.image.base.digest';

/** The run image part of an app image's lifecycle metadata, or a KLN0920 refusal. */
export function appRunImage(app: RebaseImage): RunImageMetadata {
  const label = app.config.config?.Labels?.[CnbLabel.lifecycleMetadata];
  if (label === undefined) {
    throw new RebaseError('KLN0920', `${app.name} is not a Cloud Native Buildpacks app image (no ${CnbLabel.lifecycleMetadata} label)`, {
      hint: 'rebase works on images built by kiln/buildpacks, pack or a CNB lifecycle',
    });
  }
  const run = readRunImageMetadata(label);
  if (run === undefined) throw new RebaseError('KLN0920', `${app.name}: ${CnbLabel.lifecycleMetadata} names no run image top layer (runImage.topLayer)`);
  return run;
}

/** `sha256:<hex>` or bare hex: an image ID (what lifecycle records as runImage.reference for a daemon image), not a name. */
export function isImageId(ref: string): boolean {
  return /^(sha256:)?[0-9a-f]{64}$/.test(ref);
}

/** True when the run image top layer's diffID occurs more than once in the app image (the boundary needs the old run image). */
export function topLayerAmbiguous(app: RebaseImage): boolean {
  const run = appRunImage(app);
  return app.config.rootfs.diff_ids.filter((x) => x === run.topLayer).length > 1;
}

/**
 * The run image a rebase uses when none is given: the name the app image records
 * (runImage.image), else the repository of runImage.reference at `latest`. With `registry`
 * (publishing to it), the first of runImage.image and its mirrors in that registry comes first,
 * as pack's best mirror: its layers can be mounted instead of copied across registries.
 */
export function defaultRunImageName(run: RunImageMetadata, registry?: string): string | undefined {
  if (registry !== undefined) {
    const inRegistry = [run.image, ...(run.mirrors ?? [])].find((n) => {
      if (n === undefined) return false;
      try {
        return parseReference(n).domain === registry;
      } catch {
        return false;
      }
    });
    if (inRegistry !== undefined) return inRegistry;
  }
  if (run.image !== undefined) return run.image;
  if (run.reference === '' || isImageId(run.reference)) return undefined;
  try {
    const r = parseReference(run.reference);
    // repo@digest only: an image ID (lifecycle exporting to a daemon) names no repository
    if (r.digest === undefined) return undefined;
    return formatReference({ domain: r.domain, path: r.path, tag: 'latest' });
  } catch {
    return undefined;
  }
}

/** Builds the rebased manifest and config, or refuses with a {@link RebaseError}. */
export function planRebase(input: RebasePlanInput): RebasePlan {
  const { app, runImage, force } = input;
  const warnings: string[] = [];
  const run = appRunImage(app);
  const labels = app.config.config?.Labels ?? {};
  const newLabels = runImage.config.config?.Labels ?? {};

  // Platform API of the app image: before 0.12 the stack id and mixins decide (no --force for
  // those, as lifecycle), from 0.12 the rebasable label and the target.
  const api = envValue(app.config.config?.Env ?? [], 'CNB_PLATFORM_API');
  if (api === undefined || api === '' || apiLess(api, '0.12')) {
    checkStack(app, runImage);
  } else {
    if (labels[CnbLabel.rebasable] === 'false') {
      if (!force) throw new RebaseError('KLN0921', `${app.name} is not marked as rebasable (${CnbLabel.rebasable}=false)`, { hint: 'its run image was extended at build time (image extensions); --force rebases anyway, keeping the layers the extensions added, unrebuilt, on top of the new run image; rebuild the app to extend the new run image' });
      warnings.push('app image is not marked as rebasable');
    }
    const mismatch = targetMismatch(app.config, labels, runImage.config, newLabels);
    if (mismatch !== undefined) {
      const msg = `the new run image ${runImage.name} does not satisfy the app's target: ${mismatch}`;
      if (!force) throw new RebaseError('KLN0922', msg, { hint: 'pick a run image of the same os/architecture (and distro), or pass --force' });
      warnings.push(msg);
    }
  }

  // The run image must be the one the app names (or a mirror), unless forced (lifecycle, Platform API >= 0.12).
  const metadata = parseMetadata(labels[CnbLabel.lifecycleMetadata] ?? '{}');
  const runMd = { ...(isRecord(metadata['runImage']) ? metadata['runImage'] : {}) };
  if (!namesRunImage(run, runImage.name)) {
    const known = run.image === undefined ? 'none recorded' : [run.image, ...(run.mirrors ?? [])].join(', ');
    const msg = `the new run image ${runImage.name} is not the app's run image or a mirror of it (${known})`;
    if (!force) throw new RebaseError('KLN0924', msg, { hint: 'pass --force to rebase onto another run image (its name is recorded then)' });
    warnings.push(msg);
    runMd['image'] = runImage.name;
    runMd['mirrors'] = [];
    // lifecycle keeps the deprecated stack key in step (ToStack)
    metadata['stack'] = { runImage: { image: runImage.name, mirrors: [] } };
  }

  // Layer surgery: the app's layers above the old run image's top layer, on the new run image's.
  const diffIds = app.config.rootfs.diff_ids;
  if (diffIds.length !== app.manifest.layers.length) {
    throw new RebaseError('KLN0925', `${app.name}: the manifest has ${app.manifest.layers.length} layers and the config ${diffIds.length} diff_ids`);
  }
  const newDiffIds = runImage.config.rootfs.diff_ids;
  if (newDiffIds.length !== runImage.manifest.layers.length) {
    throw new RebaseError('KLN0925', `${runImage.name}: the manifest has ${runImage.manifest.layers.length} layers and the config ${newDiffIds.length} diff_ids`);
  }
  // the first layer with that diffID, as imgutil: an app layer identical to the run image's top
  // layer further up must stay an app layer (the last match would drop the app layers below it).
  // A top layer that occurs more than once: the old run image, when given, says which one.
  let top = diffIds.indexOf(run.topLayer as Digest);
  const occurrences = diffIds.filter((x) => x === run.topLayer).length;
  if (occurrences > 1) {
    const old = input.oldRunImage?.diffIds;
    if (old !== undefined && old.length > 0 && old.length <= diffIds.length && old.at(-1) === run.topLayer && old.every((x, i) => diffIds[i] === x)) {
      top = old.length - 1;
    } else {
      warnings.push(`the run image top layer ${run.topLayer} occurs ${occurrences} times in ${app.name} and the old run image ${run.reference || '(no reference)'} cannot be read: the layers above its first occurrence are taken as the app's`);
    }
  }
  if (top < 0) {
    throw new RebaseError('KLN0923', `the run image top layer ${run.topLayer} (runImage.topLayer) is not a layer of ${app.name}`, { hint: 'the image was changed after its build; rebuild it' });
  }
  const newTop = newDiffIds.at(-1);
  if (newTop === undefined) throw new RebaseError('KLN0925', `the new run image ${runImage.name} has no layers`);
  const appLayers = app.manifest.layers.slice(top + 1);
  const appDiffIds = diffIds.slice(top + 1);

  runMd['topLayer'] = newTop;
  runMd['reference'] = runImage.reference;
  metadata['runImage'] = runMd;

  // Labels: the lifecycle metadata, then the new run image's io.buildpacks.stack.* and
  // io.buildpacks.base.* instead of the old one's (lifecycle SyncLabels).
  const outLabels: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (!RUN_IMAGE_LABEL_PREFIXES.some((p) => k.startsWith(p))) outLabels[k] = v;
  for (const [k, v] of Object.entries(newLabels)) if (RUN_IMAGE_LABEL_PREFIXES.some((p) => k.startsWith(p))) outLabels[k] = v;
  outLabels[CnbLabel.lifecycleMetadata] = JSON.stringify(metadata);

  const { variant: _variant, 'os.version': _osVersion, ...appRest } = app.config;
  const nb = runImage.config;
  const config: ImageConfig = {
    ...appRest,
    // os/architecture (and version, variant) are the new run image's, as mutate.Rebase sets them
    architecture: nb.architecture,
    os: nb.os,
    ...(nb['os.version'] === undefined ? {} : { 'os.version': nb['os.version'] }),
    ...(nb.variant === undefined ? {} : { variant: nb.variant }),
    config: { ...(app.config.config ?? {}), Labels: outLabels },
    rootfs: { type: 'layers', diff_ids: [...newDiffIds, ...appDiffIds] },
    ...historyOf(app.config, top, appDiffIds.length, nb),
  };
  const annotations = app.manifest.annotations;
  // Docker schema 2 has no zstd (nor OCI non-distributable) layer type: such a run layer makes
  // the whole manifest OCI (as BuildKit's exporter does for zstd), the app's Docker layer types
  // retyped (same blobs)
  const docker = app.manifest.mediaType === MediaTypes.dockerManifest && !runImage.manifest.layers.some((l) => inFormat('docker', l).mediaType.startsWith('application/vnd.oci.'));
  const format: ImageFormat = docker ? 'docker' : 'oci';
  const toOci = app.manifest.mediaType === MediaTypes.dockerManifest && !docker;
  const manifest: ImageManifest = {
    ...app.manifest,
    ...(toOci ? { mediaType: MediaTypes.ociManifest, config: { ...app.manifest.config, mediaType: app.manifest.config.mediaType === MediaTypes.dockerConfig ? MediaTypes.ociConfig : app.manifest.config.mediaType } } : {}),
    layers: [...runImage.manifest.layers.map((l) => inFormat(format, l)), ...(toOci ? appLayers.map((l) => inFormat(format, l)) : appLayers)],
    ...(annotations === undefined ? {} : { annotations: rebasedAnnotations(annotations, runImage) }),
  };
  return { manifest, config, appLayers, oldRunLayers: top + 1, warnings };
}

/**
 * history: the new run image's, then the app's entries after the one of the old top layer. An
 * app history that does not line up with its layers (some non-empty entry missing) is replaced
 * by one entry per app layer, so the result always lines up.
 */
function historyOf(app: ImageConfig, top: number, appLayerCount: number, nb: ImageConfig): { history?: HistoryEntry[] } {
  const base = nb.history ?? [];
  const h = app.history;
  if (h === undefined && nb.history === undefined) return {};
  const nonEmpty = (h ?? []).filter((e) => e.empty_layer !== true).length;
  let appPart: HistoryEntry[];
  if (h !== undefined && nonEmpty === app.rootfs.diff_ids.length) {
    // from the entry of the first app layer on (go-containerregistry mutate.Rebase): non-layer
    // entries between the old top layer and it (the run image's trailing ENV, USER, LABEL) are
    // the old run image's, the new one brings its own
    let seen = 0;
    let cut = h.length;
    for (let i = 0; i < h.length; i++) {
      if (h[i]?.empty_layer !== true) seen++;
      if (seen === top + 2) {
        cut = i;
        break;
      }
    }
    appPart = h.slice(cut);
  } else {
    appPart = Array.from({ length: appLayerCount }, () => (app.created === undefined ? {} : { created: app.created }));
  }
  // a base without history (or one not lined up) gets an entry per layer too
  const baseNonEmpty = base.filter((e) => e.empty_layer !== true).length;
  const basePart = baseNonEmpty === nb.rootfs.diff_ids.length ? [...base] : nb.rootfs.diff_ids.map(() => (nb.created === undefined ? {} : { created: nb.created }));
  return { history: [...basePart, ...appPart] };
}

/**
 * A layer in the rebased manifest's media type family: a Docker schema 2 manifest listing OCI
 * layer types (or the reverse) is refused by Docker and skopeo. Same blob, only the type string
 * changes; foreign and non-distributable layers keep theirs.
 */
function inFormat(format: ImageFormat, l: Descriptor): Descriptor {
  const plain = [MediaTypes.ociLayer, MediaTypes.ociLayerGzip, MediaTypes.ociLayerZstd, MediaTypes.dockerLayer, MediaTypes.dockerLayerGzip] as string[];
  const compression = layerCompression(l.mediaType);
  if (!plain.includes(l.mediaType) || compression === undefined) return l;
  const mediaType = layerMediaType(format, compression);
  return mediaType === l.mediaType ? l : { ...l, mediaType };
}

function rebasedAnnotations(a: Readonly<Record<string, string>>, runImage: NewRunImage): Record<string, string> {
  const out = { ...a };
  const at = runImage.reference.lastIndexOf('@');
  if (out[BASE_NAME] !== undefined) out[BASE_NAME] = runImage.name;
  if (out[BASE_DIGEST] !== undefined && at > 0) out[BASE_DIGEST] = runImage.reference.slice(at + 1);
  return out;
}

/** Stack id and mixins: the checks of app images before Platform API 0.12 (lifecycle validateStackID, validateMixins). */
function checkStack(app: RebaseImage, runImage: RebaseImage): void {
  const appStack = app.config.config?.Labels?.[CnbLabel.stackId] ?? '';
  const newStack = runImage.config.config?.Labels?.[CnbLabel.stackId] ?? '';
  if (appStack === '') throw new RebaseError('KLN0922', `${app.name}: no stack defined (${CnbLabel.stackId}) on an image older than Platform API 0.12`);
  if (newStack === '') throw new RebaseError('KLN0922', `the new run image ${runImage.name} defines no stack (${CnbLabel.stackId})`);
  if (appStack !== newStack) throw new RebaseError('KLN0922', `incompatible stack: '${newStack}' is not compatible with '${appStack}'`);
  const mixins = (img: RebaseImage): string[] => {
    const raw = img.config.config?.Labels?.[CnbLabel.mixins];
    if (raw === undefined || raw === '') return [];
    const v = parseJson(raw);
    if (!Array.isArray(v)) throw new RebaseError('KLN0925', `${img.name}: ${CnbLabel.mixins} is not a JSON array`);
    return v.filter((m): m is string => typeof m === 'string').map((m) => m.replace(/^(build|run):/, ''));
  };
  const have = new Set(mixins(runImage));
  const missing = [...new Set(mixins(app))].filter((m) => !have.has(m)).sort();
  if (missing.length > 0) throw new RebaseError('KLN0922', `the new run image ${runImage.name} misses required mixin(s): ${missing.join(', ')}`);
}

/**
 * Why the new run image does not satisfy the app's target (lifecycle TargetSatisfiedForRebase):
 * os and architecture must be equal; variant and the distro labels match when both are set,
 * and a new run image naming a distro needs an app that names one.
 */
function targetMismatch(app: ImageConfig, appLabels: Readonly<Record<string, string>>, nb: ImageConfig, nbLabels: Readonly<Record<string, string>>): string | undefined {
  if (nb.os !== app.os || nb.architecture !== app.architecture) return `os/arch ${nb.os}/${nb.architecture}, the app's is ${app.os}/${app.architecture}`;
  if (nb.variant !== undefined && nb.variant !== '' && app.variant !== undefined && app.variant !== '' && nb.variant !== app.variant) return `variant ${nb.variant}, the app's is ${app.variant}`;
  const nName = nbLabels[CnbLabel.distroName] ?? '';
  const nVersion = nbLabels[CnbLabel.distroVersion] ?? '';
  if (nName !== '' || nVersion !== '') {
    const aName = appLabels[CnbLabel.distroName] ?? '';
    const aVersion = appLabels[CnbLabel.distroVersion] ?? '';
    if (aName === '' && aVersion === '') return `distro ${nName} ${nVersion}, the app names none`;
    if ((nName !== '' && nName !== aName) || (nVersion !== '' && nVersion !== aVersion)) return `distro ${nName} ${nVersion}, the app's is ${aName} ${aVersion}`;
  }
  return undefined;
}

/**
 * True when `name` is the recorded run image or one of its mirrors: repositories compared
 * normalised, tag and digest ignored (lifecycle RunImageForRebase.Contains).
 */
function namesRunImage(run: RunImageMetadata, name: string): boolean {
  const norm = (r: string): string => {
    try {
      return repositoryName(parseReference(r));
    } catch {
      return r;
    }
  };
  const want = norm(name);
  return [run.image, ...(run.mirrors ?? [])].some((n) => n !== undefined && norm(n) === want);
}

/** `a < b` for `major.minor` API versions. */
function apiLess(a: string, b: string): boolean {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am < bm || (am === bm && an < bn);
}

function envValue(env: ReadonlyArray<string>, name: string): string | undefined {
  const e = env.find((x) => x.startsWith(`${name}=`));
  return e?.slice(name.length + 1);
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

function parseMetadata(s: string): Record<string, unknown> {
  const v = parseJson(s);
  return isRecord(v) ? { ...v } : {};
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
