import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { local, ResultMetadataKey, type Definition, type FrontendWarning } from '@kiln/llb-core';
import { Gateway, type GatewayResult } from '@kiln/gateway';
import { CALL_REQUESTS, callAnswer, type CallName } from './call-spec.js';
import { ExecFailedError, readDockerignore, type FailedExecState, type ProgressSink, type SourcePolicyEngine } from '@kiln/solver';
import {
  formatPlatform,
  formatReference,
  hostPlatform,
  importOciLayout,
  openOciLayout,
  parsePlatform,
  parseReference,
  platformEquals,
  type Descriptor,
  type ExportResult,
  type ExportSpec,
  type InTotoAttestation,
  type Platform,
} from '@kiln/runtime';
import { randomBytes } from 'node:crypto';
import { SolverBackend } from './backend.js';
import type { KilnEngine } from './engine.js';
import type { BuildImages } from './layers.js';
import { EngineError } from './errors.js';
import { exportOutputs, type BuildOutput } from './export.js';
import { frontendLog } from './frontend-log.js';
import { LAYER_LABELS_KEY } from './layer-labels.js';
import { createFrontendRegistry } from './frontends.js';
import type { BuildContext } from './session.js';
import { SnapshotRef } from './snapshot-ref.js';
import type { CacheExportSpec, CacheImportSpec } from './cache-spec.js';
import { exportCache, inlineCacheRecords } from './cache-export.js';
import { findCause } from './report.js';
import { parsePlatformList } from './platform-list.js';
import { importCaches, importedResultLoader } from './cache-import.js';
// The attestation modules (provenance, SBOM, unbundling) load only in a build that asks for
// attestations or whose frontend returns some: `await import(…)` where they are used.
import type { RecordingBackend } from './provenance-capture.js';
import type { AttestationRequest, ProvenanceOptions } from './provenance-spec.js';
import type { SolvedAttestation } from './result-attestations.js';

/**
 * A git or http(s) URL as the build context (buildx's remote contexts): the frontend gets it as
 * its `context` option and loads it, and no local context is sent.
 */
export interface RemoteBuildContext {
  /** The URL as given (`REPO.git#REF:DIR`, `git://…`, `git@HOST:…`, a tarball or Dockerfile URL). */
  readonly url: string;
  /** `-f` relative to the remote context (default `Dockerfile`). */
  readonly file?: string;
}

/** One `kiln build`, already parsed from the command line. */
export interface BuildRequest {
  /** The build context directory (the URL, for a {@link remoteContext}). */
  readonly context: string;
  /** Build from this URL instead of a local directory; `dockerfile`/`dockerfileText` then send a Dockerfile of the caller's. */
  readonly remoteContext?: RemoteBuildContext;
  /** Path of the Dockerfile (default `<context>/Dockerfile`), or its text (`-f -`). */
  readonly dockerfile?: string;
  readonly dockerfileText?: string;
  readonly target?: string;
  readonly buildArgs?: ReadonlyMap<string, string>;
  readonly platform?: string;
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  readonly ssh?: Readonly<Record<string, string>>;
  readonly outputs: readonly ExportSpec[];
  /** Output destinations shown otherwise in progress (temporary files that stand for `dest=-`). */
  readonly displayDests?: ReadonlyMap<string, string>;
  readonly noCache?: boolean;
  readonly noCacheFilter?: readonly string[];
  readonly buildContexts?: readonly BuildContext[];
  readonly allowInsecure?: boolean;
  /** `--allow network.host`: RUN --network=host may run. */
  readonly allowNetworkHost?: boolean;
  readonly frontend?: string;
  /** `--parallelism N` for this build. */
  readonly parallelism?: number;
  /** `--label KEY=VALUE`: image labels (BuildKit's `label:KEY` options). */
  readonly labels?: ReadonlyMap<string, string>;
  /** `--add-host HOST:IP` entries (BuildKit's `add-hosts`). */
  readonly extraHosts?: readonly string[];
  /** `--pull`: base images are looked up in their registry (`image-resolve-mode=pull`). */
  readonly pull?: boolean;
  /** `--network none|host` for RUN steps without their own (`force-network-mode`). */
  readonly network?: 'none' | 'host';
  /** `--ulimit NAME=SOFT[:HARD]` entries (BuildKit's `ulimit`). */
  readonly ulimits?: readonly string[];
  /** `--shm-size` in bytes (`shm-size`). */
  readonly shmSize?: number;
  /** `--cgroup-parent` (`cgroup-parent`). */
  readonly cgroupParent?: string;
  readonly progress?: ProgressSink;
  readonly signal?: AbortSignal;
  readonly onWarning?: (w: FrontendWarning) => void;
  /**
   * `--call`: a subrequest instead of the build: `check` runs only the build checks (the
   * frontend's `frontend.lint`), `outline` lists the target's build args, secrets and ssh ids
   * (`frontend.outline`), `targets` lists the stages (`frontend.targets`).
   */
  readonly call?: CallName;
  /** `--call=…,format=json`: print the frontend's `result.json` instead of text. */
  readonly callFormat?: 'json';
  /** `--call=…,ignorestatus=true`: the answer's `result.statuscode` does not fail the command. */
  readonly callIgnoreStatus?: true;
  /** `--cache-to` destinations, exported after the outputs. */
  readonly cacheTo?: readonly CacheExportSpec[];
  /** `--cache-from` sources, loaded before the build (an unusable one is a warning). */
  readonly cacheFrom?: readonly CacheImportSpec[];
  /** Warnings about `--cache-from` values found while parsing them (shown like the import's own). */
  readonly cacheWarnings?: readonly string[];
  /** Where cache warnings go (`WARNING: …` on stderr in the CLI). */
  readonly onCacheWarning?: (message: string) => void;
  /** `--provenance` / `--attest`: attestations of the exported results (none by default). */
  readonly attestations?: AttestationRequest;
  /**
   * Keep the build for a debug shell (`--invoke`): called once, after the exports or on failure,
   * with the result or the state a failed RUN left; the build's refs stay until `release()`,
   * which the receiver must call. A failed RUN's state is kept only with this set.
   */
  readonly hold?: (held: HeldBuild) => void;
  /** Awaited after the solve, before any export (bake's `--execution defer-output` barrier). */
  readonly beforeExport?: () => Promise<void>;
  /** `--source-policy-file` / `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`: every solve and image resolve of the build goes through it. */
  readonly sourcePolicy?: SourcePolicyEngine;
}

/** What a build produced. */
export interface BuildReport {
  readonly frontend: string;
  readonly exports: readonly ExportResult[];
  /** The Dockerfile text (for error reports). */
  readonly dockerfileText?: string;
  /**
   * With `call`: the frontend's answer, whether it failed (exit status 1: checks found
   * something), and its result metadata (`result.json`, `result.txt`…, for `--metadata-file`).
   */
  readonly call?: { readonly text: string; readonly failed: boolean; readonly metadata: ReadonlyMap<string, Uint8Array> };
}

/** A build kept for a debug shell ({@link BuildRequest.hold}). */
export interface HeldBuild {
  /** The backend that solved the build: it makes containers from the result or the failed state. */
  readonly backend: SolverBackend;
  /** The result, after a successful build: of several platforms, the host's if built, else the first. */
  readonly output?: BuildOutput;
  /** Every platform the build made, when it made more than one. */
  readonly platforms?: readonly string[];
  /** What the failed RUN left, after a build that failed in a RUN. */
  readonly failed?: FailedExecState;
  /** Releases the build's refs and the failed state. */
  release(): Promise<void>;
}

/**
 * Runs one Dockerfile build: the context goes to the frontend as local source `context` (with
 * `.dockerignore` / `<Dockerfile>.dockerignore` applied), the Dockerfile's directory as
 * `dockerfile`; the gateway picks the frontend; the result is exported to every output.
 */
export async function runBuild(engine: KilnEngine, req: BuildRequest): Promise<BuildReport> {
  const startedOn = new Date();
  const remote = req.remoteContext;
  const contextDir = remote === undefined ? resolve(req.context) : undefined;
  let tmp: string | undefined;
  let dockerfilePath = resolve(req.dockerfile ?? join(contextDir ?? '.', 'Dockerfile'));
  if (req.dockerfileText !== undefined) {
    tmp = await mkdtemp(join(tmpdir(), 'kiln-dockerfile-'));
    dockerfilePath = join(tmp, 'Dockerfile');
    await writeFile(dockerfilePath, req.dockerfileText);
  }
  // `--platform A,B`: the frontend builds each; ops without a platform of their own get the first.
  const platforms = req.platform === undefined ? [] : parsePlatformList(req.platform);
  const platform: Platform = platforms[0] ?? hostPlatform();
  // A remote context with a Dockerfile of the caller's (-f -, an absolute -f): buildx sends that
  // as the local source `dockerfile` and names it with `dockerfilekey`.
  const localDockerfile = remote === undefined || req.dockerfile !== undefined || req.dockerfileText !== undefined;
  const localDirs: Record<string, string> = {
    ...(contextDir === undefined ? {} : { context: contextDir }),
    ...(localDockerfile ? { dockerfile: dirname(dockerfilePath) } : {}),
  };
  const opts = new Map<string, string>();
  const inputs = new Map<string, Definition>();
  const filename = localDockerfile ? basename(dockerfilePath) : (remote.file ?? 'Dockerfile');
  if (remote !== undefined) {
    opts.set('context', remote.url);
    if (localDockerfile) opts.set('dockerfilekey', 'dockerfile');
  }
  // BuildKit's reproducible builds: the SOURCE_DATE_EPOCH build arg sets the image `created`
  // time and the timestamps of exported tar entries (buildx passes the env variable as the arg).
  const epochArg = req.buildArgs?.get('SOURCE_DATE_EPOCH');
  const epoch = epochArg === undefined || !/^\d+$/.test(epochArg) ? undefined : Number(epochArg);
  opts.set('filename', filename);
  if (req.target !== undefined) opts.set('target', req.target);
  if (platforms.length > 0) opts.set('platform', platforms.map(formatPlatform).join(','));
  for (const [k, v] of req.buildArgs ?? []) opts.set(`build-arg:${k}`, v);
  for (const [k, v] of req.labels ?? []) opts.set(`label:${k}`, v);
  if (req.extraHosts !== undefined && req.extraHosts.length > 0) opts.set('add-hosts', req.extraHosts.join(','));
  if (req.pull === true) opts.set('image-resolve-mode', 'pull');
  if (req.network !== undefined) opts.set('force-network-mode', req.network);
  if (req.ulimits !== undefined && req.ulimits.length > 0) opts.set('ulimit', req.ulimits.join(','));
  if (req.shmSize !== undefined) opts.set('shm-size', String(req.shmSize));
  if (req.cgroupParent !== undefined) opts.set('cgroup-parent', req.cgroupParent);
  if (req.call !== undefined) opts.set('requestid', CALL_REQUESTS[req.call]);
  if (req.noCache === true) opts.set('no-cache', '');
  else if (req.noCacheFilter !== undefined && req.noCacheFilter.length > 0) opts.set('no-cache', req.noCacheFilter.join(','));
  // buildx sends each --attest type as `attest:TYPE` with its other attributes: the Dockerfile
  // frontend runs the SBOM scanner itself (BuildKit v0.11 builder/build.go).
  const sbom = req.attestations?.sbom;
  if (sbom !== undefined) opts.set('attest:sbom', sbom.generator === undefined ? '' : `generator=${sbom.generator}`);

  // A remote context's .dockerignore excludes nothing (BuildKit: local sources only).
  const ignore = contextDir === undefined ? { patterns: [] } : await readDockerignore(contextDir, dockerfilePath);
  // `--no-cache-filter` reaches the frontend as BuildKit's `no-cache=STAGE,…` (it marks those
  // stages' ops IgnoreCache); the Dockerfile is read from the `dockerfile` input.
  // Follow paths, as BuildKit's dockerui loads it: a Dockerfile that is a symlink brings its target.
  // A remote context sends no inputs, as buildx: the frontend reads the Dockerfile from the URL.
  if (remote === undefined) inputs.set('dockerfile', await local('dockerfile', { sharedKeyHint: 'dockerfile', followPaths: [filename, `${filename}.dockerignore`], customName: `[internal] load build definition from ${filename}` }).marshal());
  for (const c of req.buildContexts ?? []) {
    switch (c.kind) {
      case 'local':
        localDirs[c.name] = resolve(c.path);
        opts.set(`context:${c.name}`, `local:${c.name}`);
        break;
      case 'image':
        opts.set(`context:${c.name}`, `docker-image://${c.ref}`);
        break;
      case 'url':
        opts.set(`context:${c.name}`, c.url);
        break;
      case 'oci-layout': {
        // Imported into kiln's store under a local name, then used like an image (offline).
        const layout = await openOciLayout(resolve(c.path), engine.content);
        const desc = await importOciLayout(layout, engine.content, { ...(c.ref === undefined ? {} : { ref: c.ref }), platform });
        const name = formatReference(parseReference(`kiln.local/oci-layout/${c.name.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}:latest`));
        await engine.images.put(name, desc);
        opts.set(`context:${c.name}`, `docker-image://${name}@${desc.digest}`);
        break;
      }
    }
  }

  // With hold: every failed RUN's state (two may fail at once); the one the error names is held.
  // A state that comes after the build let go of its states (a sibling RUN failing as the build
  // ends, a shared step of a daemon failing later) is nobody's: released at once.
  const failedStates: FailedExecState[] = [];
  let statesReleased = false;
  const keepState = (st: FailedExecState): void => {
    if (statesReleased) void st.release();
    else failedStates.push(st);
  };
  const releaseStates = async (): Promise<void> => {
    statesReleased = true;
    for (const st of failedStates.splice(0)) await st.release();
  };
  const solver = engine.solver({
    localDirs,
    ...(req.hold === undefined ? {} : { onFailedExec: keepState }),
    ...(req.secrets === undefined ? {} : { secrets: req.secrets }),
    ...(req.ssh === undefined ? {} : { ssh: req.ssh }),
    allowInsecure: req.allowInsecure === true,
    allowNetworkHost: req.allowNetworkHost === true,
    platform,
    ...(req.parallelism === undefined ? {} : { parallelism: req.parallelism }),
  });
  const warn = req.onCacheWarning ?? (() => undefined);
  for (const w of req.cacheWarnings ?? []) warn(w);
  const cacheImports =
    req.cacheFrom === undefined || req.cacheFrom.length === 0
      ? []
      : await importCaches(engine, req.cacheFrom, { onWarning: warn, ...(req.progress === undefined ? {} : { progress: req.progress }), ...(req.signal === undefined ? {} : { signal: req.signal }) });
  const backendOpts = {
    ...(req.progress === undefined ? {} : { progress: req.progress }),
    ...(req.signal === undefined ? {} : { signal: req.signal }),
    ...(req.noCache === true ? { noCache: true } : {}),
    ...(cacheImports.length === 0 ? {} : { cacheImports, loadImported: importedResultLoader(engine) }),
    // What a frontend's containers may use, as the build's RUN steps: secrets, agents, entitlements.
    ...(req.secrets === undefined ? {} : { secrets: req.secrets }),
    ...(req.ssh === undefined ? {} : { ssh: req.ssh }),
    allowInsecure: req.allowInsecure === true,
    allowNetworkHost: req.allowNetworkHost === true,
    ...(req.sourcePolicy === undefined ? {} : { sourcePolicy: req.sourcePolicy }),
  };
  const provenance = req.attestations?.provenance;
  // Provenance needs every Definition the frontend solves and every image it resolves; an SBOM
  // scan made here (a frontend that made none) needs the result's Definition.
  const recorder = provenance === undefined && sbom === undefined ? undefined : new (await import('./provenance-capture.js')).RecordingBackend(engine, solver, backendOpts);
  const backend = recorder ?? new SolverBackend(engine, solver, backendOpts);
  const gateway = new Gateway(backend, createFrontendRegistry({ excludePatterns: ignore.patterns }));
  const output = frontendLog(req.progress);
  let held: HeldBuild | undefined;
  const hold = (o: { output?: BuildOutput; platforms?: readonly string[]; failed?: FailedExecState }): void => {
    const releaseAll = async (): Promise<void> => {
      await backend.release();
      await releaseStates();
    };
    let released: Promise<void> | undefined;
    held = { backend, ...o, release: () => (released ??= releaseAll()) };
  };
  try {
    const result = await gateway
      .build({
        ...(req.frontend === undefined ? {} : { frontend: req.frontend }),
        opts,
        inputs,
        ...(req.onWarning === undefined ? {} : { onWarning: req.onWarning }),
        onLog: output.log,
        ...(req.signal === undefined ? {} : { signal: req.signal }),
      })
      .finally(output.done);
    if (req.call !== undefined) {
      const answer = callAnswer({ name: req.call, ...(req.callFormat === undefined ? {} : { format: req.callFormat }), ...(req.callIgnoreStatus === true ? { ignoreStatus: true as const } : {}) }, result.metadata);
      if (answer === undefined) throw new EngineError('KLN0702', `frontend ${result.frontend} does not answer --call=${req.call}${req.callFormat === undefined ? '' : `,format=${req.callFormat}`}`, { hint: 'build without --call' });
      return { frontend: result.frontend, exports: [], call: { ...answer, metadata: result.metadata } };
    }
    // The frontend's own attestations (an SBOM the Dockerfile frontend made, in process or in a
    // frontend image); the SBOM processor scans only when there is no SBOM among them.
    let outputs = buildOutputs(result, platform);
    if (result.attestations.size > 0) outputs = withAttestations(outputs, (await import('./result-attestations.js')).solveAttestations(result.attestations));
    if (sbom !== undefined && recorder !== undefined) {
      outputs = await (await import('./sbom-processor.js')).sbomProcessor(recorder, outputs, { noCache: req.noCache === true, ...(sbom.generator === undefined ? {} : { generator: sbom.generator }), ...(req.signal === undefined ? {} : { signal: req.signal }) });
    }
    const provenanceOf = recorder === undefined || provenance === undefined
      ? undefined
      : await provenanceAttestations(recorder, provenance, { engine, results: Array.isArray(outputs) ? outputs : [outputs], frontend: result.frontend, opts, startedOn, ...(solver.images === undefined ? {} : { images: solver.images }) });
    const attested = (Array.isArray(outputs) ? outputs : [outputs]).some((o) => (o.attestations?.length ?? 0) > 0);
    // The solver's results of the exported refs (one per platform): their cache key graphs are what --cache-to exports.
    const all = Array.isArray(outputs) ? outputs : [outputs];
    const first = all[0];
    const solved = all.flatMap((o) => backend.buildResultOf(o.ref) ?? []);
    const cacheOpts = { ...(req.signal === undefined ? {} : { signal: req.signal }), ...(epoch === undefined ? {} : { sourceDateEpoch: epoch }), imports: cacheImports, ...(solver.images === undefined ? {} : { images: solver.images }) };
    const inline = req.cacheTo?.some((c) => c.type === 'inline') === true;
    await req.beforeExport?.();
    const exports: ExportResult[] = [];
    if (req.outputs.length > 0) {
      exports.push(
        ...(await exportOutputs(engine, req.outputs, outputs, {
          ...(req.progress === undefined ? {} : { progress: req.progress }),
          ...(req.signal === undefined ? {} : { signal: req.signal }),
          ...(epoch === undefined ? {} : { sourceDateEpoch: epoch }),
          ...(solver.images === undefined ? {} : { images: solver.images }),
          ...(req.displayDests === undefined ? {} : { displayDests: req.displayDests }),
          ...(inline
            ? {
                inlineCache: async (layers, o) => {
                  const r = backend.buildResultOf(o.ref);
                  return r === undefined ? undefined : inlineCacheRecords(engine, r, layers, cacheOpts);
                },
              }
            : {}),
          ...(provenanceOf === undefined && !attested
            ? {}
            : {
                // BuildKit's order: the frontend's attestations (unbundled, the core SBOM first), then provenance.
                attest: async (o: BuildOutput, layers: readonly Descriptor[] | undefined, e: number | undefined) => [
                  ...(o.attestations === undefined ? [] : await (await import('./result-attestations.js')).unbundleAttestations(o.attestations)),
                  ...(provenanceOf === undefined ? [] : await provenanceOf(o, layers, e)),
                ],
              }),
        })),
      );
    }
    for (const [index, spec] of (req.cacheTo ?? []).entries()) {
      if (spec.type === 'inline') continue;
      if (solved.length === 0) throw new EngineError('KLN0711', 'the build produced no result whose cache could be exported');
      try {
        await exportCache(engine, spec, solved, { index, ...cacheOpts, ...(req.progress === undefined ? {} : { progress: req.progress }) });
      } catch (e) {
        // ignore-error=true: the build keeps its outputs; a cancel still cancels.
        if (spec.ignoreError !== true || req.signal?.aborted === true) throw e;
        warn(`${e instanceof Error ? e.message : String(e)} (ignored: ignore-error=true)`);
      }
    }
    if (req.hold !== undefined && first !== undefined) {
      // The host's platform is the one whose programs run here.
      const host = hostPlatform();
      const output = all.find((o) => platformEquals(o.platform, host)) ?? first;
      hold({ output, ...(all.length > 1 ? { platforms: all.map((o) => formatPlatform(o.platform)) } : {}) });
    }
    return { frontend: result.frontend, exports };
  } catch (e) {
    // Not after a cancel: the user asked to stop. Only a state this build kept: a daemon runs a
    // step two builds share once, and its state is the build's whose worker ran it (released
    // when that build is done with it, maybe under this one's shell).
    const failed = req.signal?.aborted === true ? undefined : findCause(e, ExecFailedError)?.state;
    if (req.hold !== undefined && failed !== undefined && failedStates.includes(failed)) hold({ failed });
    throw e;
  } finally {
    if (held !== undefined) req.hold?.(held);
    else {
      await backend.release();
      await releaseStates();
    }
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * The provenance statement maker of a build: for each exported platform result, the SLSA v0.2
 * predicate over what the build solved and resolved (the result's own Definition for mode=max).
 */
async function provenanceAttestations(
  recorder: RecordingBackend,
  options: ProvenanceOptions,
  build: { readonly engine: KilnEngine; readonly results: readonly BuildOutput[]; readonly frontend: string; readonly opts: ReadonlyMap<string, string>; readonly startedOn: Date; readonly images?: BuildImages },
): Promise<(output: BuildOutput, layers: readonly Descriptor[] | undefined, sourceDateEpoch: number | undefined) => Promise<InTotoAttestation[]>> {
  const { filterImagePlatforms, newInvocationId, provenancePredicate, SLSA_PROVENANCE_V02 } = await import('./provenance.js');
  const { resultLayers } = await import('./provenance-layers.js');
  const invocationId = newInvocationId((n) => randomBytes(n));
  return async (output, layers, sourceDateEpoch) => {
    const capture = {
      frontend: build.frontend,
      frontendOpts: build.opts,
      definitions: recorder.definitionsFor(output.ref, build.results.map((r) => r.ref)),
      resolvedImages: filterImagePlatforms(recorder.resolvedImages, build.results.map((r) => r.platform), output.platform),
    };
    const result = recorder.definitionOf(output.ref);
    const predicate = provenancePredicate(capture, options, {
      result,
      ...(options.mode === 'max' ? { layers: await resultLayers(build.engine, recorder.buildResultOf(output.ref), result, layers === undefined ? undefined : { snapshot: output.ref.snapshot, layers, sourceDateEpoch }, build.images) } : {}),
      invocationId,
      startedOn: build.startedOn,
      finishedOn: new Date(),
      hostPlatform: hostPlatform(),
    });
    return [{ predicateType: SLSA_PROVENANCE_V02, predicate, path: 'provenance.json' }];
  };
}

/**
 * The frontend's attestations put on their results: by platform key, and for a single result
 * also the only key there is (BuildKit keys them by the exporter's platform ID).
 */
function withAttestations(outputs: BuildOutput | BuildOutput[], attestations: ReadonlyMap<string, SolvedAttestation[]>): BuildOutput | BuildOutput[] {
  if (attestations.size === 0) return outputs;
  const one = (o: BuildOutput, fallback: boolean): BuildOutput => {
    const list = attestations.get(formatPlatform(o.platform)) ?? (fallback && attestations.size === 1 ? [...attestations.values()][0] : undefined);
    return list === undefined || list.length === 0 ? o : { ...o, attestations: list };
  };
  return Array.isArray(outputs) ? outputs.map((o) => one(o, false)) : one(outputs, true);
}

/**
 * The results of a frontend: one `ref` + `containerimage.config`, or a list of `refs` keyed by
 * platform. A list stays a list with one platform (`BUILDKIT_MULTI_PLATFORM=1`): BuildKit's
 * exporters then still write an index and a directory per platform.
 */
function buildOutputs(result: GatewayResult, platform: Platform): BuildOutput | BuildOutput[] {
  if (result.ref instanceof SnapshotRef && result.refs.size === 0) {
    const config = result.metadata.get(ResultMetadataKey.imageConfig);
    const layerLabels = result.metadata.get(LAYER_LABELS_KEY);
    return { ref: result.ref, platform, ...(config === undefined ? {} : { config }), ...(layerLabels === undefined ? {} : { layerLabels }) };
  }
  const out: BuildOutput[] = [];
  for (const [key, ref] of result.refs) {
    if (!(ref instanceof SnapshotRef)) continue;
    const config = result.metadata.get(`${ResultMetadataKey.imageConfig}/${key}`) ?? result.metadata.get(ResultMetadataKey.imageConfig);
    const layerLabels = result.metadata.get(`${LAYER_LABELS_KEY}/${key}`) ?? result.metadata.get(LAYER_LABELS_KEY);
    let p = platform;
    try {
      p = parsePlatform(key);
    } catch {
      // Not a platform key: keep the build platform.
    }
    out.push({ ref, platform: p, ...(config === undefined ? {} : { config }), ...(layerLabels === undefined ? {} : { layerLabels }) });
  }
  return out;
}
