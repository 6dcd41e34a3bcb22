/**
 * The Dockerfile {@link Frontend}: reads the Dockerfile through the client (the `dockerfile`
 * input, else the `context` input, else a `dockerfile` local source; with a git or http(s) URL
 * as the `context` option, from that remote context, see remote-context.ts), converts it with the
 * client's frontend options (BuildKit's dockerui keys: `filename`, `target`, `platform`,
 * `build-arg:NAME`, `context:NAME`, `label:NAME`, `add-hosts`, `hostname`, `image-resolve-mode`,
 * `force-network-mode`, `shm-size`, `ulimit`, `cgroup-parent`, `no-cache`, `multi-platform`, and
 * the build args `BUILDKIT_CACHE_MOUNT_NS`, `BUILDKIT_SANDBOX_HOSTNAME`, `BUILDKIT_MULTI_PLATFORM`)
 * and returns the solved ref (or one per platform) plus `containerimage.config`.
 * It solves nothing itself beyond reading the Dockerfile and handing over the Definition.
 */
import { ResultMetadataKey, defaultPlatform, formatPlatform, fromDefinition, local, parsePlatform } from '@kiln/llb-core';
import type { Definition, Frontend, FrontendAttestation, FrontendClient, FrontendResult, Ref } from '@kiln/llb-core';
import { KilnError } from './errors.js';
import { convertDockerfile } from './convert/convert.js';
import type { ConvertOptions, ConvertResult } from './convert/options.js';
import { parseGoBool } from './instructions/mount.js';
import { namedContexts } from './named-contexts.js';
import { checkDownloadedDockerfile, missingDockerfile, redactUrl, remoteContext, scopeContext, solveRemoteContext, type RemoteContext } from './remote-context.js';
import { detectSyntax } from './parser/directives.js';
import { parseDockerignore } from '@kiln/llb-core';
import { checkWarningKey, formatCheckWarning, type CheckWarning } from './lint/linter.js';
import { subrequest } from './subrequests.js';
import { ATTEST_SBOM, createSBOMScanner, parseAttestOptions, sbomBundle, type SBOMScanner } from './sbom.js';

/** Defaults the frontend cannot get from the client options. */
export interface DockerfileFrontendOptions {
  /** Session serving the local sources (`local.session`). */
  readonly sessionId?: string;
  /** Extra conversion options (caps, localUniqueId, …). */
  readonly convert?: Omit<ConvertOptions, 'buildArgs' | 'target' | 'targetPlatform' | 'metaResolver' | 'file' | 'namedContexts'>;
}

const BUILD_ARG = 'build-arg:';
const LABEL = 'label:';
/** `--build-arg BUILDKIT_CACHE_MOUNT_NS=ns`: cache mount IDs become `ns/<id>`. */
const CACHE_NS_ARG = `${BUILD_ARG}BUILDKIT_CACHE_MOUNT_NS`;
/** `--build-arg BUILDKIT_SANDBOX_HOSTNAME=h`: the hostname of every RUN (wins over `hostname`). */
const HOSTNAME_ARG = `${BUILD_ARG}BUILDKIT_SANDBOX_HOSTNAME`;
/** `--build-arg BUILDKIT_MULTI_PLATFORM=1`: a platform map even for one platform. */
const MULTI_PLATFORM_ARG = `${BUILD_ARG}BUILDKIT_MULTI_PLATFORM`;

/** `add-hosts`: `host=ip` or `host:ip` entries, comma-separated (buildx `--add-host`). */
function extraHosts(value: string | undefined): { host: string; ip: string }[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((entry) => {
    const e = entry.trim();
    const i = e.includes('=') ? e.indexOf('=') : e.indexOf(':');
    const host = i < 0 ? '' : e.slice(0, i);
    const ip = i < 0 ? '' : e.slice(i + 1);
    if (host === '' || ip === '' || !isIp(ip)) throw new KilnError('KLN0504', `invalid add-host "${e}"`, { hint: 'use HOST=IP or HOST:IP, e.g. --add-host db=10.0.0.5' });
    return { host: host.toLowerCase(), ip };
  });
}

function isIp(s: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return s.split('.').every((o) => Number(o) <= 255);
  return /^[0-9a-f:]+$/i.test(s) && s.includes(':');
}

/** The names docker/go-units ParseUlimit accepts (dockerui parses `ulimit` with it). */
const ULIMIT_NAMES: readonly string[] = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** `ulimit`: `name=soft[:hard]` entries, comma-separated (buildx `--ulimit nofile=1024:2048`). */
function parseUlimits(value: string | undefined): { name: string; soft: number; hard: number }[] {
  if (value === undefined || value.trim() === '') return [];
  return value.split(',').map((entry) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(entry.trim());
    if (m === null) throw new KilnError('KLN0504', `invalid ulimit "${entry}"`, { hint: 'use NAME=SOFT[:HARD], e.g. --ulimit nofile=1024:2048' });
    if (!ULIMIT_NAMES.includes(m[1] as string)) {
      throw new KilnError('KLN0504', `invalid ulimit type: ${m[1] as string}`, { hint: `use one of ${ULIMIT_NAMES.join(', ')}` });
    }
    const soft = Number(m[2]);
    const hard = m[3] === undefined ? soft : Number(m[3]);
    const inf = (n: number): number => (n < 0 ? Number.POSITIVE_INFINITY : n);
    if (inf(soft) > inf(hard)) throw new KilnError('KLN0504', `invalid ulimit "${entry}": the soft limit is above the hard one`);
    return { name: m[1] as string, soft, hard };
  });
}

/** The dockerui options that shape every RUN and the image (labels, hosts, network, resolve mode). */
function runOptions(opts: ReadonlyMap<string, string>): Partial<ConvertOptions> {
  const labels: Record<string, string> = {};
  for (const [k, v] of opts) if (k.startsWith(LABEL)) labels[k.slice(LABEL.length)] = v;
  const hosts = extraHosts(opts.get('add-hosts'));
  const sandboxHostname = opts.get(HOSTNAME_ARG);
  const hostname = sandboxHostname !== undefined && sandboxHostname !== '' ? sandboxHostname : opts.get('hostname');
  const resolve = opts.get('image-resolve-mode');
  if (resolve !== undefined && resolve !== 'default' && resolve !== 'pull' && resolve !== 'local') {
    throw new KilnError('KLN0504', `invalid image-resolve-mode "${resolve}"`, { hint: 'use default, pull or local' });
  }
  const net = opts.get('force-network-mode');
  if (net !== undefined && net !== 'default' && net !== 'sandbox' && net !== 'host' && net !== 'none') {
    throw new KilnError('KLN0504', `invalid network mode "${net}"`, { hint: 'use default, none or host' });
  }
  const shm = opts.get('shm-size');
  if (shm !== undefined && shm !== '' && !/^\d+$/.test(shm)) throw new KilnError('KLN0504', `invalid shm-size "${shm}"`, { hint: 'a size in bytes, e.g. 134217728' });
  const ulimits = parseUlimits(opts.get('ulimit'));
  const cgroupParent = opts.get('cgroup-parent');
  // Build args dockerui reads as options (frontend/dockerui/config.go keyCacheNSArg,
  // keyHostnameArg); they also stay ordinary build args.
  const cacheNs = opts.get(CACHE_NS_ARG);
  return {
    ...(cacheNs === undefined || cacheNs === '' ? {} : { cacheIdNamespace: cacheNs }),
    ...(shm === undefined || shm === '' || shm === '0' ? {} : { shmSize: Number(shm) }),
    ...(ulimits.length > 0 ? { ulimits } : {}),
    ...(cgroupParent === undefined || cgroupParent === '' ? {} : { cgroupParent }),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(hosts.length > 0 ? { extraHosts: hosts } : {}),
    ...(hostname === undefined || hostname === '' ? {} : { hostname }),
    ...(resolve === undefined ? {} : { resolveMode: resolve }),
    ...(net === undefined || net === 'sandbox' || net === 'default' ? {} : { forceNetworkMode: net }),
  };
}

async function readDockerfile(client: FrontendClient, filename: string, sessionId: string | undefined, remote: RemoteContext | undefined): Promise<{ dockerfile: Uint8Array; ignore: Uint8Array | undefined }> {
  // `dockerfilekey`: the client sends the Dockerfile as that local source (buildx with -f - or an
  // absolute -f beside a remote context); else a remote context holds it.
  const localKey = client.opts.get('dockerfilekey');
  if (remote !== undefined && localKey === undefined) {
    const ref = await solveRemoteContext(client, remote);
    const dockerfile = await readWithLowercase(ref, filename).catch((e: unknown) => {
      throw missingDockerfile(remote, filename, e);
    });
    checkDownloadedDockerfile(remote, dockerfile);
    // BuildKit reads `<Dockerfile>.dockerignore` here too, but nothing of a remote context is excluded.
    return { dockerfile, ignore: undefined };
  }
  let def: Definition | undefined = localKey === undefined ? (client.inputs.get('dockerfile') ?? client.inputs.get('context')) : undefined;
  if (def === undefined) {
    const name = localKey ?? 'dockerfile';
    def = await local(name, {
      ...(sessionId === undefined ? {} : { sessionId }),
      followPaths: [filename, `${filename}.dockerignore`],
      sharedKeyHint: name,
      customName: `[internal] load build definition from ${filename}`,
    }).marshal();
  }
  const ref = await client.solve({ definition: def });
  const dockerfile = await ref.readFile(filename);
  // `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's .dockerignore.
  const ignore = await ref.readFile(`${filename}.dockerignore`).catch(() => undefined);
  return { dockerfile, ignore };
}

/** `filename`, else (when it is a `Dockerfile`) a lowercase `dockerfile` beside it, as BuildKit's builder reads. */
async function readWithLowercase(ref: Ref, filename: string): Promise<Uint8Array> {
  try {
    return await ref.readFile(filename);
  } catch (e) {
    const slash = filename.lastIndexOf('/');
    if (filename.slice(slash + 1) !== 'Dockerfile') throw e;
    return ref.readFile(`${filename.slice(0, slash + 1)}dockerfile`).catch(() => Promise.reject(e));
  }
}

/**
 * A Dockerfile of a remote context whose `# syntax=` names a frontend: run that frontend with
 * these options (plus `source` and `cmdline`) and inputs, as BuildKit's builder forwards. The
 * gateway chose the frontend before this one ran, but could not read a remote Dockerfile then.
 */
async function forwardSyntax(client: FrontendClient, dockerfile: Uint8Array): Promise<FrontendResult | undefined> {
  const opts = client.opts;
  if (client.solveFrontend === undefined || opts.has('cmdline') || opts.has(`${BUILD_ARG}BUILDKIT_SYNTAX`)) return undefined;
  const syntax = detectSyntax(new TextDecoder().decode(dockerfile));
  if (syntax === undefined) return undefined;
  const forwarded = new Map(opts).set('source', syntax.ref).set('cmdline', syntax.cmdline);
  return client.solveFrontend({ frontend: syntax.ref, opts: forwarded, inputs: client.inputs, ...(client.signal === undefined ? {} : { signal: client.signal }) });
}

/** The build context's `.dockerignore`, when there is one (BuildKit's dockerui reads it the same way). */
async function readContextIgnore(client: FrontendClient, sessionId: string | undefined): Promise<Uint8Array | undefined> {
  const def =
    client.inputs.get('context') ??
    (await local('context', {
      ...(sessionId === undefined ? {} : { sessionId }),
      followPaths: ['.dockerignore'],
      sharedKeyHint: 'context-.dockerignore',
      customName: '[internal] load .dockerignore',
    }).marshal());
  const ref = await client.solve({ definition: def });
  return ref.readFile('.dockerignore').catch(() => undefined);
}

/**
 * Whether the result is a platform map (BuildKit dockerui: more than one target platform, or the
 * `multi-platform` option / `BUILDKIT_MULTI_PLATFORM` build arg, which wins when non-empty).
 */
function multiPlatformRequested(opts: ReadonlyMap<string, string>, platformCount: number): boolean {
  let multi = platformCount > 1;
  const arg = opts.get(MULTI_PLATFORM_ARG);
  const v = arg !== undefined && arg !== '' ? arg : opts.get('multi-platform');
  if (v !== undefined && v !== '') {
    const b = parseGoBool(v);
    if (b === undefined) throw new KilnError('KLN0504', `invalid boolean value for multi-platform: ${v}`, { hint: 'use true or false' });
    if (!b && multi) throw new KilnError('KLN0504', 'conflicting config: returning multiple target platforms is not allowed', { hint: 'drop multi-platform=false or build one platform' });
    multi = b;
  }
  return multi;
}

/** Build a Dockerfile frontend with defaults the client options do not carry. */
export function createDockerfileFrontend(defaults: DockerfileFrontendOptions = {}): Frontend {
  return async (client: FrontendClient): Promise<FrontendResult> => {
    const opts = client.opts;
    // A git or http(s) URL as the `context` option: the context (and Dockerfile) come from there.
    const remote = await remoteContext(client);
    // BuildKit reads the sent Dockerfile by the name `context` then, and fails to find it.
    if (remote?.kind === 'file' && opts.has('dockerfilekey')) {
      throw new KilnError('KLN0504', `the build context ${redactUrl(remote.url)} is a Dockerfile, not an archive: it cannot be built with another Dockerfile`, { hint: 'drop -f, or serve a tar archive as the context' });
    }
    const filename = remote?.filename ?? opts.get('filename') ?? 'Dockerfile';
    const { dockerfile, ignore } = await readDockerfile(client, filename, defaults.sessionId, remote);
    if (remote !== undefined) {
      const forwarded = await forwardSyntax(client, dockerfile);
      if (forwarded !== undefined) return forwarded;
    }
    const ignoreFile = remote !== undefined ? undefined : (ignore ?? (await readContextIgnore(client, defaults.sessionId)));
    const excludePatterns = ignoreFile === undefined ? [] : parseDockerignore(new TextDecoder().decode(ignoreFile));
    const named = await namedContexts(client, defaults.sessionId);
    // The converter takes the main context from a `context` entry (a --build-context named
    // `context` still wins, as it would over a local context).
    if (remote !== undefined && !named.has('context')) named.set('context', { state: scopeContext(client, remote.state) });
    // A `context` input is the main context (dockerui: inputs["context"]), as a nested frontend
    // or an LLBBridge client passes another build's result instead of a local directory.
    const contextInput = remote === undefined ? client.inputs.get('context') : undefined;
    if (contextInput !== undefined && !named.has('context')) named.set('context', { state: scopeContext(client, fromDefinition(contextInput)) });
    const buildArgs = new Map<string, string>();
    for (const [k, v] of opts) if (k.startsWith(BUILD_ARG)) buildArgs.set(k.slice(BUILD_ARG.length), v);
    const platforms = (opts.get('platform') ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
    // Build-check warnings go to the client once, even when every platform converts the file.
    const warned = new Set<string>();
    const onWarning = (w: CheckWarning): void => {
      const key = checkWarningKey(w);
      if (warned.has(key)) return;
      warned.add(key);
      client.warn({ message: formatCheckWarning(w), file: w.location.file, line: w.location.line, column: w.location.column });
    };
    // A no-cache stage name no stage has, once however many platforms convert the file.
    const unmatched = (res: ConvertResult): void => {
      for (const m of res.unmatchedNoCache) {
        if (warned.has(`no-cache ${m}`)) continue;
        warned.add(`no-cache ${m}`);
        client.warn({ message: `--no-cache-filter: ${m}` });
      }
    };
    const base: ConvertOptions = {
      ...defaults.convert,
      ...runOptions(opts),
      file: filename,
      buildArgs,
      onWarning,
      metaResolver: client,
      // BUILDPLATFORM is the worker's, as dockerui takes it: the first platform of the first worker
      // (under buildkitd, its Ping; in kiln, the host: kiln runs no emulator), that one alone, so
      // an image of a platform the worker emulates does not become the default target's
      // (autoDetectPlatform). Left out, every target platform became its own build platform: a
      // `FROM --platform=$BUILDPLATFORM` stage ran once per target, on the target's image.
      buildPlatforms: [client.workerPlatforms?.[0] ?? defaultPlatform()],
      namedContexts: named,
      ...(excludePatterns.length > 0 ? { excludePatterns } : {}),
      ...(defaults.sessionId === undefined ? {} : { sessionId: defaults.sessionId }),
      ...(opts.get('target') ? { target: opts.get('target') as string } : {}),
      ...(opts.has('no-cache') ? { noCache: (opts.get('no-cache') ?? '') === '' ? true : (opts.get('no-cache') ?? '').split(',') } : {}),
      ...(client.signal === undefined ? {} : { signal: client.signal }),
    };
    const enc = new TextEncoder();
    const answer = await subrequest(opts.get('requestid'), dockerfile, base, platforms, filename);
    if (answer !== undefined) return answer;
    // `attest:sbom`: the scanner is resolved before the build, as builder/build.go does; no
    // option, no change (same LLB, same result).
    const scanner = await sbomScanner(client, opts);
    if (!multiPlatformRequested(opts, platforms.length)) {
      const res = await convertDockerfile(dockerfile, { ...base, ...(platforms[0] === undefined ? {} : { targetPlatform: platforms[0] }) });
      unmatched(res);
      const ref = await client.solve({ definition: res.definition });
      const metadata = new Map([[ResultMetadataKey.imageConfig, enc.encode(res.imageConfigJson)]]);
      if (scanner === undefined) return { ref, metadata };
      const key = formatPlatform(res.targetPlatform);
      return { ref, metadata, attestations: new Map([[key, [await scan(client, scanner, key, res)]]]) };
    }
    const refs = new Map<string, Ref>();
    const metadata = new Map<string, Uint8Array>();
    const attestations = new Map<string, FrontendAttestation[]>();
    const keys: string[] = [];
    // No `platform` option: the one default target platform, still returned as a platform map.
    for (const p of platforms.length > 0 ? platforms : [undefined]) {
      const res = await convertDockerfile(dockerfile, { ...base, ...(p === undefined ? {} : { targetPlatform: p }), multiPlatform: true });
      unmatched(res);
      const key = formatPlatform(res.targetPlatform);
      refs.set(key, await client.solve({ definition: res.definition }));
      metadata.set(`${ResultMetadataKey.imageConfig}/${key}`, enc.encode(res.imageConfigJson));
      keys.push(key);
      if (scanner !== undefined) attestations.set(key, [await scan(client, scanner, key, res)]);
    }
    metadata.set(ResultMetadataKey.platforms, enc.encode(JSON.stringify({ platforms: keys.map((id) => ({ id, platform: parsePlatform(id) })) })));
    return attestations.size === 0 ? { refs, metadata } : { refs, metadata, attestations };
  };
}

/** The SBOM scanner `attest:sbom` asks for (BuildKit's `generator`, default the syft scanner), if any. */
async function sbomScanner(client: FrontendClient, opts: ReadonlyMap<string, string>): Promise<SBOMScanner | undefined> {
  const attrs = parseAttestOptions(opts).get(ATTEST_SBOM);
  if (attrs === undefined) return undefined;
  const generator = attrs.get('generator');
  if (generator === undefined || generator === '') throw new KilnError('KLN0511', 'sbom scanner cannot be empty', { hint: 'use attest:sbom=generator=<image> or leave generator out for the default' });
  return createSBOMScanner(client, generator, client.signal);
}

/**
 * Runs the scan of one platform's result and returns its bundle attestation: the result, plus
 * the build context and stages `BUILDKIT_SBOM_SCAN_CONTEXT`/`_STAGE` turn on; uncached when
 * one of them is under `no-cache` (dockerfile2llb SBOMTargets).
 */
async function scan(client: FrontendClient, scanner: SBOMScanner, key: string, res: ConvertResult): Promise<FrontendAttestation> {
  const definition = await scanner(key, { core: res.state, extras: res.sbom.extras, ignoreCache: res.sbom.ignoreCache }).marshal();
  return sbomBundle(await client.solve({ definition }));
}

/** The Dockerfile frontend with default options (see {@link createDockerfileFrontend}). */
export const dockerfileFrontend: Frontend = createDockerfileFrontend();
