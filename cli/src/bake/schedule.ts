import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ExportSpec } from '@kiln/runtime';
import type { FrontendWarning } from '@kiln/llb-core';
import { runBuild, type BuildReport, type BuildRequest } from '../engine/build.js';
import type { KilnEngine } from '../engine/engine.js';
import type { ParsedOutputs } from '../engine/output-targets.js';
import { BakeError } from './errors.js';
import { ExportBarrier, type ExecutionMode } from './execution.js';
import type { TargetBuild } from './flags.js';
import type { BakeProgress } from './progress.js';
import type { ProgressSink } from '@kiln/solver';
import type { BuildRecording } from '../history/recorder.js';

/** One target's build as `kiln bake` runs it. */
export interface TargetRequest {
  /** The build of the target's own outputs. */
  readonly req: BuildRequest;
  readonly outputs: ParsedOutputs;
  readonly build: TargetBuild;
  /**
   * A target that is another's `target:NAME` context also exports its result as an image of
   * kiln's store under this private name, which the other build reads as `docker-image://`.
   */
  readonly link?: { readonly ref: string; readonly output: ExportSpec };
  /** Built only as another target's context: the private image is its only export. */
  readonly linkedOnly: boolean;
}

/** What one target's build ended with. */
export type Outcome =
  | { readonly status: 'succeeded'; readonly report: BuildReport; readonly outputs: ParsedOutputs; readonly historyRef?: string | undefined }
  | { readonly status: 'failed'; readonly error: unknown; readonly dockerfileText?: string; readonly dockerfileName: string }
  | { readonly status: 'aborted' }
  | { readonly status: 'not started'; readonly reason?: string };

/** What {@link runTargets} needs besides the targets. */
export interface RunTargetsOptions {
  readonly engine: KilnEngine;
  readonly mode: ExecutionMode;
  readonly progress: BakeProgress;
  /** Ctrl-C: stops every target. */
  readonly signal: AbortSignal;
  readonly onWarning: (w: FrontendWarning) => void;
  readonly onCacheWarning: (target: string, message: string) => void;
  /** Called with each private image name (and name@digest) made, for removal at the end. */
  readonly onPrivateImage: (name: string) => void;
  /** Records each target's build in kiln history (docs/history.md). */
  readonly record?: (name: string, target: TargetRequest, sink: ProgressSink, signal: AbortSignal) => BuildRecording;
}

/**
 * Runs every target's build at once in one engine; a target whose `target:NAME` context is
 * another target starts when that one has its image. Each target has its own AbortController,
 * aborted by Ctrl-C and, except with `defer-error`, by the first failure of another target (as
 * buildx's errgroup context): its running steps are cancelled as at Ctrl-C, and a step it shares
 * with a target that goes on keeps running for that one (the solver stops a step only when no
 * build needs it any more). With `defer-output`, exports wait until every target has solved.
 */
export async function runTargets(requests: ReadonlyMap<string, TargetRequest>, opts: RunTargetsOptions): Promise<Map<string, Outcome>> {
  const { engine, mode, signal } = opts;
  const controllers = new Map<string, AbortController>();
  for (const name of requests.keys()) {
    const ac = new AbortController();
    // Every solve, prefetch and container of the target's build listens on it.
    setMaxListeners(0, ac.signal);
    controllers.set(name, ac);
  }
  const interrupt = (): void => {
    for (const ac of controllers.values()) ac.abort(signal.reason);
  };
  if (signal.aborted) interrupt();
  signal.addEventListener('abort', interrupt, { once: true });
  const barrier = mode === 'defer-output' ? new ExportBarrier(requests.keys()) : undefined;
  let cancelled = false;
  const settled = (name: string, o: Outcome): Outcome => {
    if (o.status === 'failed' && mode !== 'defer-error' && !cancelled) {
      cancelled = true;
      const reason = new BakeError('KLN0857', `cancelled: target "${name}" failed (--execution ${mode})`);
      for (const [other, ac] of controllers) if (other !== name) ac.abort(reason);
    }
    if (o.status !== 'succeeded') barrier?.break(name);
    return o;
  };

  // What a target's dependents wait for: the build that made its image. That is the target's
  // build, except under defer-output for a target with outputs of its own (see below): its
  // first build, which is not held at the barrier its dependents must reach.
  const images = new Map<string, { readonly made: Promise<Outcome>; readonly resolve: (o: Outcome) => void }>();
  const imageOf = (name: string): { readonly made: Promise<Outcome>; readonly resolve: (o: Outcome) => void } => {
    let d = images.get(name);
    if (d === undefined) {
      let resolve: (o: Outcome) => void = () => undefined;
      const made = new Promise<Outcome>((r) => (resolve = r));
      d = { made, resolve };
      images.set(name, d);
    }
    return d;
  };
  const running = new Map<string, Promise<Outcome>>();
  const start = (name: string): Promise<Outcome> => {
    let p = running.get(name);
    if (p === undefined) {
      p = runTarget(name)
        .then(
          (o) => settled(name, o),
          (error: unknown) => settled(name, { status: 'failed', error, dockerfileName: 'Dockerfile' }),
        )
        .then((o) => (imageOf(name).resolve(o), o));
      running.set(name, p);
    }
    return p;
  };

  const runTarget = async (name: string): Promise<Outcome> => {
    const r = requests.get(name);
    const ac = controllers.get(name);
    if (r === undefined || ac === undefined) return { status: 'failed', error: new BakeError('KLN0853', `target "${name}" is not resolved`), dockerfileName: 'Dockerfile' };
    const dockerfileName = r.req.dockerfile === undefined ? 'Dockerfile' : basename(r.req.dockerfile);
    const dockerfileText = r.req.dockerfileText ?? (await readFile(r.req.dockerfile ?? join(r.req.context, 'Dockerfile'), 'utf8').catch(() => undefined));
    const fail = (error: unknown): Outcome => ({ status: 'failed', error, ...(dockerfileText === undefined ? {} : { dockerfileText }), dockerfileName });
    // A `target:NAME` context waits for NAME's image; without it the build does not start.
    const contexts = [...(r.req.buildContexts ?? [])];
    for (const [ctxName, other] of r.build.links) {
      void start(other);
      const dep = await imageOf(other).made;
      if (dep.status !== 'succeeded') {
        const what = dep.status === 'failed' ? 'failed' : dep.status === 'aborted' ? 'was cancelled' : 'did not start';
        return { status: 'not started', reason: `its context "${ctxName}" is target "${other}", which ${what}` };
      }
      const ref = requests.get(other)?.link?.ref;
      const image = ref === undefined ? undefined : dep.report.exports.find((x) => x.digest !== undefined && x.names.includes(ref));
      if (ref === undefined || image?.digest === undefined) return fail(new BakeError('KLN0856', `target "${name}": its context "${ctxName}" is target "${other}", which made no image`));
      contexts.push({ kind: 'image', name: ctxName, ref: `${ref}@${image.digest}` });
    }
    if (ac.signal.aborted) return { status: 'not started' };
    const recording = opts.record?.(name, r, opts.progress.forTarget(name), ac.signal);
    const common = {
      buildContexts: contexts,
      progress: recording?.sink ?? opts.progress.forTarget(name),
      signal: ac.signal,
      onWarning: opts.onWarning,
      onCacheWarning: (m: string) => opts.onCacheWarning(name, m),
    };
    // defer-output: a target arrives at the barrier once solved, then waits there for the others.
    const arrive = async (): Promise<void> => barrier?.arrive(name);
    const arriveAndWait = async (): Promise<void> => {
      if (barrier === undefined) return;
      barrier.arrive(name);
      await barrier.wait(ac.signal);
    };
    // Removed at the end however the build ends: it may fail after writing the image (its cache export).
    if (r.link !== undefined) opts.onPrivateImage(r.link.ref);
    try {
      let report: BuildReport;
      if (r.link === undefined) {
        report = await runBuild(engine, { ...r.req, ...common, beforeExport: arriveAndWait });
      } else if (r.linkedOnly || barrier === undefined) {
        // The private image is not an output of the bake: made without waiting.
        report = await runBuild(engine, { ...r.req, outputs: [...r.req.outputs, r.link.output], ...common, beforeExport: r.linkedOnly ? arrive : arriveAndWait });
        await recordPrivate(r.link.ref, report, opts);
      } else {
        // defer-output, and a target with outputs of its own that another target's context is:
        // the private image first (the other cannot solve without it), its own outputs after
        // the barrier, from a second build of the same definition (all cached by then).
        const first = await runBuild(engine, { ...r.req, outputs: [r.link.output], cacheTo: [], ...common, beforeExport: arrive });
        await recordPrivate(r.link.ref, first, opts);
        imageOf(name).resolve({ status: 'succeeded', report: first, outputs: r.outputs });
        const own = opts.progress.forTarget(name, `${name}/own-outputs`);
        const second = await runBuild(engine, { ...r.req, ...common, progress: recording?.tee(own, 'own-outputs') ?? own, beforeExport: arriveAndWait });
        report = { ...second, exports: [...first.exports, ...second.exports] };
      }
      // A --call build ends before the export point.
      barrier?.arrive(name);
      await recording?.completed(report);
      return { status: 'succeeded', report, outputs: r.outputs, historyRef: recording?.ref };
    } catch (err) {
      // Cancelled (another target failed), or held at the defer-output barrier that broke.
      const aborted = ac.signal.aborted || barrier?.heldAfterBreak(name) === true;
      await recording?.failed(err, aborted);
      if (aborted) return { status: 'aborted' };
      return fail(err);
    }
  };

  try {
    const names = [...requests.keys()];
    const results = await Promise.all(names.map(start));
    opts.progress.cancelOpen();
    return new Map(names.map((n, i) => [n, results[i] ?? { status: 'not started' }]));
  } finally {
    signal.removeEventListener('abort', interrupt);
  }
}

/**
 * The private image of a linked target also under name@digest, the name its dependents use: the
 * store-first resolver finds only an exact name, and asked a registry (kiln.local) before trying
 * the name alone. Given for removal (the name itself was, before the build).
 */
async function recordPrivate(ref: string, report: BuildReport, opts: RunTargetsOptions): Promise<void> {
  const digest = report.exports.find((x) => x.names.includes(ref))?.digest;
  if (digest === undefined) return;
  const pinned = `${ref}@${digest}`;
  opts.onPrivateImage(pinned);
  const rec = await opts.engine.images.get(ref);
  // Made again from the content store alone: no fsync, as ensureImage's pinned records.
  if (rec?.target.digest === digest) await opts.engine.images.put(pinned, rec.target, { durable: false });
}
