/**
 * The `kiln/ts` {@link Frontend}: reads the build file (option `filename`, default
 * `kiln.build.ts`) and its relative imports through the client, bundles them, evaluates the
 * bundle in a sandboxed child `node` whose ctx calls the client answers, and returns the
 * solved result plus `containerimage.config` (per platform for `ctx.platforms`), as the
 * Dockerfile frontend does.
 */
import {
  CAPS_V0_11_6,
  ResultMetadataKey,
  decodeDefinition,
  encodeDefinition,
  formatPlatform,
  local,
  normalizeImageReference,
  parsePlatform,
} from '@kiln/llb-core';
import type { Definition, FileStat, Frontend, FrontendClient, FrontendResult, Ref } from '@kiln/llb-core';
import { TsDslError } from './errors.js';
import { evaluateBundle, type Evaluation, type Handlers } from './eval/host.js';
import type { InitParams, WireStat } from './eval/protocol.js';
import { bundleBuildFile, type SourceReader } from './load/bundle.js';
import { clientDockerignore } from './dockerignore.js';
import { TARGETS_REQUEST, checkRequest, targetsResult } from './subrequests.js';
import { platformsOf } from './platforms.js';

/** The build file name when the client names none. */
export const DEFAULT_BUILD_FILE = 'kiln.build.ts';

/** The frontend options `ctx` is made of (build args, target, platforms, named inputs). */
export function initParams(client: Pick<FrontendClient, 'opts' | 'inputs'>, extra: { localUniqueId?: string } = {}): InitParams {
  const args: Record<string, string> = {};
  for (const [k, v] of client.opts) if (k.startsWith('build-arg:')) args[k.slice('build-arg:'.length)] = v;
  const inputs: Record<string, string> = {};
  for (const [k, def] of client.inputs) if (k !== 'dockerfile') inputs[k] = Buffer.from(encodeDefinition(def)).toString('base64');
  const target = client.opts.get('target');
  // named contexts as BuildKit's dockerui reads them (docker-image:// and local: forms)
  const contexts: Record<string, { image: string } | { local: string }> = {};
  for (const [k, v] of client.opts) {
    if (!k.startsWith('context:')) continue;
    const name = k.slice('context:'.length);
    if (v.startsWith('docker-image://')) contexts[name] = { image: v.slice('docker-image://'.length) };
    else if (v.startsWith('local:')) contexts[name] = { local: v.slice('local:'.length) };
  }
  const resolveMode = client.opts.get('image-resolve-mode');
  if (resolveMode !== undefined && resolveMode !== 'default' && resolveMode !== 'pull' && resolveMode !== 'local') {
    throw new TsDslError('KLN0805', `invalid image-resolve-mode "${resolveMode}"`, { hint: 'use default, pull or local' });
  }
  return {
    args,
    ...(target === undefined || target === '' ? {} : { target }),
    platforms: platformsOf(client.opts.get('platform')),
    inputs,
    ...(resolveMode === 'pull' || resolveMode === 'local' ? { resolveMode } : {}),
    ...(Object.keys(contexts).length > 0 ? { contexts } : {}),
    caps: CAPS_V0_11_6,
    ...(extra.localUniqueId === undefined ? {} : { localUniqueId: extra.localUniqueId }),
  };
}

const toWire = (s: FileStat): WireStat => ({
  path: s.path,
  mode: s.mode,
  uid: s.uid,
  gid: s.gid,
  size: s.size,
  modTime: s.modTime.toString(),
  ...(s.linkname === undefined ? {} : { linkname: s.linkname }),
});

/**
 * Reads build sources: the entry input first, then (for imports) the entry file's directory.
 * `entry` is the build file's input, solved once (`<build file>.dockerignore` is read from it too).
 */
function clientReader(client: FrontendClient, filename: string): SourceReader & { entry(): Promise<Ref> } {
  let entry: Promise<Ref> | undefined;
  let sources: Promise<Ref> | undefined;
  const input: Definition | undefined = client.inputs.get('dockerfile') ?? client.inputs.get('context');
  const entryRef = async (): Promise<Ref> =>
    client.solve({
      definition: input ?? (await local('dockerfile', { followPaths: [filename], sharedKeyHint: 'dockerfile', customName: `[internal] load build definition from ${filename}` }).marshal()),
    });
  // The CLI's `dockerfile` input carries the entry file only; imports come from its directory.
  const sourcesRef = async (): Promise<Ref> =>
    client.solve({
      definition: await local('dockerfile', {
        includePatterns: ['**/*.ts', '**/*.mts', '**/*.js', '**/*.mjs', '**/*.json'],
        excludePatterns: ['**/node_modules'],
        sharedKeyHint: 'kiln-ts-sources',
        customName: `[internal] load imports of ${filename}`,
      }).marshal(),
    });
  const tryRead = (r: Ref, path: string): Promise<Uint8Array | undefined> => r.readFile(path).catch(() => undefined);
  return {
    entry: () => (entry ??= entryRef()),
    async read(path) {
      entry ??= entryRef();
      const fromEntry = await tryRead(await entry, path);
      if (fromEntry !== undefined || path === filename) return fromEntry;
      sources ??= sourcesRef();
      return tryRead(await sources, path);
    },
  };
}

/** The handlers that answer the evaluator's ctx calls through the client; `dockerignore` reads the ignore files through it. */
export function clientHandlers(client: FrontendClient, dockerignore: (name: string) => Promise<string[]>): Handlers {
  const refs = new Map<string, Ref>();
  const refOf = (id: string): Ref => {
    const r = refs.get(id);
    if (r === undefined) throw new TsDslError('KLN0804', `unknown ref ${id}`);
    return r;
  };
  return {
    async solve({ definition }) {
      const ref = await client.solve({ definition: decodeDefinition(new Uint8Array(Buffer.from(definition, 'base64'))) });
      const id = `r${refs.size + 1}`;
      refs.set(id, ref);
      return { ref: id };
    },
    readFile: async ({ ref, path }) => ({ data: Buffer.from(await refOf(ref).readFile(path)).toString('base64') }),
    readDir: async ({ ref, path, include }) => ({ entries: (await refOf(ref).readDir(path, include)).map(toWire) }),
    statFile: async ({ ref, path }) => ({ stat: toWire(await refOf(ref).statFile(path)) }),
    async resolveImageConfig({ ref, platform, resolveMode }) {
      const r = await client.resolveImageConfig(normalizeImageReference(ref), {
        ...(platform === undefined ? {} : { platform: parsePlatform(platform) }),
        ...(resolveMode === undefined ? {} : { resolveMode }),
        ...(client.signal === undefined ? {} : { signal: client.signal }),
      });
      return { digest: r.digest, config: Buffer.from(r.config).toString('base64') };
    },
    dockerignore: async ({ name }) => ({ patterns: await dockerignore(name) }),
    warn: (message, location) => client.warn({ message, ...(location === undefined ? {} : { file: location.file, line: location.line, column: location.column }) }),
    // The build's console.log lines, to progress as they come (a client without log drops them).
    ...(client.log === undefined ? {} : { log: (line: string) => client.log?.(line) }),
  };
}

/** Options of {@link createTsFrontend}. */
export interface TsFrontendOptions {
  /** Pins `local.unique` of local sources (tests, `kiln llb --local-unique-id`). */
  readonly localUniqueId?: string;
}

/**
 * Frontend options dockerui applies to every RUN or image source, which a DSL build sets in its
 * own code instead: [option, flag, what to do]. Each one given is a warning, not silence.
 */
const NOT_APPLIED: readonly (readonly [string, string, string])[] = [
  ['force-network-mode', '--network', 'set network in the build file (run options or .network())'],
  ['add-hosts', '--add-host', 'set it in the build file (.addHost())'],
  ['ulimit', '--ulimit', 'the DSL has no ulimit option'],
  ['shm-size', '--shm-size', 'mount a tmpfs at /dev/shm in the build file'],
  ['cgroup-parent', '--cgroup-parent', 'the DSL has no cgroup parent option'],
];

/** `label:K=V` options (buildx `--label`) added to an image config JSON, over the build's own. */
function withLabels(config: string, opts: ReadonlyMap<string, string>): string {
  const labels = [...opts].filter(([k]) => k.startsWith('label:')).map(([k, v]) => [k.slice('label:'.length), v] as const);
  if (labels.length === 0 || config === '') return config;
  const img = JSON.parse(config) as { config?: { Labels?: Record<string, string> } };
  img.config = { ...img.config, Labels: { ...img.config?.Labels, ...Object.fromEntries(labels) } };
  return JSON.stringify(img);
}

/** The result the gateway expects from an {@link Evaluation}: solved refs plus image configs. */
async function frontendResult(client: FrontendClient, ev: Evaluation): Promise<FrontendResult> {
  const enc = new TextEncoder();
  const def = (b64: string): Definition => decodeDefinition(new Uint8Array(Buffer.from(b64, 'base64')));
  // one platform is a single result, as the Dockerfile frontend returns it
  if (!ev.multi || ev.results.length === 1) {
    const r = ev.results[0];
    if (r === undefined) throw new TsDslError('KLN0804', 'the evaluator returned no result');
    const ref = await client.solve({ definition: def(r.definition) });
    return { ref, metadata: new Map([[ResultMetadataKey.imageConfig, enc.encode(withLabels(r.config, client.opts))]]) };
  }
  const refs = new Map<string, Ref>();
  const metadata = new Map<string, Uint8Array>();
  for (const r of ev.results) {
    const key = formatPlatform(parsePlatform(r.platform));
    refs.set(key, await client.solve({ definition: def(r.definition) }));
    metadata.set(`${ResultMetadataKey.imageConfig}/${key}`, enc.encode(withLabels(r.config, client.opts)));
  }
  const ids = [...refs.keys()];
  metadata.set(ResultMetadataKey.platforms, enc.encode(JSON.stringify({ platforms: ids.map((id) => ({ id, platform: parsePlatform(id) })) })));
  return { refs, metadata };
}

/** Creates the `kiln/ts` frontend. */
export function createTsFrontend(options: TsFrontendOptions = {}): Frontend {
  return async (client: FrontendClient): Promise<FrontendResult> => {
    const filename = client.opts.get('filename') ?? DEFAULT_BUILD_FILE;
    const described = checkRequest(client.opts.get('requestid'));
    if (described !== undefined) return described;
    for (const [opt, flag, todo] of NOT_APPLIED) {
      if (client.opts.has(opt)) client.warn({ message: `the kiln/ts frontend does not apply ${flag} (${opt}): ${todo}` });
    }
    const reader = clientReader(client, filename);
    const bundle = await bundleBuildFile(filename, reader);
    const handlers = clientHandlers(client, clientDockerignore(client, filename, reader.entry));
    // --call=targets: the build file's targets export is listed, nothing is built
    const listing = client.opts.get('requestid') === TARGETS_REQUEST;
    const init = { ...initParams(client, options), ...(listing ? { listTargets: true } : {}) };
    const ev = await evaluateBundle(bundle, init, handlers, client.signal === undefined ? {} : { signal: client.signal });
    return listing ? targetsResult(ev.targets ?? []) : frontendResult(client, ev);
  };
}
