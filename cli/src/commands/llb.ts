import { readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { basename, dirname, join } from 'node:path';
import { CommanderError, Option, type Command } from 'commander';
import { defaultPlatform, definitionJsonLineChunks, definitionToDot, encodeDefinition, parseDigest } from '@kiln/llb-core';
import type { ImageMetaResolver } from '@kiln/llb-core';
import { KilnError, convertDockerfile, detectSyntax, formatCheckWarning, formatError, parseDockerignore } from '@kiln/dockerfile';
import { DEFAULT_BUILD_FILE, TsDslError, compileBuildFile, directoryReader } from '@kiln/ts-dsl';
// The registry alone: the full @kiln/runtime (stores, executor, exporters) loads only for --root.
import { RegistryClient, registryMetaResolver, trustedFetch, trustedSecureContext } from '@kiln/runtime/registry';
import type { Platform } from '@kiln/llb-core';
import { commandConfig } from '../engine/config.js';
import { callerCredentials } from '../engine/credentials.js';
import { CliError, callerEnv, callerPath, readAll, type CliIo } from '../io.js';

/** Output formats of `kiln llb`. */
export type LlbFormat = 'json' | 'dot' | 'pb';

/** Options of `kiln llb`. */
export interface LlbCommandOptions {
  readonly file?: string;
  readonly target?: string;
  readonly buildArg: readonly string[];
  readonly platform?: string;
  readonly sessionId?: string;
  readonly format: LlbFormat;
  readonly imageConfig?: string;
  readonly root?: string;
  /** kiln/ts build files: pins `local.unique` of local sources (BuildKit picks a random one per marshal). */
  readonly localUniqueId?: string;
}

/** The part of a fetch `Response` the registry client reads, over a node:http response. */
class HttpResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly redirected: boolean;
  readonly headers: { get(name: string): string | null; has(name: string): boolean };
  readonly body: { cancel(): Promise<void>; [Symbol.asyncIterator](): AsyncIterator<Uint8Array> } | null;
  bodyUsed = false;

  constructor(
    private readonly msg: IncomingMessage,
    readonly url: string,
    redirected: boolean,
    head: boolean,
  ) {
    this.status = msg.statusCode ?? 0;
    this.statusText = msg.statusMessage ?? '';
    this.ok = this.status >= 200 && this.status < 300;
    this.redirected = redirected;
    const h = msg.headers;
    const get = (name: string): string | null => {
      const v = h[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
    };
    this.headers = { get, has: (name) => get(name) !== null };
    this.body = head
      ? null
      : {
          cancel: () => {
            msg.destroy();
            return Promise.resolve();
          },
          [Symbol.asyncIterator]: () => {
            this.bodyUsed = true;
            return (msg as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
          },
        };
    if (head) msg.resume();
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    this.bodyUsed = true;
    const chunks: Buffer[] = [];
    for await (const c of this.msg as AsyncIterable<Buffer>) chunks.push(c);
    const b = Buffer.concat(chunks);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  async text(): Promise<string> {
    return new TextDecoder().decode(await this.arrayBuffer());
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }
}

/**
 * `fetch` for the registry client over node:http/https, for bodiless GET and HEAD (what image
 * lookups send), following redirects as fetch does; anything else goes to the global fetch. Node's
 * fetch loads undici on first use, which costs `kiln llb` about 80 ms of a sub-second run. Both
 * trust kiln's CAs (Node's bundled ones, the system's, NODE_EXTRA_CA_CERTS), as `kiln build` does.
 */
const registryFetch: typeof globalThis.fetch = async (input, init) => {
  const method = init?.method ?? 'GET';
  const url0 = typeof input === 'string' ? input : input instanceof URL ? input.href : undefined;
  if (url0 === undefined || (method !== 'GET' && method !== 'HEAD') || init?.body !== undefined) return trustedFetch(input, init);
  const headers: Record<string, string> = {};
  if (init?.headers !== undefined) {
    // a plain record (what the registry client passes); arrays and Headers objects go to fetch
    const h = init.headers as Record<string, string> & { forEach?: unknown };
    if (Array.isArray(h) || typeof h.forEach === 'function') return trustedFetch(input, init);
    Object.assign(headers, h);
  }
  let url = new URL(url0);
  for (let hops = 0; ; hops++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return trustedFetch(url, { ...init, headers });
    // node:https (and tls) load only for https registries
    const https = url.protocol === 'https:';
    const request = https ? (await import('node:https')).request : httpRequest;
    const msg = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { method, headers, ...(https ? { secureContext: trustedSecureContext() } : {}), ...(init?.signal ? { signal: init.signal } : {}) }, resolve);
      // errors read as fetch's: TypeError('fetch failed') caused by the socket error
      req.once('error', (e) => reject(init?.signal?.aborted === true ? e : new TypeError('fetch failed', { cause: e })));
      req.end();
    });
    const status = msg.statusCode ?? 0;
    const location = msg.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location !== undefined && init?.redirect !== 'manual') {
      msg.resume();
      if (init?.redirect === 'error' || hops >= 20) throw new TypeError(`fetch failed: redirect ${init?.redirect === 'error' ? 'refused' : 'count exceeded'}`);
      const next = new URL(location, url);
      // as fetch: credentials do not follow a redirect to another origin
      if (next.origin !== url.origin) for (const k of Object.keys(headers)) if (k.toLowerCase() === 'authorization') delete headers[k];
      url = next;
      continue;
    }
    return new HttpResponse(msg, url.href, hops > 0, method === 'HEAD') as unknown as Response;
  }
};

/**
 * The registry resolver, adapted to the frontend's ImageMetaResolver (plain http for localhost);
 * with a kiln root, images in its store answer first, exactly as `kiln build --root` resolves them.
 */
async function imageResolver(root: string | undefined, io: CliIo): Promise<ImageMetaResolver> {
  // The config file's registries (mirrors, http, TLS: a host with TLS settings gets undici, not registryFetch).
  const registry = new RegistryClient({ fetch: registryFetch, credentials: callerCredentials(io), hosts: commandConfig(io).registry });
  /** What both resolvers answer that the frontend needs. */
  type Inner = { resolveImageConfig(ref: string, opts: { platform?: Platform; signal?: AbortSignal }): Promise<{ digest: unknown; config: Uint8Array; ref?: string | undefined }> };
  let inner: Inner;
  if (root === undefined) inner = registryMetaResolver(registry);
  else {
    const [{ ContentStore, ImageStore }, { StoreFirstMetaResolver }] = await Promise.all([import('@kiln/runtime'), import('../engine/image-meta.js')]);
    inner = new StoreFirstMetaResolver(await ImageStore.open(root), await ContentStore.open(root), registry);
  }
  return {
    async resolveImageConfig(ref, opts) {
      const res = await inner.resolveImageConfig(ref, {
        ...(opts.platform === undefined ? {} : { platform: opts.platform }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
      return { digest: parseDigest(String(res.digest)), config: res.config, ...(res.ref === undefined ? {} : { ref: res.ref }) };
    },
  };
}

function parseBuildArgs(list: readonly string[], env: Readonly<Record<string, string | undefined>>): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) {
      // docker build takes `--build-arg NAME` from the environment
      const v = i < 0 ? env[kv] : undefined;
      if (i === 0 || v === undefined) throw new CliError('KLN_CLI_ARG', `invalid --build-arg ${JSON.stringify(kv)}`, 'write --build-arg NAME=value');
      out.set(kv, v);
    } else out.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return out;
}

/**
 * Writes `path` by a rename, so a reader never sees half a file. A rename would replace what the
 * path names: a device or FIFO (`/dev/stdout`, a named pipe) is written in place instead, and a
 * symlink at its target.
 */
async function writeAtomic(given: string, data: string): Promise<void> {
  const st = await stat(given).catch(() => undefined);
  if (st !== undefined && !st.isFile()) return writeFile(given, data);
  const path = st === undefined ? given : await realpath(given);
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.kiln-tmp`);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Converts the Dockerfile and writes the LLB in `opts.format` (throws KilnError / CliError). */
export async function runLlb(contextArg: string, opts: LlbCommandOptions, io: CliIo, resolver?: ImageMetaResolver): Promise<void> {
  // Paths are the caller's (a kiln daemon serves other processes); messages keep them as given.
  const context = callerPath(io, contextArg);
  const ts = await tsBuildFile(contextArg, opts, io);
  if (ts !== undefined) return runTsLlb(ts, opts, io, resolver, context);
  // a context that does not exist (kiln llb missing.ts) is named as given, not as missing.ts/Dockerfile
  if (opts.file === undefined && (await stat(context).catch(() => undefined)) === undefined) {
    throw new CliError('KLN_CLI_READ', `cannot read ${contextArg}: no such file or directory`, 'kiln llb [CONTEXT | FILE.ts | -f DOCKERFILE]');
  }
  const given = opts.file ?? join(contextArg, 'Dockerfile');
  const file = opts.file === '-' ? '-' : callerPath(io, given);
  let text: Uint8Array;
  try {
    text = file === '-' ? await readAll(io.stdin) : await readFile(file);
  } catch (e) {
    const reason = (e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new CliError('KLN_CLI_READ', `cannot read ${given}: ${reason}`, opts.file === undefined ? 'pass the Dockerfile with -f FILE' : undefined);
  }
  const name = file === '-' ? 'Dockerfile' : given;
  // `<Dockerfile>.dockerignore` next to the Dockerfile wins over CONTEXT/.dockerignore (as BuildKit).
  const ignore = (file === '-' ? undefined : await readFile(`${file}.dockerignore`, 'utf8').catch(() => undefined)) ??
    (await readFile(join(context, '.dockerignore'), 'utf8').catch(() => undefined));
  const excludePatterns = ignore === undefined ? [] : parseDockerignore(ignore);
  try {
    const res = await convertDockerfile(text, {
      file: name,
      buildArgs: parseBuildArgs(opts.buildArg, callerEnv(io)),
      ...(opts.target === undefined ? {} : { target: opts.target }),
      ...(opts.platform === undefined ? {} : { targetPlatform: opts.platform }),
      // the worker's platform, as BuildKit's build platforms (BUILDPLATFORM, FROM --platform=$BUILDPLATFORM)
      buildPlatforms: [defaultPlatform()],
      ...(opts.sessionId === undefined ? {} : { sessionId: opts.sessionId }),
      metaResolver: resolver ?? (await imageResolver(opts.root === undefined ? undefined : callerPath(io, opts.root), io)),
      // Build-check warnings, as kiln build prints them (BuildKit's linter).
      onWarning: (w) => void io.stderr.write(`WARNING: ${w.location.file}:${w.location.line}:${w.location.column}: ${formatCheckWarning(w)}\n`),
      ...(excludePatterns.length > 0 ? { excludePatterns } : {}),
      // only the protobuf form carries Definition.source: JSON lines and DOT print ops alone
      ...(opts.format === 'pb' ? {} : { sourceMap: false }),
    });
    if (opts.format === 'json') {
      // JSON lines are written as they are made: a big build's text (megabytes) never has to
      // be held, and survive garbage collections, all at once
      if (opts.imageConfig !== undefined) await writeAtomic(callerPath(io, opts.imageConfig), res.imageConfigJson);
      for (const chunk of definitionJsonLineChunks(res.definition)) io.stdout.write(chunk);
    } else {
      const out = opts.format === 'dot' ? definitionToDot(res.definition) : encodeDefinition(res.definition);
      if (opts.imageConfig !== undefined) await writeAtomic(callerPath(io, opts.imageConfig), res.imageConfigJson);
      io.stdout.write(out);
    }
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    io.stderr.write(`${formatError(e, { file: name, text: new TextDecoder().decode(text) })}\n`);
    throw new CommanderError(1, e.code, e.message);
  }
}

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);
/** The syntax directive value that selects the kiln/ts frontend. */
const TS_SYNTAX = 'kiln/ts';

/**
 * The TypeScript build file `kiln llb` is asked for, if any: `-f FILE.ts`, `kiln llb FILE.ts`, or a
 * context holding `kiln.build.ts` and no Dockerfile (as `kiln build` picks it). `given` is for messages.
 */
async function tsBuildFile(contextArg: string, opts: LlbCommandOptions, io: CliIo): Promise<{ path: string; given: string } | undefined> {
  // a file of another name is one when its first line is `// syntax=kiln/ts` (kiln build forwards it so)
  const selectsTs = async (p: string): Promise<boolean> => p.endsWith('.ts') || detectSyntax(await readFile(p, 'utf8').catch(() => ''))?.cmdline === TS_SYNTAX;
  if (opts.file !== undefined) return opts.file !== '-' && (await selectsTs(callerPath(io, opts.file))) ? { path: callerPath(io, opts.file), given: opts.file } : undefined;
  if ((await isFile(callerPath(io, contextArg))) && (await selectsTs(callerPath(io, contextArg)))) return { path: callerPath(io, contextArg), given: contextArg };
  const dir = callerPath(io, contextArg);
  if (!(await isFile(join(dir, 'Dockerfile'))) && (await isFile(join(dir, DEFAULT_BUILD_FILE)))) return { path: join(dir, DEFAULT_BUILD_FILE), given: join(contextArg, DEFAULT_BUILD_FILE) };
  return undefined;
}

/** `kiln llb` of a kiln/ts build file: evaluated in the same sandbox as `kiln build` runs it. */
async function runTsLlb(file: { path: string; given: string }, opts: LlbCommandOptions, io: CliIo, resolver: ImageMetaResolver | undefined, context: string): Promise<void> {
  if (!(await isFile(file.path))) throw new CliError('KLN_CLI_READ', `cannot read ${file.given}: no such file`);
  // the context of `kiln llb FILE.ts` is the file's directory; its .dockerignore shapes local("context")
  const contextDir = (await isFile(context)) ? dirname(file.path) : context;
  try {
    const [res] = await compileBuildFile(basename(file.path), directoryReader(dirname(file.path)), {
      args: parseBuildArgs(opts.buildArg, callerEnv(io)),
      ...(opts.target === undefined ? {} : { target: opts.target }),
      ...(opts.platform === undefined ? {} : { platform: opts.platform }),
      ...(opts.localUniqueId === undefined ? {} : { localUniqueId: opts.localUniqueId }),
      // the image config needs the base image's: looked up only when it is asked for
      imageConfig: opts.imageConfig !== undefined,
      resolver: resolver ?? (await imageResolver(opts.root === undefined ? undefined : callerPath(io, opts.root), io)),
      warn: (message, l) => void io.stderr.write(`WARNING: ${l === undefined ? '' : `${l.file}:${l.line}:${l.column}: `}${message}\n`),
      // the build's console.log, on stderr (stdout is the LLB)
      log: (line) => void io.stderr.write(`${line}\n`),
      context: directoryReader(contextDir),
    });
    if (res === undefined) throw new CliError('KLN_CLI_READ', `${file.given} produced no result`);
    if (opts.imageConfig !== undefined) await writeAtomic(callerPath(io, opts.imageConfig), res.imageConfigJson);
    if (opts.format === 'json') for (const chunk of definitionJsonLineChunks(res.definition)) io.stdout.write(chunk);
    else io.stdout.write(opts.format === 'dot' ? definitionToDot(res.definition) : encodeDefinition(res.definition));
  } catch (e) {
    if (!(e instanceof TsDslError)) throw e;
    io.stderr.write(`error ${e.code}: ${e.message}\n${e.hint === undefined ? '' : `hint: ${e.hint}\n`}`);
    throw new CommanderError(1, e.code, e.message);
  }
}

/** Registers `kiln llb [CONTEXT] [-f FILE] [--target T] [--build-arg K=V]... [--platform P] [--session-id ID] [--format json|dot|pb] [--image-config FILE]`. */
export function registerLlb(program: Command, io: CliIo): void {
  program
    .command('llb')
    .description("print the LLB of a Dockerfile or a kiln/ts build file (FILE.ts) (JSON lines like `buildctl debug dump-llb`, DOT, or a marshaled pb.Definition)")
    .argument('[context]', 'build context directory, or a .ts build file', '.')
    .option('-f, --file <file>', 'Dockerfile (default: CONTEXT/Dockerfile; - for stdin)')
    .option('--target <stage>', 'stage to build (default: the last)')
    .option('--build-arg <name=value>', 'build argument (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--platform <os/arch[/variant]>', 'target platform (default: the host)')
    .option('--session-id <id>', 'session of the local sources (local.session); without it they get a stable local.unique')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'dot', 'pb']).default('json'))
    .option('--image-config <file>', 'also write the image config JSON (history included) to FILE')
    .option('--root <dir>', "resolve images from this kiln root's image store first, as `kiln build --root` does")
    .option('--local-unique-id <id>', 'kiln/ts build files: local.unique of local sources (default: a stable hash of the source)')
    .action(async (context: string, opts: LlbCommandOptions) => {
      await runLlb(context, opts, io);
    });
}
