/**
 * The `gateway.v0` frontend: runs a frontend image in a container and serves it LLBBridge over the
 * container's stdin/stdout, as buildkitd's frontend/gateway/gateway.go does.
 */
import { randomUUID } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { defaultPlatform, encodeDefinition, type Frontend, type FrontendClient, type FrontendResult, type Platform } from '@kiln/llb-core';
import type { SolveBackend } from '../backend.js';
import type { BridgeServeOptions } from '../llbbridge/serve.js';
import { GatewayError, type GatewayErrorCode } from '../errors.js';
import { FRONTEND_METADATA_PATH, checkFrontendCaps, frontendProcess, type WorkerInfo } from './environment.js';
import { resolveFrontendImage } from './source.js';

/** BuildKit's name of the frontend that runs frontend images. */
export const GATEWAY_FRONTEND = 'gateway.v0';

/**
 * Serves LLBBridge on `stream` for one frontend run through `client`; resolves with the frontend's
 * Return, rejects with a GatewayError for a Return error (`KLN0610`) or when the stream ends
 * before Return (`KLN0611`). The shape of `serveLLBBridge`.
 */
export type ServeLLBBridge = (stream: Duplex, client: FrontendClient, options?: BridgeServeOptions) => Promise<FrontendResult>;

/** Construction options of {@link createGatewayFrontend}. */
export interface GatewayFrontendOptions {
  readonly backend: SolveBackend;
  readonly serve: ServeLLBBridge;
  /**
   * How long a frontend may keep running after its Return before it is killed (a frontend exits
   * right after Return; buildkitd would wait forever). Default 10 s.
   */
  readonly exitGraceMs?: number;
}

/** Last lines of a frontend's stderr kept for an error. */
const STDERR_TAIL = 20;

/** An external frontend that failed: the image, its exit status and its last stderr lines. */
export class ExternalFrontendError extends GatewayError {
  /** The frontend image, pinned by digest when it was resolved from a registry. */
  readonly image: string;
  readonly exitCode: number | undefined;
  /** The last lines the frontend wrote to stderr (also shown under its progress step). */
  readonly stderr: readonly string[];

  constructor(
    code: GatewayErrorCode,
    message: string,
    fields: { image: string; exitCode?: number; stderr: readonly string[]; hint?: string; cause?: unknown },
  ) {
    super(code, message, { ...(fields.hint === undefined ? {} : { hint: fields.hint }), ...(fields.cause === undefined ? {} : { cause: fields.cause }) });
    this.image = fields.image;
    this.exitCode = fields.exitCode;
    this.stderr = fields.stderr;
  }
}

/**
 * The `gateway.v0` frontend over `backend.runFrontendContainer`. Option `source` names the image
 * (a `context:<source>` named context wins); its config says how to run it (see
 * `frontendProcess`); `frontend.caps` must be covered by its caps label. The frontend's
 * stderr lines go to `client.log`. Outcome as buildkitd: a Return error wins, then a failed or
 * non-zero exit (even after a good Return), then the Return; an exit without Return is an error.
 */
export function createGatewayFrontend(options: GatewayFrontendOptions): Frontend {
  return (client) => runExternalFrontend(client, options);
}

async function runExternalFrontend(client: FrontendClient, options: GatewayFrontendOptions): Promise<FrontendResult> {
  const { backend } = options;
  const source = client.opts.get('source');
  if (source === undefined || source === '') {
    throw new GatewayError('KLN0607', `${GATEWAY_FRONTEND} needs option source (the frontend image)`, { hint: 'use # syntax=IMAGE, or --frontend IMAGE' });
  }
  const run = backend.runFrontendContainer?.bind(backend);
  if (run === undefined) throw new GatewayError('KLN0601', `this kiln cannot run frontend images (${source})`, { hint: 'use a built-in frontend' });
  const image = await resolveFrontendImage(client, source);
  checkFrontendCaps(image.config, client.opts, client.inputs.size > 0, image.ref);
  const signal = client.signal;
  const rootfs = await backend.solve(image.definition, signal === undefined ? {} : { signal });
  // The host's platform, then those the worker emulates, as buildkitd's worker lists them.
  const listed = backend.workerPlatforms?.() ?? [];
  const platforms = listed.length > 0 ? listed : [defaultPlatform()];
  const proc = frontendProcess(image.config, client.opts, { sessionId: backend.sessionId ?? randomUUID(), workers: kilnWorkers(platforms) });

  const toFrontend = new PassThrough();
  const fromFrontend = new PassThrough();
  const stream = Duplex.from({ readable: fromFrontend, writable: toFrontend });
  // Torn down below whatever state the bridge left it in: a premature close is expected there.
  stream.on('error', () => undefined);
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted === true) onAbort();
  const stderr: string[] = [];
  let exited = false;
  /** Why kiln stopped the container itself: it outlived its Return, or its LLBBridge broke. */
  let stopped: 'late' | 'closed' | 'broken' | undefined;
  let grace: NodeJS.Timeout | undefined;
  const graceMs = options.exitGraceMs ?? 10_000;
  const stopAfter = (why: 'late' | 'closed', ms: number): void => {
    if (exited || grace !== undefined) return;
    grace = setTimeout(() => {
      stopped = why;
      ac.abort(new Error(`the frontend did not exit (${why})`));
    }, ms);
  };
  // Returned with the container still running: it has this long to exit. Counted from the
  // answer to Return, not from the connection's close, which waits for the frontend's side.
  const serving = settle(options.serve(stream, client, { signal: ac.signal, platforms, onReturn: () => stopAfter('late', graceMs) }));
  void serving.then((served) => {
    if (exited) return;
    const code = served.ok ? undefined : codeOf(served.error);
    if (served.ok || code === 'KLN0610') stopAfter('late', graceMs);
    // The connection ended without Return: a frontend that exits is about to (its status makes
    // the error); one that goes on running does not speak LLBBridge (buildkitd: "frontend grpc
    // server closed unexpectedly").
    else if (code === 'KLN0611') stopAfter('closed', Math.min(graceMs, 1000));
    else {
      // Traffic that is no LLBBridge (framing, protobuf): nothing it does from here counts.
      stopped = 'broken';
      ac.abort(served.error);
    }
  });
  const running = settle(
    run({
      rootfs,
      args: proc.args,
      env: proc.env,
      cwd: proc.cwd,
      files: [{ path: FRONTEND_METADATA_PATH, data: encodeDefinition(image.definition) }],
      network: proc.network,
      stdin: toFrontend,
      stdout: fromFrontend,
      onStderr: (line) => {
        stderr.push(line);
        if (stderr.length > STDERR_TAIL) stderr.shift();
        client.log?.(line);
      },
      signal: ac.signal,
    }),
  );
  try {
    const ran = await running;
    exited = true;
    // The container is gone: whatever it did not answer never comes (a run that failed before
    // the container started never ended its stdout).
    if (!fromFrontend.writableEnded) fromFrontend.end();
    const served = await serving;
    if (signal?.aborted === true) throw ran.ok ? (signal.reason as unknown) : ran.error;
    const fields = { image: image.ref, stderr: [...stderr] };
    const last = stderr.length === 0 ? '' : `: ${stderr[stderr.length - 1] ?? ''}`;
    // A Return error wins over everything (gateway.go: "An existing error (set via Return rpc)
    // takes precedence over this error, which in turn takes precedence over a success").
    if (!served.ok && codeOf(served.error) === 'KLN0610') throw served.error;
    if (!ran.ok) {
      if (stopped === 'late') {
        throw new ExternalFrontendError('KLN0605', `frontend ${image.ref} did not exit within ${graceMs / 1000}s after returning`, {
          ...fields,
          hint: 'a frontend exits right after its Return call',
        });
      }
      if (stopped === 'closed' || stopped === 'broken') {
        const why = stopped === 'broken' && !served.ok ? `: ${served.error instanceof Error ? served.error.message : String(served.error)}` : '';
        throw new ExternalFrontendError(stopped === 'closed' ? 'KLN0611' : 'KLN0614', `frontend ${image.ref} closed its LLBBridge connection without returning a result${why}${last}`, {
          ...fields,
          hint: 'is it a frontend image? It must speak LLBBridge gRPC on stdin/stdout (its stderr is shown under the [frontend] step with --progress=plain)',
          ...(served.ok ? {} : { cause: served.error }),
        });
      }
      throw new ExternalFrontendError('KLN0605', `cannot run frontend ${image.ref}: ${ran.error instanceof Error ? ran.error.message : String(ran.error)}`, { ...fields, cause: ran.error });
    }
    const { exitCode } = ran.value;
    if (served.ok && exitCode !== 0) {
      throw new ExternalFrontendError('KLN0605', `frontend ${image.ref} exited with status ${exitCode} after returning its result${last}`, { ...fields, exitCode });
    }
    if (!served.ok) {
      if (codeOf(served.error) === 'KLN0611') {
        throw new ExternalFrontendError('KLN0611', `frontend ${image.ref} exited with status ${exitCode} without returning a result${last}`, {
          ...fields,
          exitCode,
          hint: 'its stderr is shown under the [frontend] step with --progress=plain; the image must run an LLBBridge client on stdin/stdout',
        });
      }
      throw served.error;
    }
    return served.value;
  } finally {
    clearTimeout(grace);
    signal?.removeEventListener('abort', onAbort);
    ac.abort();
    stream.destroy();
    toFrontend.destroy();
    fromFrontend.destroy();
  }
}

/** The worker `BUILDKIT_WORKERS` describes: this kiln (the labels buildkitd's OCI worker sets). */
function kilnWorkers(platforms: readonly Platform[]): WorkerInfo[] {
  return [
    {
      id: 'kiln',
      labels: {
        'org.mobyproject.buildkit.worker.executor': 'oci',
        'org.mobyproject.buildkit.worker.network': 'host',
        'org.mobyproject.buildkit.worker.snapshotter': 'overlayfs',
      },
      // Go ocispecs.Platform's JSON field order.
      platforms: platforms.map((p) => ({ architecture: p.architecture, os: p.os, ...(p.variant === undefined ? {} : { variant: p.variant }) })),
    },
  ];
}

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function codeOf(e: unknown): unknown {
  return typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
}
