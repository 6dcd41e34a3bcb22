/**
 * The parent side of evaluation: writes the bundle to a private temporary directory, starts
 * `node` on it with Node's permission model (reading only the bundle and its loader hooks; no
 * child processes, addons or writes) and module resolve hooks (the bundle may import only the
 * Node modules it was built with, so build code cannot `import()` `node:net` at run time),
 * limits its heap and its running time, and answers its JSON-RPC calls.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TsDslError, type TsDslErrorCode, type TsDslLocation } from '../errors.js';
import type { Bundle } from '../load/bundle.js';
import { CALL_FAILED, type InitParams, type Methods, type Notification, type WireResult, type WireTarget } from './protocol.js';

type Handler<M extends keyof Methods> = (params: Methods[M]['params']) => Promise<Methods[M]['result']>;

/** How the parent answers the evaluator's calls (without `dockerignore`, no directory has ignore patterns). */
export type Handlers = { readonly [M in Exclude<keyof Methods, 'dockerignore'>]: Handler<M> } & {
  readonly dockerignore?: Handler<'dockerignore'>;
  /** A warning of the build (its own `ctx.warn`, or the nondeterminism check). */
  readonly warn: (message: string, location: TsDslLocation | undefined) => void;
  /** A line the build wrote to the console (`console.log` and friends; the child's stderr). */
  readonly log?: (line: string) => void;
};

/** What the build returned. */
export interface Evaluation {
  /** True when the build returned `ctx.platforms(…)`. */
  readonly multi: boolean;
  readonly results: readonly WireResult[];
  /** The build file's targets, when asked for (`listTargets`); `results` is then empty. */
  readonly targets?: readonly WireTarget[];
}

/** Options of {@link evaluateBundle}. */
export interface EvaluateOptions {
  readonly signal?: AbortSignal;
  /** Node binary (default: the running one). */
  readonly node?: string;
  /**
   * How long the build code may run, in milliseconds (default {@link DEFAULT_EVAL_TIMEOUT_MS}).
   * Time spent waiting for ctx calls (solves, reads) does not count: only the evaluator's own work.
   */
  readonly timeoutMs?: number;
  /** The evaluator's V8 heap limit in MB (default {@link DEFAULT_EVAL_MEMORY_MB}). */
  readonly memoryMb?: number;
  /**
   * The kernel's CPU-time limit of the evaluator in seconds (`ulimit -t`; default twice the time
   * limit plus 10 s). It stops an evaluator whose parent is gone (killed by a signal it did not
   * pass on), which the time limit, a timer in the parent, cannot.
   */
  readonly cpuLimitSeconds?: number;
  /**
   * The longest protocol line the child may send, in bytes (default {@link DEFAULT_MAX_MESSAGE_BYTES}):
   * build code can write to stdout too, and an endless line would grow a string in kiln until
   * it hits V8's string limit and crashes the process (the daemon, for everyone).
   */
  readonly maxMessageBytes?: number;
}

/** Default {@link EvaluateOptions.maxMessageBytes}: room for large Definitions, far below V8's string limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
/** Console lines longer than this are passed to the log handler in pieces. */
const MAX_LOG_LINE = 64 * 1024;

/** Default time limit of a build's own code: generous for real builds, finite for endless loops. */
export const DEFAULT_EVAL_TIMEOUT_MS = 300_000;
/** Default heap limit of the evaluator. */
export const DEFAULT_EVAL_MEMORY_MB = 2048;

const METHODS: ReadonlySet<string> = new Set<keyof Methods>(['solve', 'readFile', 'readDir', 'statFile', 'resolveImageConfig', 'dockerignore']);
const isMethod = (m: unknown): m is keyof Methods => typeof m === 'string' && METHODS.has(m);

const noIgnoreFile: Handler<'dockerignore'> = async () => ({ patterns: [] });

const codeOf = (c: string | undefined): TsDslErrorCode => (c === 'KLN0801' || c === 'KLN0802' || c === 'KLN0804' || c === 'KLN0805' || c === 'KLN0806' ? c : 'KLN0803');

/** Runs a bundled build in a child `node` and returns its result. */
export async function evaluateBundle(bundle: Bundle, init: InitParams, handlers: Handlers, opts: EvaluateOptions = {}): Promise<Evaluation> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ts-'));
  const file = join(dir, 'build.mjs');
  const hooks = join(dir, 'hooks.mjs');
  const register = join(dir, 'register.mjs');
  try {
    await writeFile(file, bundle.code, { mode: 0o600 });
    // Resolve hooks (module.register, Node >= 20.6; Node 22 removed the import policies this
    // used before): a module may import only the specifiers listed, so a computed import() (or
    // one from a Function body, or a data: URL) of anything else fails before it loads.
    await writeFile(hooks, resolveHooks(bundle.imports), { mode: 0o600 });
    await writeFile(register, "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n", { mode: 0o600 });
    return await run(dir, [file, hooks, register], bundle, { ...init, sources: bundle.sources }, handlers, opts);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The loader hooks module: the entry loads, and of the rest only the `allowed` specifiers. */
function resolveHooks(allowed: readonly string[]): string {
  return [
    `const allowed = new Set(${JSON.stringify(allowed)});`,
    'export async function resolve(specifier, context, next) {',
    '  if (context.parentURL === undefined || allowed.has(specifier)) return next(specifier, context);',
    '  throw Object.assign(new Error(`${specifier} cannot be imported in a build file`), { code: "ERR_KILN_IMPORT_DENIED" });',
    '}',
    '',
  ].join('\n');
}

/** Node 22.13+ and 23.5+ call the permission model `--permission`; Node 20 `--experimental-permission`. */
const PERMISSION_FLAG = process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';

function run(dir: string, [file, hooks, register]: readonly [string, string, string], bundle: Bundle, init: InitParams, handlers: Handlers, opts: EvaluateOptions): Promise<Evaluation> {
  const memoryMb = opts.memoryMb ?? DEFAULT_EVAL_MEMORY_MB;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EVAL_TIMEOUT_MS;
  const cpuSeconds = opts.cpuLimitSeconds ?? Math.ceil(timeoutMs / 1000) * 2 + 10;
  // /bin/sh sets RLIMIT_CPU (soft = hard: the kernel kills at the limit), then execs node in its place
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      `ulimit -t ${Math.max(1, Math.ceil(cpuSeconds))} && exec "$0" "$@"`,
      opts.node ?? process.execPath,
      PERMISSION_FLAG,
      // one flag per path (Node 20.20 no longer splits a comma list)
      `--allow-fs-read=${file}`,
      `--allow-fs-read=${hooks}`,
      `--allow-fs-read=${register}`,
      // Node runs resolve hooks on a worker thread of its own. Build code cannot start one:
      // node:worker_threads is not among the modules the hooks let it import.
      '--allow-worker',
      `--import=${register}`,
      `--max-old-space-size=${memoryMb}`,
      '--enable-source-maps',
      // the ExperimentalWarnings of permissions and loader hooks would read as build warnings
      '--no-warnings',
      file,
    ],
    // An empty environment (the build sees args through ctx, not the host's variables), and the
    // private directory as cwd (not the user's).
    { stdio: ['pipe', 'pipe', 'pipe'], env: {}, cwd: dir, ...(opts.signal === undefined ? {} : { signal: opts.signal }) },
  );
  const limit = timeLimit(timeoutMs, () => child.kill('SIGKILL'));
  // Errors of the parent's handlers by their code (a source policy's KLN0952): a failure the build
  // passes on keeps the original as its cause, so the caller can report it with its own code.
  const callErrors = new Map<string, Error>();
  const write = (msg: object): void => {
    if (child.stdin.writable) child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...msg })}\n`);
  };
  return new Promise<Evaluation>((resolve, reject) => {
    let outcome: Notification | undefined;
    let stderr = '';
    let buf = '';
    child.stderr.setEncoding('utf8');
    let line = '';
    child.stderr.on('data', (c: string) => {
      stderr = (stderr + c).slice(-8192);
      if (handlers.log === undefined) return;
      line += c;
      for (let nl = line.indexOf('\n'); nl >= 0; nl = line.indexOf('\n')) {
        handlers.log(line.slice(0, nl));
        line = line.slice(nl + 1);
      }
      if (line.length > MAX_LOG_LINE) {
        handlers.log(line);
        line = '';
      }
    });
    child.stderr.on('end', () => {
      if (line !== '') handlers.log?.(line);
    });
    child.stdout.setEncoding('utf8');
    const maxMessage = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    let tooLong = false;
    child.stdout.on('data', (chunk: string) => {
      if (tooLong) return;
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== '') onMessage(line);
      }
      // (string length counts UTF-16 units: close enough to bytes for a limit)
      if (buf.length > maxMessage) {
        tooLong = true;
        buf = '';
        child.kill('SIGKILL');
      }
    });
    const onMessage = (line: string): void => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        return void (stderr += `\n${line}`);
      }
      // not a JSON-RPC object (build code can write to stdout too): kept like other output
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return void (stderr += `\n${line}`);
      const msg = parsed as { id?: unknown; method?: unknown; params?: unknown };
      if (msg.id === undefined) {
        const n = msg as Notification;
        if (n.method === 'warn') {
          const p: unknown = n.params;
          if (typeof p === 'object' && p !== null && typeof (p as { message?: unknown }).message === 'string') handlers.warn(n.params.message, n.params.location);
        } else if (n.method === 'done' || n.method === 'fail') outcome ??= n;
        return;
      }
      const id = msg.id;
      // The child is untrusted: only the ctx calls are methods (a forged "warn" or "constructor"
      // request used to call a non-async property and throw in this stream handler, crashing kiln).
      if (!isMethod(msg.method)) return write({ id, error: { code: -32601, message: `unknown method ${String(msg.method)}` } });
      const handler = (handlers[msg.method] ?? noIgnoreFile) as (p: unknown) => Promise<unknown>;
      limit.pause();
      Promise.resolve()
        .then(() => handler(msg.params))
        .finally(() => limit.resume())
        .then(
        (result) => write({ id, result }),
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          const code = (err as { code?: unknown }).code;
          const hint = (err as { hint?: unknown }).hint;
          if (typeof code === 'string') callErrors.set(code, err);
          write({ id, error: { code: CALL_FAILED, message: err.message.split('\n')[0], data: { ...(typeof code === 'string' ? { code } : {}), ...(typeof hint === 'string' ? { hint } : {}) } } });
        },
      );
    };
    child.on('error', (e) => {
      if (opts.signal?.aborted === true) reject(opts.signal.reason instanceof Error ? opts.signal.reason : e);
      else reject(new TsDslError('KLN0804', `cannot start the evaluator: ${e.message}`, { cause: e }));
    });
    child.on('close', (status, signal) => {
      limit.stop();
      if (outcome?.method === 'done') return resolve(outcome.params);
      if (outcome?.method === 'fail') {
        const p = outcome.params;
        const cause = p.code === undefined ? undefined : callErrors.get(p.code);
        return reject(new TsDslError(codeOf(p.code), p.message, { ...(p.location === undefined ? {} : { location: p.location }), ...(p.hint === undefined ? {} : { hint: p.hint }), ...(cause === undefined ? {} : { cause }) }));
      }
      if (opts.signal?.aborted === true) return reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      if (tooLong) {
        return reject(
          new TsDslError('KLN0804', `the evaluator of ${bundle.entry} wrote a line longer than ${Math.round(maxMessage / 1024 / 1024)} MiB to its stdout (the protocol)`, {
            location: { file: bundle.entry, line: 1, column: 1 },
            hint: 'a build writes to the console with console.log (stderr), not process.stdout',
          }),
        );
      }
      if (limit.expired) {
        return reject(
          new TsDslError('KLN0804', `${bundle.entry} did not finish within ${limit.seconds} s of its own running time (an endless loop?)`, {
            location: { file: bundle.entry, line: 1, column: 1 },
            hint: 'time spent waiting for ctx.solve and reads does not count; look for a loop that never ends',
          }),
        );
      }
      // SIGKILL that is not ours (timer, abort): RLIMIT_CPU, or the system (the OOM killer)
      if (signal === 'SIGXCPU' || signal === 'SIGKILL') {
        return reject(
          new TsDslError('KLN0804', `the evaluator of ${bundle.entry} was killed (${signal}): it used more than ${cpuSeconds} s of CPU (an endless loop?), or the system stopped it`, {
            location: { file: bundle.entry, line: 1, column: 1 },
            hint: 'look for a loop that never ends',
          }),
        );
      }
      if (/heap limit|heap out of memory/i.test(stderr)) {
        return reject(
          new TsDslError('KLN0804', `${bundle.entry} ran out of memory (${memoryMb} MB) while building the graph`, {
            location: { file: bundle.entry, line: 1, column: 1 },
            hint: 'look for a loop or recursion that allocates without end',
          }),
        );
      }
      const last = stderr.trim().split('\n').slice(-3).join(' | ');
      reject(new TsDslError('KLN0804', `the evaluator of ${bundle.entry} exited (${status ?? 'signal'}) without a result${last ? `: ${last}` : ''}`));
    });
    write({ method: 'init', params: init });
  });
}

/** A time budget that runs only while the child works (paused while a ctx call is answered). */
function timeLimit(ms: number, onExpire: () => void): { pause(): void; resume(): void; stop(): void; readonly expired: boolean; readonly seconds: string } {
  let left = ms;
  let since = Date.now();
  let paused = 0;
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    since = Date.now();
    timer = setTimeout(() => {
      expired = true;
      onExpire();
    }, left);
    timer.unref();
  };
  arm();
  return {
    pause() {
      if (paused++ > 0 || expired) return;
      clearTimeout(timer);
      left -= Date.now() - since;
    },
    resume() {
      if (--paused > 0 || expired) return;
      arm();
    },
    stop() {
      clearTimeout(timer);
    },
    get expired() {
      return expired;
    },
    seconds: String(Math.round(ms / 100) / 10),
  };
}
