/**
 * The parent side of evaluation: writes the bundle to a private temporary directory, starts
 * `node` on it with Node 20's permission model (`--experimental-permission`, reading only the
 * bundle; no child processes, workers or writes), and answers the evaluator's JSON-RPC calls.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TsDslError, type TsDslErrorCode, type TsDslLocation } from '../errors.js';
import type { Bundle } from '../load/bundle.js';
import { CALL_FAILED, type InitParams, type Methods, type Notification, type WireResult } from './protocol.js';

/** How the parent answers the evaluator's calls. */
export type Handlers = { readonly [M in keyof Methods]: (params: Methods[M]['params']) => Promise<Methods[M]['result']> } & {
  /** A warning of the build (its own `ctx.warn`, or the nondeterminism check). */
  readonly warn: (message: string, location: TsDslLocation | undefined) => void;
};

/** What the build returned. */
export interface Evaluation {
  /** True when the build returned `ctx.platforms(…)`. */
  readonly multi: boolean;
  readonly results: readonly WireResult[];
}

/** Options of {@link evaluateBundle}. */
export interface EvaluateOptions {
  readonly signal?: AbortSignal;
  /** Node binary (default: the running one). */
  readonly node?: string;
}

const codeOf = (c: string | undefined): TsDslErrorCode => (c === 'KLN0801' || c === 'KLN0802' || c === 'KLN0804' || c === 'KLN0805' ? c : 'KLN0803');

/** Runs a bundled build in a child `node` and returns its result. */
export async function evaluateBundle(bundle: Bundle, init: InitParams, handlers: Handlers, opts: EvaluateOptions = {}): Promise<Evaluation> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ts-'));
  const file = join(dir, 'build.mjs');
  try {
    await writeFile(file, bundle.code, { mode: 0o600 });
    return await run(file, bundle, { ...init, sources: bundle.sources }, handlers, opts);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(file: string, bundle: Bundle, init: InitParams, handlers: Handlers, opts: EvaluateOptions): Promise<Evaluation> {
  const child = spawn(
    opts.node ?? process.execPath,
    // --no-warnings: the permission model's ExperimentalWarning would read as a build warning.
    ['--experimental-permission', `--allow-fs-read=${file}`, '--enable-source-maps', '--no-warnings', file],
    // An empty environment: the build sees args through ctx, not the host's variables.
    { stdio: ['pipe', 'pipe', 'pipe'], env: {}, ...(opts.signal === undefined ? {} : { signal: opts.signal }) },
  );
  const write = (msg: object): void => {
    if (child.stdin.writable) child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...msg })}\n`);
  };
  return new Promise<Evaluation>((resolve, reject) => {
    let outcome: Notification | undefined;
    let stderr = '';
    let buf = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      stderr = (stderr + c).slice(-8192);
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== '') onMessage(line);
      }
    });
    const onMessage = (line: string): void => {
      let msg: { id?: number; method?: string; params?: unknown };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return void (stderr += `\n${line}`);
      }
      if (msg.id === undefined) {
        const n = msg as Notification;
        if (n.method === 'warn') handlers.warn(n.params.message, n.params.location);
        else outcome = n;
        return;
      }
      const id = msg.id;
      const method = msg.method as keyof Methods;
      const handler = handlers[method] as ((p: unknown) => Promise<unknown>) | undefined;
      if (handler === undefined) return write({ id, error: { code: -32601, message: `unknown method ${String(method)}` } });
      handler(msg.params).then(
        (result) => write({ id, result }),
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          const code = (err as { code?: unknown }).code;
          write({ id, error: { code: CALL_FAILED, message: err.message.split('\n')[0], data: typeof code === 'string' ? { code } : {} } });
        },
      );
    };
    child.on('error', (e) => {
      if (opts.signal?.aborted === true) reject(opts.signal.reason instanceof Error ? opts.signal.reason : e);
      else reject(new TsDslError('KLN0804', `cannot start the evaluator: ${e.message}`, { cause: e }));
    });
    child.on('close', (status) => {
      if (outcome?.method === 'done') return resolve(outcome.params);
      if (outcome?.method === 'fail') {
        const p = outcome.params;
        return reject(new TsDslError(codeOf(p.code), p.message, p.location === undefined ? {} : { location: p.location }));
      }
      if (opts.signal?.aborted === true) return reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      const last = stderr.trim().split('\n').slice(-3).join(' | ');
      reject(new TsDslError('KLN0804', `the evaluator of ${bundle.entry} exited (${status ?? 'signal'}) without a result${last ? `: ${last}` : ''}`));
    });
    write({ method: 'init', params: init });
  });
}
