import { runExport, type Descriptor, type ExportResult, type ExportSpec, type ImageConfigDraft, type InTotoAttestation, type LayerRef, type Platform } from '@kiln/runtime';
import { INLINE_CACHE_KEY } from '@kiln/solver';
import type { ProgressSink } from '@kiln/solver';
import type { KilnEngine } from './engine.js';
import type { BuildImages } from './layers.js';
import { EngineError } from './errors.js';
import { fillLayerLabels, parseLayerLabels } from './layer-labels.js';
import type { SnapshotRef } from './snapshot-ref.js';
import type { SolvedAttestation } from './result-attestations.js';

/** One platform's result of a build: its snapshot and the frontend's image config (if any). */
export interface BuildOutput {
  readonly ref: SnapshotRef;
  /** `containerimage.config` bytes from the frontend; absent for raw LLB. */
  readonly config?: Uint8Array;
  /** `kiln.image.layer-labels` bytes from the frontend: label values to fill with layer diffIDs. */
  readonly layerLabels?: Uint8Array;
  readonly platform: Platform;
  /** The frontend's attestations of this result (BuildKit's `Result.attestations[platform]`), solved. */
  readonly attestations?: readonly SolvedAttestation[];
}

interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
  [k: string]: unknown;
}

/**
 * Runs every `--output` on the result: image exporters get the snapshot chain as layers (cached
 * per snapshot) and the config with `rootfs`/`history` matched to them, as BuildKit's image
 * exporter normalises them; `local`/`tar` get the mounted root filesystem.
 */
export async function exportOutputs(
  engine: KilnEngine,
  specs: readonly ExportSpec[],
  outputs: BuildOutput | readonly BuildOutput[],
  opts: {
    readonly progress?: ProgressSink;
    readonly signal?: AbortSignal;
    readonly sourceDateEpoch?: number;
    /** The images the build resolved: its image layers are exported with their blobs (see BuildImages). */
    readonly images?: BuildImages;
    /** Destinations shown otherwise in progress (a temporary file that stands for `dest=-`). */
    readonly displayDests?: ReadonlyMap<string, string>;
    /** `--cache-to type=inline`: the base64 cache records for `output`'s image with these layers (BuildKit's `moby.buildkit.cache.v0`). */
    readonly inlineCache?: (layers: readonly LayerRef[], output: BuildOutput) => Promise<string | undefined>;
    /**
     * Attestations of one platform's result (the frontend's SBOMs, `--provenance`), made at export time: for an image
     * with its layers (they become attestation manifests), for local/tar without (statement files).
     */
    readonly attest?: (output: BuildOutput, layers: readonly Descriptor[] | undefined, sourceDateEpoch: number | undefined) => Promise<InTotoAttestation[]>;
  } = {},
): Promise<ExportResult[]> {
  // A list is a multi-platform result even with one platform (BuildKit's `isMap`): an index, a
  // directory per platform.
  const multi = Array.isArray(outputs);
  const list: readonly BuildOutput[] = multi ? outputs : [outputs as BuildOutput];
  const first = list[0];
  if (first === undefined) throw new EngineError('KLN0704', 'the build produced no result to export');
  const results: ExportResult[] = [];
  for (const [i, spec] of specs.entries()) {
    const vertex = `export-${i}`;
    const shown = spec.type === 'image' ? undefined : opts.displayDests?.get(spec.dest);
    const name = exportName(shown === undefined || spec.type === 'image' ? spec : { ...spec, dest: shown });
    const t0 = Date.now();
    opts.progress?.emit({ kind: 'vertex.started', vertex, name, time: t0 });
    try {
      let result: ExportResult;
      if (spec.type === 'local' || spec.type === 'tar') {
        // Several platforms: one directory per platform (`linux_amd64/`), in dest or in the
        // tarball, as BuildKit's local and tar exporters write them.
        const input =
          multi
            ? { platforms: await Promise.all(list.map(async (o) => ({ path: platformDir(o.platform), rootfs: await o.ref.path(), attestations: await opts.attest?.(o, undefined, opts.sourceDateEpoch) }))) }
            : { rootfs: await first.ref.path(), attestations: await opts.attest?.(first, undefined, opts.sourceDateEpoch) };
        result = await runExport(spec, input, ctx(engine, opts));
      } else {
        const started = Date.now();
        opts.progress?.emit({ kind: 'status', vertex, id: 'exporting layers', current: 0, started, time: started });
        const sources = await Promise.all(
          list.map(async (o) => {
            const layers = await engine.layers.layersOf(o.ref.snapshot, opts.signal, opts.sourceDateEpoch, opts.images);
            const draft = imageConfig(o, layers.length, opts.sourceDateEpoch);
            const config = o.layerLabels === undefined ? draft : fillLayerLabels(draft, parseLayerLabels(o.layerLabels), layers.map((l) => l.diffID));
            // Each platform's config gets the inline cache of its own result (BuildKit: inline-cache/<platform>).
            const inline = await opts.inlineCache?.(layers, o);
            const attestations = await opts.attest?.(o, layers.map((l) => l.descriptor), opts.sourceDateEpoch);
            return {
              layers,
              config: inline === undefined ? config : { ...config, [INLINE_CACHE_KEY]: inline },
              ...(attestations === undefined || attestations.length === 0 ? {} : { attestations }),
            };
          }),
        );
        opts.progress?.emit({ kind: 'status', vertex, id: 'exporting layers', current: 0, started, completed: Date.now(), time: Date.now() });
        result = await runExport(spec, { image: multi ? sources : (sources[0] as (typeof sources)[number]) }, ctx(engine, opts));
        if (result.digest !== undefined) opts.progress?.emit({ kind: 'status', vertex, id: `writing image ${result.digest}`, current: 0, started: Date.now(), completed: Date.now(), time: Date.now() });
      }
      opts.progress?.emit({ kind: 'vertex.done', vertex, time: Date.now() });
      results.push(result);
    } catch (e) {
      opts.progress?.emit({ kind: 'vertex.error', vertex, error: e instanceof Error ? e.message : String(e), time: Date.now() });
      throw e;
    }
  }
  return results;
}

function ctx(engine: KilnEngine, opts: { readonly signal?: AbortSignal; readonly sourceDateEpoch?: number }) {
  return {
    store: engine.content,
    images: engine.images,
    registry: engine.registry,
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(opts.sourceDateEpoch === undefined ? {} : { sourceDateEpoch: opts.sourceDateEpoch }),
  };
}

function platformDir(p: Platform): string {
  return [p.os, p.architecture, ...(p.variant === undefined ? [] : [p.variant])].join('_');
}

function exportName(spec: ExportSpec): string {
  switch (spec.type) {
    case 'oci':
      return `exporting to oci image format ${spec.dest}`;
    case 'docker':
      return `exporting to docker image format ${spec.dest}`;
    case 'image':
      return spec.push ? `exporting to image and pushing ${spec.names.join(', ')}` : `exporting to image ${spec.names.join(', ')}`;
    case 'local':
      return `copying files to ${spec.dest}`;
    case 'tar':
      return `sending tarball ${spec.dest}`;
  }
}

/**
 * The image config for `layers` layers: the frontend's config (or a bare one for raw LLB) with
 * history made to agree with the layers, like BuildKit's normalizeLayersAndHistory: missing
 * entries are added as `created by buildkit`, extra non-empty ones are marked empty.
 */
export function imageConfig(output: BuildOutput, layerCount: number, sourceDateEpoch?: number): ImageConfigDraft {
  let parsed: Record<string, unknown> = {};
  if (output.config !== undefined) {
    try {
      parsed = JSON.parse(new TextDecoder().decode(output.config)) as Record<string, unknown>;
    } catch (cause) {
      throw new EngineError('KLN0704', 'the frontend returned an image config that is not JSON', { cause });
    }
  }
  const os = typeof parsed['os'] === 'string' ? parsed['os'] : output.platform.os;
  const architecture = typeof parsed['architecture'] === 'string' ? parsed['architecture'] : output.platform.architecture;
  const history: HistoryEntry[] = Array.isArray(parsed['history']) ? (parsed['history'] as HistoryEntry[]).map((h) => ({ ...h })) : [];
  // Go's RFC 3339 (time.Time JSON) drops a zero fraction, as BuildKit writes it.
  const epoch = sourceDateEpoch === undefined ? undefined : new Date(sourceDateEpoch * 1000).toISOString().replace('.000Z', 'Z');
  const created = epoch ?? (typeof parsed['created'] === 'string' ? parsed['created'] : new Date().toISOString());
  let nonEmpty = history.filter((h) => h.empty_layer !== true).length;
  if (nonEmpty > layerCount) {
    for (let i = history.length - 1; i >= 0 && nonEmpty > layerCount; i--) {
      const h = history[i];
      if (h !== undefined && h.empty_layer !== true) {
        h.empty_layer = true;
        nonEmpty--;
      }
    }
  }
  // Layers without a history entry get BuildKit's placeholder, appended (as BuildKit does).
  const missing: HistoryEntry[] = [];
  for (; nonEmpty < layerCount; nonEmpty++) missing.push({ created, created_by: 'created by buildkit', comment: 'buildkit.exporter.image.v0' });
  const { rootfs: _r, ...rest } = parsed;
  const draft: ImageConfigDraft = {
    ...rest,
    created,
    architecture,
    os,
    ...(output.platform.variant === undefined || parsed['variant'] !== undefined ? {} : { variant: output.platform.variant }),
    history: [...history, ...missing],
  };
  return draft;
}
