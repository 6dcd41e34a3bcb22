/**
 * The evaluator: the entry point of a bundled build, run in a child `node` that may read only
 * the bundle (Node 20's permission model). It gets `init` on stdin, calls the build file's
 * default export with a {@link Ctx} whose gateway calls are JSON-RPC requests to the parent,
 * marshals what the build returns and sends it back. stdout carries the protocol only, so the
 * build's console output goes to stderr.
 */
import { SourceMap, decodeDefinition, encodeDefinition, fromDefinition, parseImageConfig } from '@kiln/llb-core';
import type { Digest, ImageMetaResolver } from '@kiln/llb-core';
import { formatPlatform, parsePlatform } from '@kiln/llb-core';
import { ImageResult, imageConfigFor } from '../dsl/image-result.js';
import { LowerContext } from '../dsl/lower.js';
import { marshal } from '../dsl/marshal.js';
import { image, local } from '../dsl/sources.js';
import { State, checkPlatform } from '../dsl/state.js';
import { checkArg, checkOptions, describeValue, str } from '../dsl/options.js';
import { PlatformResults, type Ctx, type FileInfo, type Ref, type SingleResult } from '../dsl/ctx.js';
import { TsDslError } from '../errors.js';
import { buildFrame, buildLocationOf, withBuildLocation, type BuildLocation } from '../dsl/source-location.js';
import { chooseBuild, listTargets, targetsExportAt, targetsOf, type BuildModule } from './targets.js';
import { CALL_FAILED, type InitParams, type Methods, type Notification, type WireResult, type WireStat } from './protocol.js';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** An error the build code threw through a ctx call: keeps the parent's code and hint. */
class CallError extends Error {
  constructor(message: string, readonly code: string | undefined, readonly hint?: string) {
    super(message);
  }
}

/**
 * Runs a ctx call, remembering (synchronously, while the build file is still on the stack) where
 * the build made it: a failure from the parent then points at that line.
 */
/** ctx calls not answered yet, with where the build file made them. */
const pending = new Map<Promise<unknown>, { readonly what: string; readonly at: BuildLocation | undefined }>();

function located<T>(what: string, call: () => Promise<T>): Promise<T> {
  const at = buildFrame(new Error().stack);
  const p = call().catch((e: unknown) => {
    throw withBuildLocation(e, at);
  });
  const settled = (): void => void pending.delete(p);
  pending.set(p, { what, at });
  p.then(settled, settled);
  return p;
}

/**
 * A ctx call still running when the build returned was not awaited: its result, and its error
 * (a file that is not there), are lost without a word. One warning per call, at its place.
 */
function warnUnawaited(rpc: Rpc): void {
  for (const { what, at } of pending.values()) {
    rpc.notify({ method: 'warn', params: { message: `${what} was still running when the build returned: its result and any error are lost (an await missing?)`, ...(at === undefined ? {} : { location: at }) } });
  }
}

class Rpc {
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #init: ((p: InitParams) => void) | undefined;
  readonly init: Promise<InitParams>;

  constructor() {
    this.init = new Promise((resolve) => (this.#init = resolve));
    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== '') this.#receive(JSON.parse(line) as Record<string, unknown>);
      }
    });
  }

  /**
   * stdin keeps the process alive only while a call waits for its answer: a build whose promise
   * can never settle then lets node exit (see the exit handler in runEvaluator) instead of hanging.
   */
  #keepAlive(): void {
    if (this.#pending.size > 0) process.stdin.ref();
    else process.stdin.unref();
  }

  #receive(msg: Record<string, unknown>): void {
    if (msg['method'] === 'init') {
      this.#keepAlive();
      return this.#init?.(msg['params'] as InitParams);
    }
    const p = this.#pending.get(msg['id'] as number);
    if (p === undefined) return;
    this.#pending.delete(msg['id'] as number);
    this.#keepAlive();
    const err = msg['error'] as { message: string; data?: { code?: string; hint?: string } } | undefined;
    if (err !== undefined) p.reject(new CallError(err.message, err.data?.code, err.data?.hint));
    else p.resolve(msg['result']);
  }

  call<M extends keyof Methods>(method: M, params: Methods[M]['params']): Promise<Methods[M]['result']> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#keepAlive();
      process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  notify(n: Notification): void {
    process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', ...n })}\n`);
  }
}

const fromWire = (s: WireStat): FileInfo => ({ ...s, modTime: BigInt(s.modTime) });

/** Warns once per API when the build reads the clock or a random number (results would differ per run). */
function watchNondeterminism(rpc: Rpc): void {
  const warned = new Set<string>();
  const warn = (api: string): void => {
    if (warned.has(api)) return;
    warned.add(api);
    const location = buildFrame(new Error().stack);
    rpc.notify({ method: 'warn', params: { message: `${api} makes the build nondeterministic (the LLB, and so the cache, can differ per run)`, ...(location ? { location } : {}) } });
  };
  const now = Date.now.bind(Date);
  const random = Math.random.bind(Math);
  Date.now = () => (warn('Date.now()'), now());
  Math.random = () => (warn('Math.random()'), random());
}

/** The specifier of an import the resolve hooks refused (see host.ts), if `err` is that. */
function refusedImport(err: Error): string | undefined {
  if ((err as { code?: unknown }).code !== 'ERR_KILN_IMPORT_DENIED') return undefined;
  return /^(.+) cannot be imported in a build file$/.exec(err.message)?.[1];
}

const isPlainObject = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

function failure(e: unknown): Notification {
  const err = e instanceof Error ? e : new Error(String(e));
  const location = buildLocationOf(err) ?? buildFrame(err.stack);
  const refused = refusedImport(err);
  const message = refused === undefined ? err.message : `import("${refused}") is not available in a build file: a build imports only "kiln" and relative files`;
  // the DSL's own errors (TsDslError, thrown at the call) and the parent's keep their code
  const code = err instanceof CallError || err instanceof TsDslError ? err.code : undefined;
  const hint = err instanceof TsDslError || err instanceof CallError ? err.hint : shellVariableHint(err);
  return { method: 'fail', params: { message, ...(code === undefined ? {} : { code }), ...(hint === undefined ? {} : { hint }), ...(location ? { location } : {}) } };
}

/**
 * `sh\`echo ${HOME}\`` interpolates a JavaScript name, not the shell's variable: a ReferenceError
 * for an upper-case name (how shell variables are spelt) says how to write the shell's.
 */
function shellVariableHint(err: Error): string | undefined {
  const name = err instanceof ReferenceError ? /^([A-Z_][A-Z0-9_]*) is not defined$/.exec(err.message)?.[1] : undefined;
  return name === undefined ? undefined : `if ${name} is a shell variable in an sh\`…\` script, write $${name} or \\\${${name}}: \${…} is JavaScript interpolation`;
}

/** Where the build file's `export default` is (1:1 when it cannot be found). */
function defaultExportAt(entry: string, text: string | undefined): BuildLocation {
  const lines = (text ?? '').split('\n');
  const i = lines.findIndex((l) => /^\s*export\s+default\b/.test(l));
  return i < 0 ? { file: entry, line: 1, column: 1 } : { file: entry, line: i + 1, column: (lines[i] ?? '').search(/\S/) + 1 };
}

/** Runs the bundled build module; called by the bundle's entry code. */
export function runEvaluator(mod: BuildModule, entry: string): void {
  const rpc = new Rpc();
  let sent = false;
  const send = (n: Notification): void => {
    if (sent) return;
    sent = true;
    rpc.notify(n);
    process.stdin.destroy();
  };
  process.on('unhandledRejection', (e) => send(failure(e)));
  // A throw in a timer callback: Node printed it to stderr (the build's console output) and
  // exited, which the exit handler below reported as a promise that never settles, at 1:1
  process.on('uncaughtException', (e) => send(failure(e)));
  // Nothing left to wait for and no result: the build's promise can never settle. (stdout is a
  // pipe, written synchronously on Linux, so the notification gets out before the exit.)
  process.on('exit', () => send({ method: 'fail', params: { message: `the build function of ${entry} returned a promise that never settles (nothing left to wait for)`, location: { file: entry, line: 1, column: 1 } } }));
  watchNondeterminism(rpc);
  void rpc.init
    .then((init) => evaluate(mod, entry, init, rpc))
    .then(
      (done) => {
        warnUnawaited(rpc);
        send(done);
      },
      (e: unknown) => send(failure(e)),
    );
}

async function evaluate(mod: BuildModule, entry: string, init: InitParams, rpc: Rpc): Promise<Notification> {
  const text = init.sources?.[entry];
  const targets = targetsOf(mod, entry, text);
  // `export const target = {…}` (singular) is no targets export: --target and --call=targets ignored it
  if (targets === undefined && isPlainObject(mod.target)) {
    const i = (text ?? '').split('\n').findIndex((l) => /^\s*export\s+(const|let|var)\s+target\b/.test(l));
    rpc.notify({ method: 'warn', params: { message: 'the build file exports "target", which kiln does not read: named targets are export const targets = { … }', location: { file: entry, line: i < 0 ? 1 : i + 1, column: 1 } } });
  }
  if (init.listTargets === true) return { method: 'done', params: { multi: false, results: [], targets: listTargets(mod, targets) } };
  const build = chooseBuild(mod, targets, init.target, entry, text);
  if (build === undefined) {
    return { method: 'fail', params: { message: `${entry} has no default export function (export default (ctx) => …)`, location: { file: entry, line: 1, column: 1 } } };
  }
  const pullMode = (m: string | undefined): { resolveMode?: 'pull' | 'local' } => {
    const mode = m ?? init.resolveMode;
    return mode === 'pull' || mode === 'local' ? { resolveMode: mode } : {};
  };
  const resolver: ImageMetaResolver = {
    async resolveImageConfig(ref, opts) {
      const r = await rpc.call('resolveImageConfig', { ref, ...(opts?.platform ? { platform: formatPlatform(opts.platform) } : {}), ...pullMode(opts?.resolveMode) });
      return { digest: r.digest as Digest, config: unb64(r.config) };
    },
  };
  const platform = init.platforms[0] as string;
  // one SourceMap per file, shared by every lowering: marshal lists each once in Definition.source
  const sources = new Map(Object.entries(init.sources ?? {}).map(([f, text]) => [f, new SourceMap(f, new TextEncoder().encode(text), { language: 'TypeScript' })] as const));
  // one question per directory for the whole build, whichever platform lowers it first
  const ignores = new Map<string, Promise<readonly string[]>>();
  const dockerignore = (name: string): Promise<readonly string[]> => {
    let p = ignores.get(name);
    if (p === undefined) ignores.set(name, (p = rpc.call('dockerignore', { name }).then((r) => r.patterns)));
    return p;
  };
  const contexts = new Map<string, LowerContext>();
  const lowerFor = (p: string): LowerContext => {
    let c = contexts.get(p);
    if (c === undefined) contexts.set(p, (c = new LowerContext(resolver, parsePlatform(p), sources, init.resolveMode, dockerignore)));
    return c;
  };
  const marshalOpts = (p: string) => ({
    platform: p,
    lowerContext: lowerFor(p),
    ...(init.caps === undefined ? {} : { caps: init.caps }),
    ...(init.localUniqueId === undefined ? {} : { localUniqueId: init.localUniqueId }),
  });
  /** The platform ctx.platforms is building (undefined outside its callback). */
  let building: string | undefined;
  /** Whether the build looked at ctx.target: if not, --target changed nothing (see below). */
  let targetRead = false;
  const ctx: Ctx = {
    args: init.args,
    get target() {
      targetRead = true;
      return init.target;
    },
    platform,
    targetPlatforms: init.platforms,
    async platforms(fn) {
      // ctx.platforms("linux/arm64") failed as "fn is not a function", naming kiln's variable
      checkArg('ctx.platforms', 'the argument', fn, { what: 'a function of the platform', ok: (v) => typeof v === 'function', hint: 'ctx.platforms((p) => image("busybox", { platform: p })); --platform picks the platforms' });
      const results = new Map<string, SingleResult>();
      // one platform at a time, so ctx.solve inside fn knows which one it is building for
      for (const p of init.platforms) {
        building = p;
        try {
          results.set(p, await fn(p));
        } finally {
          building = undefined;
        }
      }
      return new PlatformResults(results);
    },
    local(name, opts) {
      const named = init.contexts?.[name];
      if (named !== undefined) return 'image' in named ? image(named.image) : local(named.local, opts);
      const input = init.inputs[name];
      if (input === undefined) return local(name, opts);
      const st = fromDefinition(decodeDefinition(unb64(input)));
      return new State(async () => st, undefined);
    },
    solve(state, opts): Ref {
      checkArg('ctx.solve', 'the state', state, { what: 'a State', ok: (v) => v instanceof State, hint: 'ctx.solve(ctx.local("context")).readFile("/package.json")' });
      checkOptions('ctx.solve', opts, { platform: str });
      if (opts?.platform !== undefined) checkPlatform(opts.platform);
      const p = opts?.platform === undefined ? (building ?? platform) : formatPlatform(parsePlatform(opts.platform));
      let id: Promise<string> | undefined;
      const ref = (): Promise<string> =>
        (id ??= marshal(state, marshalOpts(p)).then(async (def) => (await rpc.call('solve', { definition: b64(encodeDefinition(def)) })).ref));
      return {
        readFile: (path) => located(`readFile(${JSON.stringify(path)})`, async () => new TextDecoder().decode(unb64((await rpc.call('readFile', { ref: await ref(), path })).data))),
        readBytes: (path) => located(`readBytes(${JSON.stringify(path)})`, async () => unb64((await rpc.call('readFile', { ref: await ref(), path })).data)),
        readDir: (path, include) => located(`readDir(${JSON.stringify(path)})`, async () => (await rpc.call('readDir', { ref: await ref(), path, ...(include === undefined ? {} : { include }) })).entries.map(fromWire)),
        stat: (path) => located(`stat(${JSON.stringify(path)})`, async () => fromWire((await rpc.call('statFile', { ref: await ref(), path })).stat)),
      };
    },
    resolveImageConfig: (ref, opts) =>
      located(`resolveImageConfig(${JSON.stringify(ref)})`, async () => {
        const r = await rpc.call('resolveImageConfig', { ref, platform: opts?.platform ?? platform, ...pullMode(undefined) });
        return { digest: r.digest, config: JSON.parse(Buffer.from(r.config, 'base64').toString('utf8')) as Record<string, unknown> };
      }),
    warn(message) {
      const location = buildFrame(new Error().stack);
      rpc.notify({ method: 'warn', params: { message, ...(location ? { location } : {}) } });
    },
  };
  const result: unknown = typeof build === 'function' ? await (build as (c: Ctx) => unknown)(ctx) : build;
  // A Dockerfile build fails on an unknown --target; a build file picks its result itself, so one
  // that never asks built everything while the user believes it built the target. (A targets
  // export picked it above.)
  if (init.target !== undefined && targets === undefined && !targetRead) {
    rpc.notify({ method: 'warn', params: { message: `--target ${init.target} was given, but the build never reads ctx.target: it built its whole result`, location: defaultExportAt(entry, init.sources?.[entry]) } });
  }
  const one = async (p: string, r: unknown): Promise<WireResult> => {
    const img = r instanceof ImageResult ? r : r instanceof State ? new ImageResult(r, {}) : undefined;
    if (img === undefined) {
      // ctx.solve's Ref is a plain object: say what it is, not "an object (Object)"
      const isRef = typeof r === 'object' && r !== null && typeof (r as Partial<Ref>).readFile === 'function' && typeof (r as Partial<Ref>).readDir === 'function';
      const what = isRef ? "a Ref (ctx.solve's result: return the State it solved)" : describeValue(r);
      // a target of the targets export is named as such, at that export (was "the default export", at 1:1 without one)
      const picked = init.target !== undefined && targets?.has(init.target) === true ? init.target : undefined;
      const who = picked === undefined ? 'the default export' : `targets.${picked}`;
      throw withBuildLocation(new CallError(`${who} returned ${what}; return a State, state.image({...}) or ctx.platforms(...)`, 'KLN0803'), picked === undefined ? defaultExportAt(entry, init.sources?.[entry]) : targetsExportAt(entry, init.sources?.[entry]));
    }
    const def = await marshal(img.state, marshalOpts(p));
    if (init.imageConfig === false) return { platform: p, definition: b64(encodeDefinition(def)), config: '' };
    const base = img.state.baseImage;
    const lookup = async (ref: string, bp: string): Promise<Record<string, unknown>> => {
      try {
        return JSON.parse(new TextDecoder().decode(parseImageConfigBytes(await resolver.resolveImageConfig(ref, { platform: parsePlatform(bp) })))) as Record<string, unknown>;
      } catch (e) {
        // the lookup runs after the build returned: point at the image() call, else at .image()
        const err = e instanceof Error ? e : new Error(String(e));
        throw withBuildLocation(new CallError(`base image ${ref}: ${err.message}`, err instanceof CallError ? err.code : undefined, err instanceof CallError ? err.hint : undefined), base?.at ?? img.at);
      }
    };
    const baseConfig = base === undefined ? undefined : await lookup(base.ref, base.platform ?? p);
    return { platform: p, definition: b64(encodeDefinition(def)), config: imageConfigFor(baseConfig, img.spec, parsePlatform(p)) };
  };
  if (result instanceof PlatformResults) {
    const results: WireResult[] = [];
    for (const [p, r] of result.results) results.push(await one(p, r));
    return { method: 'done', params: { multi: true, results } };
  }
  return { method: 'done', params: { multi: false, results: [await one(platform, result)] } };
}

/** The raw config bytes (validated as an image config first). */
function parseImageConfigBytes(r: { config: Uint8Array }): Uint8Array {
  parseImageConfig(r.config);
  return r.config;
}
