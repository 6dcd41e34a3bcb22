import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { formatReference, parseOutputSpec, parseReference, type ExportResult } from '@kiln/runtime';
import { callMetadata, resultMetadata } from '../engine/result-metadata.js';
import { MISSING_DOCKERFILE_HINT, parseFlags } from '../commands/build.js';
import { BrokenPipeError, callerEnv, callerPath, writeWarning, type BuildWarning, type CliIo } from '../io.js';
import { kilnRoot, ReportedError, startProgress, withInterrupt } from '../engine/cli-support.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { gcAfterBuild } from '../engine/auto-gc.js';
import { callerCredentials } from '../engine/credentials.js';
import { formatBuildError } from '../engine/report.js';
import type { KilnEngine } from '../engine/engine.js';
import { fileTarget, removeTarget, writeTarget } from '../engine/file-target.js';
import { canonicalKey, parseOverrides, printResolved, resolveTargets, type BakeConfig, type Resolved } from './config.js';
import { entitlementsError, fsChecksEnabled, missingEntitlements, parseEntitlements, setGrants, targetAccess, type EntitlementConf } from './entitlements.js';
import { CodedError } from '../coded-error.js';
import { BakeError, type BakeLocation } from './errors.js';
import { CALLS, parseCall } from '../engine/call-spec.js';
import { EngineError } from '../engine/errors.js';
import { emitTargetResults, parseExecution, targetsFailedError } from './execution.js';
import { CWD_PREFIX, readBakeFiles } from './files.js';
import { targetBuild, type TargetBuild } from './flags.js';
import { listBake } from './list.js';
import { loadConfig } from './load.js';
import { bakeArgs, fetchRemoteDefinition, printView, type FetchedDefinition, type RemoteDefinition } from './remote.js';
import { BakeProgress } from './progress.js';
import { bakeRecorder } from '../history/describe.js';
import { runTargets, type TargetRequest } from './schedule.js';

/** Parsed flags of `kiln bake`. */
export interface BakeFlags {
  readonly file: string[];
  readonly set: string[];
  /** `--var NAME=VALUE`: a variable's value (over the environment). */
  readonly var?: string[];
  /** `--allow ENTITLEMENT[=PATH]`: what the targets may ask for (buildx's grants; see entitlements.ts). */
  readonly allow?: string[];
  readonly print?: boolean;
  readonly list?: string;
  readonly push?: boolean;
  readonly load?: boolean;
  readonly cache: boolean;
  readonly pull?: boolean;
  readonly progress: string;
  readonly root?: string;
  /** `--metadata-file`: each target's result metadata, keyed by target, as buildx bake writes it. */
  readonly metadataFile?: string;
  /** `--call` / `--check`: as `--set *.call=…`. */
  readonly call?: string;
  readonly check?: boolean;
  /** `--provenance` / `--sbom`: as `--set *.attest=type=provenance|sbom,…`. */
  readonly provenance?: string | boolean;
  readonly sbom?: string | boolean;
  /** `--execution fail-fast|defer-output|defer-error` (see docs/bake.md). */
  readonly execution?: string;
}

/** buildx's `--provenance`/`--sbom` shorthand as an `attest` entry. */
function attestShorthand(type: string, v: string | boolean): string {
  if (v === true || v === 'true' || v === '') return `type=${type}`;
  if (v === false || v === 'false') return `type=${type},disabled=true`;
  return `type=${type},${v}`;
}

/** `--var NAME=VALUE` values (buildx: they win over the environment). */
function parseVars(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new BakeError('KLN0854', `invalid --var "${v}"`, { hint: 'use --var NAME=VALUE' });
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** `--load`: refused before anything is read or fetched. */
function refuseLoad(flags: BakeFlags): void {
  if (flags.load === true) {
    throw new BakeError('KLN0855', '--load is not applicable: kiln has no Docker daemon to load images into', {
      hint: "tags without an output store the image in kiln's image store (see kiln images); --set TARGET.output=type=docker,dest=FILE.tar writes a tarball for docker load",
    });
  }
}

/**
 * Reads the bake files (with `--var` values) into one definition: the local ones, or those of a
 * remote definition followed by the `-f cwd://FILE` ones, as buildx's readBakeFiles orders them.
 */
/** A bad `--call` is refused before any file is read, not once per target as it starts. */
function checkCall(flags: BakeFlags): void {
  try {
    parseCall(flags.call);
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    throw new BakeError('KLN0855', e.message, { hint: `use --call=${CALLS.join('|')}[,format=json]` });
  }
}

export async function loadBake(flags: BakeFlags, io: CliIo, remote?: { readonly definition: RemoteDefinition; readonly cmdContext: string }): Promise<BakeConfig> {
  refuseLoad(flags);
  checkCall(flags);
  const local = remote === undefined ? flags.file : flags.file.filter((f) => f.startsWith(CWD_PREFIX));
  const files = remote === undefined ? await readBakeFiles(local, io) : [...remote.definition.files, ...(local.length === 0 ? [] : await readBakeFiles(local, io))];
  return loadConfig(files, callerEnv(io), parseVars(flags.var ?? []), remote === undefined ? {} : { cmdContext: remote.cmdContext });
}

/** Resolves the requested targets of `config` with the flags' overrides. */
export function resolveBake(config: BakeConfig, targets: readonly string[], flags: BakeFlags, io: CliIo): Resolved & { readonly dirs: ReadonlyMap<string, string> } {
  // buildx appends the command's shorthands to the --set values.
  const sets = [...flags.set];
  if (config.targets.size > 0) {
    if (flags.cache === false) sets.push('*.no-cache=true');
    if (flags.pull === true) sets.push('*.pull=true');
    if (flags.push === true) sets.push('*.push=true');
    if (flags.check === true) sets.push('*.call=check');
    else if (flags.call !== undefined) sets.push(`*.call=${flags.call}`);
    if (flags.provenance !== undefined) sets.push(`*.attest=${attestShorthand('provenance', flags.provenance)}`);
    if (flags.sbom !== undefined) sets.push(`*.attest=${attestShorthand('sbom', flags.sbom)}`);
  }
  const resolved = resolveTargets(config, targets, parseOverrides(config, sets, callerEnv(io)));
  return { ...resolved, dirs: config.dirs };
}

/**
 * `kiln bake`: every target's build runs at once in one engine (steps the builds share run
 * once, through the engine's shared solver) with one progress stream; a target named by another's
 * `target:NAME` context is built first and its result given as that named context. A failure
 * cancels the other targets (`--execution fail-fast`, buildx's default), or lets the independent
 * ones finish (`defer-error`); `defer-output` holds every export until every target solved.
 * Each failure is printed with its target, then which targets failed, were cancelled or did not
 * start (exit 1).
 */
export async function bakeCommand(names: readonly string[], flags: BakeFlags, io: CliIo, debug = false): Promise<void> {
  const cleanup: (() => Promise<void>)[] = [];
  let lease: EngineLease | undefined;
  let cancelled = false;
  let display: ReturnType<typeof startProgress> | undefined;
  /** What each failed target printed, and why a target did not start. */
  const failures: string[] = [];
  let failedError: BakeError | undefined;
  const callFailed: string[] = [];
  const privateImages: string[] = [];
  const metadata: Record<string, Record<string, unknown>> = {};
  let fetched: FetchedDefinition | undefined;
  let begun = false;
  try {
    const mode = parseExecution(flags.execution);
    // buildx's --allow grants what the targets ask for (it adds nothing to them); checked before any fetch.
    const granted = parseEntitlements(flags.allow ?? []);
    if (flags.print === true && flags.list !== undefined) throw new BakeError('KLN0854', '--print and --list cannot be used together', { hint: 'drop one of them' });
    // `kiln bake URL [CMD-CONTEXT-URL] [TARGET…]`: the files come from the URL, fetched once here.
    const args = bakeArgs(names);
    const url = args.url;
    if (url !== undefined) {
      refuseLoad(flags);
      const l = (lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path }));
      const d = (display = startProgress(flags.progress, io));
      const remoteNames = flags.file.filter((f) => !f.startsWith(CWD_PREFIX));
      fetched = await l.engine.credentials.run(callerCredentials(io), () =>
        withInterrupt(io, async (signal) => {
          await l.begin(signal);
          begun = true;
          return fetchRemoteDefinition(l.engine, url, remoteNames, io, { progress: d.sink, signal });
        }),
      );
      await d.finish();
      display = undefined;
    }
    const remote = fetched?.definition;
    const config = await loadBake(flags, io, remote === undefined ? undefined : { definition: remote, cmdContext: args.cmdContext });
    if (flags.list !== undefined) {
      io.stdout.write(listBake(config, flags.list));
      return;
    }
    const resolved = resolveBake(config, args.targets, flags, io);
    if (flags.print === true) {
      io.stdout.write(printResolved(remote === undefined ? resolved : printView(resolved, remote)));
      return;
    }
    if (resolved.targets.size === 0) throw new BakeError('KLN0853', 'no targets to build');
    const metaFile = flags.metadataFile === undefined ? undefined : await fileTarget(io, '--metadata-file', flags.metadataFile);
    // As buildx: a failed bake must not leave the previous run's metadata there.
    if (metaFile !== undefined) await removeTarget(metaFile);
    const env = callerEnv(io);
    const inlineDir = await mkdtemp(join(tmpdir(), 'kiln-bake-'));
    cleanup.push(() => rm(inlineDir, { recursive: true, force: true }));
    const fileRelative = env['BUILDX_BAKE_FILE_RELATIVE_PATHS'] === '1' || env['BUILDX_BAKE_FILE_RELATIVE_PATHS'] === 'true';
    const builds: TargetBuild[] = [];
    for (const rt of resolved.targets.values()) {
      builds.push(await targetBuild(rt, { progress: flags.progress, ...(flags.root === undefined ? {} : { root: flags.root }) }, io, { fileDir: resolved.dirs.get(rt.name), fileRelative, inlineDir, remote }));
    }
    for (const b of builds) for (const w of b.warnings) io.stderr.write(`WARNING: ${w}\n`);
    // buildx's entitlements check: before any target is parsed (an output's probe file), fetched or run.
    const denied = await checkEntitlements(builds, granted, flags.set, io, url !== undefined);
    if (denied !== undefined) throw denied;
    // Targets that are some target's context export their result as an image of kiln's store
    // (a private name, removed afterwards) that the other build reads as docker-image://.
    const linkedNames = new Set(builds.flatMap((b) => [...b.links.values()]));
    // Every target's request is made before anything runs: a bad value fails the whole bake at once.
    const requests = new Map<string, TargetRequest>();
    for (const b of builds) {
      const { req, outputs } = await parseFlags(b.context, b.flags, io, cleanup).catch((e: unknown) => {
        throw inTarget(e, b.name, config.locations.get(b.name));
      });
      const ref = linkedNames.has(b.name) ? formatReference(parseReference(`kiln.local/bake/${b.name.toLowerCase()}-${randomBytes(4).toString('hex')}:latest`)) : undefined;
      requests.set(b.name, {
        req,
        outputs,
        build: b,
        ...(ref === undefined ? {} : { link: { ref, output: parseOutputSpec(`type=image,name=${ref}`) } }),
        linkedOnly: resolved.targets.get(b.name)?.linked ?? false,
      });
    }
    const l = (lease ??= await acquireEngine(io, { root: kilnRoot(flags.root, io).path }));
    const d = (display = startProgress(flags.progress, io));
    const e = l.engine;
    const outcomes = await e.credentials.run(callerCredentials(io), () =>
      withInterrupt(io, async (signal) => {
        if (!begun) await l.begin(signal);
        const results = await runTargets(requests, {
          engine: e,
          mode,
          progress: new BakeProgress(d.sink),
          signal,
          onWarning: (w: BuildWarning): void => writeWarning(io, w),
          onCacheWarning: (name, m) => void io.stderr.write(`WARNING: [${name}] ${m}\n`),
          onPrivateImage: (name) => void privateImages.push(name),
          record: bakeRecorder(io, e.root),
        });
        // Ctrl-C: every build stopped with it; one report of the interrupt, exit 130, as kiln build.
        if (signal.aborted) throw signal.reason;
        return results;
      }),
    );
    const statuses = new Map([...outcomes].map(([n, o]) => [n, o.status]));
    const ok = [...statuses.values()].every((s) => s === 'succeeded');
    // buildx's `[internal] target results` step closes a failed bake of several targets.
    if (!ok && statuses.size > 1) emitTargetResults(d.sink, statuses);
    await d.finish();
    display = undefined;
    if (!ok) failedError = targetsFailedError(statuses, mode);
    for (const [name, o] of outcomes) {
      if (o.status === 'failed') {
        failures.push(`target ${name} failed:\n${formatBuildError(o.error, { ...(o.dockerfileText === undefined ? {} : { dockerfileText: o.dockerfileText }), dockerfileName: o.dockerfileName })}`);
        if (debug && o.error instanceof Error && o.error.stack !== undefined) failures.push(`${o.error.stack}\n`);
        continue;
      }
      if (o.status === 'not started' && o.reason !== undefined) failures.push(`target ${name} did not start: ${o.reason}\n`);
      if (o.status !== 'succeeded') continue;
      if (o.report.call !== undefined) {
        io.stdout.write(`${name}:\n${o.report.call.text}`);
        if (o.report.call.failed) callFailed.push(name);
      } else await o.outputs.deliver(io);
      const privateRef = requests.get(name)?.link?.ref;
      printExports(name, o.report.exports, privateRef, io);
      if (metaFile !== undefined && !(resolved.targets.get(name)?.linked ?? false)) {
        // A --call target: its result metadata, as buildx bake writes it.
        metadata[name] = o.report.call !== undefined ? callMetadata(o.report.call.metadata) : (await resultMetadata(e.content, o.report.exports.filter((x) => !x.names.includes(privateRef ?? '\0')), o.historyRef)).meta;
      }
    }
    // As buildx: after a failure, the metadata of the targets that succeeded only with defer-error.
    if (metaFile !== undefined && (ok || mode === 'defer-error')) await writeTarget(io, metaFile, Buffer.from(`${JSON.stringify(metadata, null, 2)}\n`));
  } catch (err) {
    await display?.finish().catch(() => undefined);
    // `kiln bake … -o - | head`: the reader had what it wanted (cleaned up below).
    if (err instanceof BrokenPipeError) throw new ReportedError(0, err.message);
    cancelled = (err as { code?: unknown }).code === 'KLN0705';
    io.stderr.write(formatBuildError(err, {}));
    if (debug && err instanceof Error && err.stack !== undefined) io.stderr.write(`${err.stack}\n`);
    throw new ReportedError(cancelled ? 130 : 1, err instanceof Error ? err.message : String(err));
  } finally {
    // The private images of target: contexts go again (also after a failure or Ctrl-C): by name,
    // and by the name@digest that resolving the context recorded.
    for (const name of privateImages) await lease?.engine.images.delete(name).catch(() => false);
    // Automatic GC (docs/gc.md), as after kiln build; not after Ctrl-C.
    // The fetched definition's tree (an archive's contexts) was in use until here.
    await fetched?.release().catch(() => undefined);
    const gc = lease === undefined || cancelled ? undefined : gcAfterBuild(lease.engine, io);
    lease?.release();
    for (const c of cleanup) await c().catch(() => undefined);
    await gc?.();
  }
  if (failedError !== undefined) {
    for (const f of failures) io.stderr.write(f);
    io.stderr.write(formatBuildError(failedError));
    throw new ReportedError(1, failedError.message);
  }
  if (callFailed.length > 0) throw new ReportedError(1, `build checks found problems in ${callFailed.join(', ')}`);
}

/**
 * buildx's Validate and Prompt without the prompt: what the targets would use of this machine
 * beyond the working directory and the `--allow` grants (and the paths and entitlements you typed
 * in `--set`) is KLN0858, naming the `--allow` flags to add.
 */
async function checkEntitlements(builds: readonly TargetBuild[], granted: EntitlementConf, sets: readonly string[], io: CliIo, remote: boolean): Promise<BakeError | undefined> {
  const env = callerEnv(io);
  const cwd = callerPath(io, '.');
  const conf: EntitlementConf = { ...granted, fsRead: [...granted.fsRead], fsWrite: [...granted.fsWrite] };
  for (const s of sets) {
    const eq = s.indexOf('=');
    const dot = s.indexOf('.');
    if (eq < 0 || dot < 0 || dot > eq) continue;
    setGrants(canonicalKey(s.slice(dot + 1, eq).replace(/\+$/, ''), s), s.slice(eq + 1), conf, cwd, env);
  }
  const access = builds.map((b) => {
    const a = targetAccess(b.name, b.inputs, { output: b.flags.output ?? [], cacheTo: b.flags.cacheTo ?? [], cacheFrom: b.flags.cacheFrom ?? [], secret: b.flags.secret ?? [], ssh: b.impliedAgent ? [] : (b.flags.ssh ?? []), allow: b.flags.allow ?? [] }, cwd, env);
    // the agent kiln gives a target of an ssh remote is forwarding your agent, as buildx's implied default
    return b.impliedAgent ? { ...a, sshAgent: true } : a;
  });
  return entitlementsError(await missingEntitlements(conf, access, cwd), cwd, fsChecksEnabled(env, remote));
}

/**
 * A target's build values are checked as `kiln build` flags; their errors name the flag
 * (`invalid --output "type=lcoal"`) and would not say which target of which file set it. This
 * puts the target and its place in the bake file first, keeping the code, and gives the
 * Dockerfile hint in bake's terms.
 */
function inTarget(e: unknown, name: string, location: BakeLocation | undefined): unknown {
  const { code, hint } = e as { code?: unknown; hint?: unknown };
  if (!(e instanceof Error) || typeof code !== 'string') return e;
  const where = location === undefined ? '' : `${location.file}:${location.line}:${location.column}: `;
  const bakeHint = hint === MISSING_DOCKERFILE_HINT ? "set the target's dockerfile (relative to its context) or dockerfile-inline" : typeof hint === 'string' ? hint : undefined;
  return new CodedError(code, `${where}target "${name}": ${e.message}`, { hint: bakeHint, cause: e.cause });
}

function printExports(name: string, exports: readonly ExportResult[], privateRef: string | undefined, io: CliIo): void {
  for (const ex of exports) {
    if (privateRef !== undefined && ex.names.includes(privateRef)) continue;
    const dest = ex.dest === undefined ? '' : ` ${ex.dest}`;
    if (ex.digest !== undefined) io.stderr.write(`[${name}] ${ex.type}${dest}${ex.names.length > 0 ? ` ${ex.names.join(', ')}` : ''}: ${ex.digest}\n`);
    else if (ex.dest !== undefined) io.stderr.write(`[${name}] ${ex.type}${dest}\n`);
    for (const p of ex.pushed) io.stderr.write(`[${name}] pushed ${p}\n`);
  }
}
