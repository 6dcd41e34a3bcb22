import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { applyLayer, parseOutputSpec, type ExportResult, type ExportSpec } from '@kiln/runtime';
import { BrokenPipeError, callerEnv, callerPath, readAll, writeWarning, type BuildWarning, type CliIo } from '../io.js';
import { kilnRoot, parsePositiveInt, ReportedError, startProgress, withInterrupt } from '../engine/cli-support.js';
import type { KilnEngine } from '../engine/engine.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { gcAfterBuild } from '../engine/auto-gc.js';
import { callerCredentials } from '../engine/credentials.js';
import { EngineError } from '../engine/errors.js';
import { parsePlatformList } from '../engine/platform-list.js';
import { parseAnnotationFlags } from '../engine/annotation-flag.js';
import { runBuild, type BuildRequest, type HeldBuild, type RemoteBuildContext } from '../engine/build.js';
import { loadSourcePolicy } from '../engine/source-policy.js';
import { invoke, invokeInterrupts, parseInvoke, processTerminal, type InvokeSpec } from '../engine/invoke.js';
import { formatBuildError } from '../engine/report.js';
import { TS_FRONTEND } from '../engine/frontends.js';
import { DEFAULT_BUILD_FILE } from '@kiln/ts-dsl';
import { isRemoteContext, redactUrl } from '@kiln/dockerfile';
import { BUILDPACKS_FRONTEND, DEFAULT_PROJECT_FILE, selectsBuildpacks } from '@kiln/buildpacks';
import { parseBuildArg, parseSecrets, parseSize, parseSsh, resolveBuildContext, type BuildContext } from '../engine/session.js';
import { parseOutputs, type ParsedOutputs } from '../engine/output-targets.js';
import { parseAttestations } from '../engine/provenance-spec.js';
import { parseCacheExportSpecs, parseCacheImportSpecs, type CacheImportSpec } from '../engine/cache-spec.js';
import { callerAwsContext } from '../engine/cache-s3-spec.js';
import { checkDirectoryTarget, fileTarget, removeMadeDirs, removeTarget, writeTarget, type FileTarget } from '../engine/file-target.js';
import { startRecording } from '../history/recorder.js';
import { describeBuild, recordOptions } from '../history/describe.js';
import { callMetadata, resultMetadata } from '../engine/result-metadata.js';
import { parseCall } from '../engine/call-spec.js';

/** The hint of KLN0702 (no Dockerfile): bake swaps it for its own terms. */
export const MISSING_DOCKERFILE_HINT = 'pass -f PATH';

/** Parsed flags of `kiln build`. */
export interface BuildFlags {
  readonly file?: string;
  readonly target?: string;
  readonly buildArg: string[];
  readonly platform?: string;
  readonly secret: string[];
  readonly ssh: string[];
  readonly output: string[];
  readonly tag: string[];
  readonly progress: string;
  /** `-q`: no progress; the image ID (config digest) on stdout. */
  readonly quiet?: boolean;
  readonly cache: boolean;
  /** `--no-cache-filter` values (commander names a `--no-` option after what follows it). */
  readonly cacheFilter: string[];
  readonly buildContext: string[];
  readonly allow: string[];
  readonly frontend?: string;
  readonly root?: string;
  /** `--parallelism <n>`: containers at once (CPU-bound ops: at most min(n, CPUs)). */
  readonly parallelism?: number;
  readonly push?: boolean;
  readonly load?: boolean;
  readonly metadataFile?: string;
  readonly iidfile?: string;
  readonly label: string[];
  /** `--annotation [TYPE[,TYPE…][PLATFORM]:]KEY=VALUE`: on every image output (oci, docker, image). */
  readonly annotation?: string[];
  readonly addHost: string[];
  readonly pull?: boolean;
  readonly network?: string;
  readonly ulimit: string[];
  readonly shmSize?: string;
  readonly cgroupParent?: string;
  readonly check?: boolean;
  readonly call?: string;
  /** `--cache-to` values (buildx CSV: type=local|registry|inline,…). */
  readonly cacheTo?: string[];
  /** `--cache-from` values. */
  readonly cacheFrom?: string[];
  /** `--provenance[=VALUE]`: true when given bare (buildx's shorthand for `--attest type=provenance`). */
  readonly provenance?: string | boolean;
  /** `--attest` values (buildx CSV: type=provenance,mode=min|max,…). */
  readonly attest?: string[];
  /** `--sbom[=VALUE]`: buildx's shorthand for `--attest type=sbom[,generator=IMAGE]`. */
  readonly sbom?: string | boolean;
  /** `--invoke COMMAND|on-error|default`: a debug shell in the result or the failed step's state. */
  readonly invoke?: string;
  /** `--source-policy-file FILE` (buildctl's flag); else `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`. */
  readonly sourcePolicyFile?: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * Registers `kiln build [CONTEXT]` with buildx's flags. `-t` without `--output` stores the image
 * in kiln's image store (like `--output type=image,name=…`); `--push` pushes the tags.
 */
export function registerBuild(program: Command, io: CliIo): void {
  program
    .command('build')
    .description('build an image from a Dockerfile (buildx-compatible flags)')
    .argument('[context]', 'build context: a directory; - reads a tar archive (the context) or a Dockerfile from stdin; a git URL (REPO.git#REF:DIR, git://…, ssh://…, git@HOST:…) or an http(s) URL of a tarball or Dockerfile', '.')
    .option('-f, --file <file>', 'Dockerfile path (default CONTEXT/Dockerfile; - reads stdin; with a URL context, relative to it)')
    .option('--target <stage>', 'build this stage')
    .option('--build-arg <key=value>', 'set a build argument (repeatable)', collect, [])
    // buildx's --platform is a string array: `--platform A --platform B` builds both (the last won)
    .option('--platform <platform>', 'target platform, e.g. linux/amd64; a list A,B or the flag repeated builds each', (v: string, prev: string | undefined) => (prev === undefined ? v : `${prev},${v}`))
    .option('--secret <spec>', 'secret to expose: id=ID,src=FILE or id=ID,env=VAR (repeatable)', collect, [])
    .option('--ssh <spec>', 'ssh agent to forward: default, ID=SOCKET or ID=KEYFILE (repeatable)', collect, [])
    .option('-o, --output <spec>', 'output: type=oci|docker|image|registry|local|tar,… (repeatable); dest=- (or -o -) writes the archive to stdout', collect, [])
    .option('-t, --tag <name>', 'image name (repeatable)', collect, [])
    .option('--push', 'push the tagged image (same as --output type=registry)')
    .option('--load', 'not applicable: kiln has no Docker daemon (fails with a hint; -t alone keeps the image in kiln\'s store)')
    .option('--metadata-file <file>', 'write build result metadata (image digest, config digest, names) as JSON')
    .option('--iidfile <file>', 'write the image ID (config digest) to the file')
    .addOption(new Option('--progress <mode>', 'progress output').choices(['auto', 'plain', 'tty', 'rawjson', 'quiet']).default('auto'))
    .option('-q, --quiet', 'print nothing but the image ID (config digest) on stdout; errors still go to stderr')
    .option('--no-cache', 'do not use the cache')
    .option('--no-cache-filter <stage>', 'do not use the cache for this stage (repeatable)', collect, [])
    .option('--cache-to <spec>', 'export the build cache: type=local,dest=DIR|type=registry,ref=REF|type=inline[,mode=min|max][,compression=…][,oci-mediatypes=…] (repeatable)', collect, [])
    .option('--cache-from <spec>', 'import a build cache: type=local,src=DIR[,tag=T]|type=registry,ref=REF (repeatable)', collect, [])
    .option('--provenance [value]', 'attach a SLSA provenance attestation: true (mode=min), false, or mode=min|max[,builder-id=URL][,reproducible=true]; none by default (buildx adds mode=min to images)')
    .option('--attest <spec>', 'attestation: type=provenance[,mode=min|max][,builder-id=URL][,reproducible=true][,disabled=true] or type=sbom[,generator=IMAGE] (repeatable, one per type)', collect, [])
    .option('--sbom [value]', 'attach an SBOM made by a scanner image: true (docker/buildkit-syft-scanner:stable-1, must be pullable), false, or generator=IMAGE')
    .option('--build-context <name=value>', 'named context: NAME=path|docker-image://REF|oci-layout://PATH[:TAG][@DIGEST] (repeatable)', collect, [])
    .option('--label <key=value>', 'set an image label (repeatable; wins over the Dockerfile LABEL)', collect, [])
    .option('--annotation <[type:]key=value>', 'add an OCI annotation to image outputs; type manifest (default), index, manifest-descriptor or index-descriptor, e.g. index:org.opencontainers.image.title=app (repeatable)', collect, [])
    .option('--add-host <host:ip>', 'add an /etc/hosts entry for RUN steps (repeatable)', collect, [])
    .option('--pull', 'always look up base images in their registry (ignore the local image store)')
    .option('--ulimit <name=soft[:hard]>', 'resource limit of RUN steps, e.g. nofile=1024:2048 (repeatable)', collect, [])
    .option('--shm-size <size>', 'size of /dev/shm in RUN steps, e.g. 128m')
    .option('--cgroup-parent <path>', 'parent cgroup of RUN containers')
    .option('--network <mode>', 'network of RUN steps without their own --network: default, none or host (host needs --allow network.host)')
    .option('--allow <entitlement>', 'allow an entitlement: security.insecure, network.host (repeatable)', collect, [])
    .option('--frontend <name>', 'frontend to use (default: # syntax= or dockerfile.v0)')
    .option('--source-policy-file <file>', 'source policy (JSON): allow, deny or convert the images, git and http sources of the build (default: $EXPERIMENTAL_BUILDKIT_SOURCE_POLICY)')
    .option('--check', 'run the build checks only (no build): print each finding with its lines; exit 1 if any (--call=check)')
    .option('--call <request>', 'what the frontend does: build (default), check or lint (as --check), outline (the build args, secrets and ssh ids the target takes), targets (list the stages) or subrequests.describe (what it answers); ,format=json prints the frontend\'s JSON; ,ignorestatus=true exits 0 whatever the answer\'s status')
    .option('--debug', 'show stack traces for errors')
    .option('--root <dir>', 'kiln state directory (default: $KILN_ROOT, /var/lib/kiln for root)')
    .option(
      '--invoke <command>',
      'debug: after the build run COMMAND in the result (image env, workdir, user) with this stdin/stdout; after a failed RUN, in the state it left. on-error: only after a failure (/bin/sh); default: the image entrypoint+cmd',
    )
    .option('--parallelism <n>', 'containers run at once (CPU-bound steps: at most the CPU count); default max(8, 4 x CPUs)', parsePositiveInt)
    .action(async (context: string, flags: BuildFlags, cmd: Command) => {
      const debug = cmd.optsWithGlobals<{ debug?: boolean }>().debug === true;
      await buildCommand(context, flags, io, debug);
    });
}

/** Runs `kiln build` with parsed flags; failures are printed and thrown as {@link ReportedError}. */
export async function buildCommand(context: string, flags: BuildFlags, io: CliIo, debug = false): Promise<void> {
  let dockerfileText: string | undefined;
  let dockerfileName = 'Dockerfile';
  const cleanup: (() => Promise<void>)[] = [];
  let progress: ReturnType<typeof startProgress> | undefined;
  let lease: EngineLease | undefined;
  let callFailed = false;
  // The build's history record (`buildx.build.ref` in --metadata-file).
  let historyRef: string | undefined;
  // --invoke: the build is held (result or failed state) until the invoked command is done.
  let invokeSpec: InvokeSpec | undefined;
  const holder: { held?: HeldBuild | undefined } = {};
  let invokedStatus = 0;
  // Ctrl-C: kiln exits without the automatic GC (the user asked it to stop).
  let cancelled = false;
  try {
    invokeSpec = flags.invoke === undefined ? undefined : parseInvoke(flags.invoke);
    // As buildx: the invoked command reads stdin, so the build cannot have read it first.
    if (invokeSpec !== undefined && (context === '-' || flags.file === '-')) {
      throw new EngineError('KLN0712', 'a Dockerfile or context from stdin cannot be used with --invoke', { hint: 'stdin is the invoked command\'s: pass the Dockerfile with -f FILE and a context directory' });
    }
    // --call=check|outline|targets build nothing: there is no result or failed step to run in.
    const call = parseCall(flags.call, flags.check === true);
    if (invokeSpec !== undefined && call !== undefined) {
      throw new EngineError('KLN0712', `--invoke cannot be used with ${flags.check === true ? '--check' : `--call=${call.name}`}: it builds nothing to run a command in`, { hint: 'drop --invoke to only check or list targets; drop --call to build and invoke' });
    }
    const { req, outputs, results } = await parseFlags(context, flags, io, cleanup);
    // buildx removes the file first: a failed build must not leave the previous build's ID there.
    if (results.iid !== undefined) await removeTarget(results.iid);
    // (A remote context's Dockerfile is not here to quote in an error.)
    const localFile = req.dockerfile ?? (req.remoteContext === undefined ? join(req.context, 'Dockerfile') : undefined);
    dockerfileText = req.dockerfileText ?? (localFile === undefined ? undefined : await readFile(localFile, 'utf8').catch(() => undefined));
    dockerfileName = req.dockerfile === undefined ? (req.remoteContext?.file ?? 'Dockerfile') : basename(req.dockerfile);
    const l = (lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path }));
    const display = startProgress(flags.quiet === true ? 'quiet' : flags.progress, io);
    progress = display;
    const e = l.engine;
    const onWarning = (w: BuildWarning): void => writeWarning(io, w);
    const report = await e.credentials.run(callerCredentials(io), () =>
      withInterrupt(io, async (signal) => {
        // Inside the interruptible part: waiting for a prune to finish can be cancelled too.
        await l.begin(signal);
        const recording = startRecording(describeBuild(req, context), display.sink, recordOptions(io, e.root, signal, req));
        historyRef = recording.ref;
        return recording.track(runBuild(e, {
          ...req,
          progress: recording.sink,
          signal,
          onWarning,
          onCacheWarning: (m) => void io.stderr.write(`WARNING: ${m}\n`),
          ...(invokeSpec === undefined ? {} : { hold: (h: HeldBuild) => void (holder.held = h) }),
        }));
      }),
    );
    await display.finish();
    progress = undefined;
    if (report.call !== undefined) {
      // buildx (v0.14+) writes the call's result metadata, also when checks fail (exit 1).
      if (results.meta !== undefined) await writeTarget(io, results.meta, Buffer.from(`${JSON.stringify(callMetadata(report.call.metadata), null, 2)}\n`));
      io.stdout.write(report.call.text);
      callFailed = report.call.failed;
    }
    if (report.call === undefined) await outputs.deliver(io);
    for (const ex of flags.quiet === true ? [] : report.exports) {
      const dest = ex.dest === undefined ? '' : ` ${req.displayDests?.get(ex.dest) ?? ex.dest}`;
      if (ex.digest !== undefined) io.stderr.write(`${ex.type}${dest}${ex.names.length > 0 ? ` ${ex.names.join(', ')}` : ''}: ${ex.digest}\n`);
      for (const p of ex.pushed) io.stderr.write(`pushed ${p}\n`);
    }
    // With --invoke the result is used, by the invoked command.
    if (req.outputs.length === 0 && report.call === undefined && invokeSpec === undefined) io.stderr.write('WARNING: no output specified; the result stays in the build cache only (use -t NAME or --output)\n');
    if (report.call === undefined && (results.meta !== undefined || results.iid !== undefined || flags.quiet === true)) {
      const id = await writeResultFiles(e, report.exports, historyRef, results, io);
      // buildx's -q: the image ID alone (an empty line when the build made no image).
      if (flags.quiet === true) io.stdout.write(`${id ?? ''}\n`);
    }
    const held = holder.held;
    holder.held = undefined;
    if (held !== undefined && invokeSpec !== undefined) invokedStatus = await invokeHeld(e, held, invokeSpec.when === 'always' ? invokeSpec : undefined, io);
  } catch (e) {
    await progress?.finish().catch(() => undefined);
    // `kiln build -o - | head`, `--invoke CMD | head`: the reader had what it wanted (cleaned up below).
    if (e instanceof BrokenPipeError) throw new ReportedError(0, e.message);
    io.stderr.write(formatBuildError(e, { ...(dockerfileText === undefined ? {} : { dockerfileText }), dockerfileName }));
    if (debug && e instanceof Error && e.stack !== undefined) io.stderr.write(`${e.stack}\n`);
    const interrupted = (e as { code?: unknown }).code === 'KLN0705';
    cancelled = interrupted;
    // After a failed RUN, the debug shell opens in the state it left (the error is printed first).
    const held = holder.held;
    holder.held = undefined;
    if (held !== undefined && lease !== undefined && invokeSpec !== undefined) {
      await invokeHeld(lease.engine, held, invokeSpec, io).catch((ie: unknown) => {
        if (!(ie instanceof BrokenPipeError)) io.stderr.write(formatBuildError(ie, {}));
      });
    }
    throw new ReportedError(interrupted ? 130 : 1, e instanceof Error ? e.message : String(e));
  } finally {
    await holder.held?.release();
    // Automatic GC (docs/gc.md): decided while the engine is open, run after the build mark is gone.
    const gc = lease === undefined || cancelled ? undefined : gcAfterBuild(lease.engine, io);
    lease?.release();
    for (const c of cleanup) await c().catch(() => undefined);
    await gc?.();
  }
  // the answer is printed: only the exit status is left
  if (callFailed) throw new ReportedError(1, 'build checks found problems');
  if (invokedStatus !== 0) throw new ReportedError(invokedStatus, `the invoked command exited with status ${invokedStatus}`);
}

/**
 * Runs `--invoke` in a held build (nothing when `spec` is undefined: on-error after a success)
 * with the caller's streams and interrupts; releases the build. Resolves with the command's status.
 */
async function invokeHeld(engine: KilnEngine, held: HeldBuild, spec: InvokeSpec | undefined, io: CliIo): Promise<number> {
  try {
    if (spec === undefined) return 0;
    // This process's own terminal gives the command a pseudo-terminal; a daemon's client, pipes.
    const terminal = io.remote === true || io.stdin !== process.stdin ? undefined : processTerminal();
    return await invoke(engine, held, spec, { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, interrupts: io.interrupts ?? invokeInterrupts, ...(terminal === undefined ? {} : { terminal }) });
  } finally {
    await held.release();
    // A read of this process's stdin still pending for a command that ended would keep kiln
    // running until the next key press (an iterator's return waits for it): stop reading.
    if (spec !== undefined && io.stdin === process.stdin) process.stdin.destroy();
  }
}

/** `--cache-to` / `--cache-from`, local paths taken from the caller's directory; unusable imports are warnings. */
async function cacheFlags(flags: BuildFlags, io: CliIo): Promise<Pick<BuildRequest, 'cacheTo' | 'cacheFrom' | 'cacheWarnings'>> {
  const aws = callerAwsContext(io);
  // One value may name several caches (`a,b`): each keeps the value it came from, for errors.
  const given = (flags.cacheTo ?? []).flatMap((v) => parseCacheExportSpecs(v, aws).map((s) => ({ v, s: s.type === 'local' ? { ...s, dest: callerPath(io, s.dest) } : s })));
  const cacheTo = given.map((g) => g.s);
  // A local cache is a directory (an OCI layout): a file there would fail only after the build.
  for (const { v, s } of given) {
    if (s.type === 'local' && (await stat(s.dest).then((st) => !st.isDirectory(), () => false))) {
      throw new EngineError('KLN0710', `invalid --cache-to "${v}": ${s.dest} is not a directory`, {
        hint: 'type=local,dest=DIR writes the cache as a directory (an OCI layout): name a directory, or a path that does not exist yet',
      });
    }
    if (s.type === 'local') {
      await checkDirectoryTarget(s.dest, (why) => new EngineError('KLN0710', `invalid --cache-to "${v}": ${why}`, { hint: 'name a directory you can write (it is made if missing)' }));
    }
  }
  const cacheFrom: CacheImportSpec[] = [];
  const cacheWarnings: string[] = [];
  for (const s of (flags.cacheFrom ?? []).flatMap((v) => parseCacheImportSpecs(v, aws))) {
    if ('warning' in s) cacheWarnings.push(s.warning);
    else cacheFrom.push(s.type === 'local' ? { ...s, src: callerPath(io, s.src) } : s);
  }
  return {
    ...(cacheTo.length === 0 ? {} : { cacheTo }),
    ...(cacheFrom.length === 0 ? {} : { cacheFrom }),
    ...(cacheWarnings.length === 0 ? {} : { cacheWarnings }),
  };
}

/** buildx's buildflags.IsGitSSH: `ssh://…`, or `USER@HOST:PATH` (BuildKit's sshutil.IsImplicitSSHTransport). */
const isGitSsh = (ref: string): boolean => ref.startsWith('ssh://') || /^[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:/.test(ref);

/**
 * For a missing context that reads as HOST/ORG/REPO (`gitlab.com/org/app`): the https git URL
 * kiln would fetch. Only github.com is read so without a scheme (BuildKit, buildx).
 */
function gitUrlHint(context: string): string | undefined {
  const hash = context.indexOf('#');
  const path = hash < 0 ? context : context.slice(0, hash);
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\/[^/]+\/[^/]/i.test(path)) return undefined;
  const url = `https://${path.replace(/\/+$/, '')}${path.endsWith('.git') ? '' : '.git'}${hash < 0 ? '' : context.slice(hash)}`;
  return `to build the git repository, pass its URL: ${url}`;
}

const isFile = (p: string): Promise<boolean> => stat(p).then((s) => s.isFile(), () => false);
const isDir = (p: string): Promise<boolean> => stat(p).then((s) => s.isDirectory(), () => false);

/**
 * `kiln build URL`: a git repository or an http(s) download as the context (buildx's remote
 * contexts), with `-f` relative to it; undefined when `context` is no such URL. kiln/ts and
 * kiln/buildpacks read their files from a local context only, so they refuse one.
 */
function remoteContextOf(context: string, flags: BuildFlags): RemoteBuildContext | undefined {
  if (!isRemoteContext(context)) return undefined;
  const url = redactUrl(context);
  if (/^https?:\/\//.test(context) && !URL.canParse(context.split('#')[0] as string)) {
    throw new EngineError('KLN0702', `context ${JSON.stringify(url)} is not a valid URL`, { hint: 'e.g. https://HOST/ORG/REPO.git#REF:DIR or https://HOST/PATH/ctx.tar.gz' });
  }
  const frontend = flags.frontend === TS_FRONTEND || flags.frontend === BUILDPACKS_FRONTEND ? flags.frontend : flags.file?.endsWith('.ts') === true ? TS_FRONTEND : undefined;
  if (frontend !== undefined) {
    throw new EngineError('KLN0702', `${frontend} cannot build the remote context ${url}: it reads its files from a local directory`, { hint: 'clone or download it first and pass the directory' });
  }
  const file = flags.file === undefined || flags.file === '-' || isAbsolute(flags.file) ? undefined : flags.file;
  return { url: context, ...(file === undefined ? {} : { file }) };
}

/** Where `--iidfile` and `--metadata-file` go. */
export interface ResultFiles {
  readonly iid?: FileTarget;
  readonly meta?: FileTarget;
}

/**
 * `kiln build`'s flags as a {@link BuildRequest} (paths against the caller's directory), the
 * parsed `--output` redirects and the result files. `cleanup` collects what to remove afterwards.
 * Also used by `kiln bake`, which maps each target's keys onto {@link BuildFlags}.
 */
export async function parseFlags(context: string, flags: BuildFlags, io: CliIo, cleanup: (() => Promise<void>)[]): Promise<{ req: BuildRequest; outputs: ParsedOutputs; results: ResultFiles }> {
  if (flags.quiet === true && flags.progress !== 'auto' && flags.progress !== 'quiet') {
    throw new EngineError('KLN0707', `--progress ${flags.progress} and --quiet cannot be used together`, { hint: 'drop one of them' });
  }
  // First: a bare `--provenance CONTEXT` took the context as its value (commander), and the
  // missing-Dockerfile error would hide that.
  const attestations = parseAttestations(flags.provenance, flags.attest ?? [], flags.sbom);
  const call = parseCall(flags.call, flags.check === true);
  let ctx = callerPath(io, context);
  let dockerfile: string | undefined;
  let dockerfileText: string | undefined;
  // buildx's order: stdin, a local directory, then a git or http(s) URL (no local context is sent).
  const remote = context !== '-' && !(await isDir(ctx)) ? remoteContextOf(context, flags) : undefined;
  if (remote !== undefined) {
    // What the history records and messages show: the URL without credentials.
    ctx = redactUrl(context);
    if (flags.file === '-') dockerfileText = new TextDecoder().decode(await readAll(io.stdin));
    // An absolute -f is a local file sent beside the remote context; a relative one is in it.
    else if (flags.file !== undefined && isAbsolute(flags.file)) dockerfile = flags.file;
  } else if (/^[a-z]+:\/\//.test(context)) {
    throw new EngineError('KLN0702', `context "${redactUrl(context)}" is not supported`, { hint: 'pass a directory, - (a tar or Dockerfile on stdin), a git URL (https://HOST/REPO.git#REF:DIR, git://…, ssh://…) or an http(s) URL of a tarball or Dockerfile' });
  } else if (context === '-') {
    const stdin = await stdinContext(flags, io, cleanup);
    ctx = stdin.dir;
    dockerfileText = stdin.dockerfileText;
    // -f names a file of the archive, as buildx reads it from the tarball.
    if (flags.file !== undefined) dockerfile = resolve(ctx, flags.file);
  } else {
    const st = await stat(ctx).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error) {
      const hint = st.code === 'ENOENT' ? gitUrlHint(context) : undefined;
      throw new EngineError('KLN0702', `cannot use build context ${context}: ${st.code === 'ENOENT' ? 'no such directory' : st.message}`, hint === undefined ? {} : { hint });
    }
    if (!st.isDirectory()) throw new EngineError('KLN0702', `build context ${context} is not a directory`);
    if (flags.file === '-') dockerfileText = new TextDecoder().decode(await readAll(io.stdin));
    else if (flags.file !== undefined) dockerfile = callerPath(io, flags.file);
  }
  // Without -f: the context's `Dockerfile`, else a lowercase `dockerfile` (BuildKit's dockerui
  // reads that too), else kiln/ts's `kiln.build.ts`; with --frontend kiln/ts, `kiln.build.ts`
  // (a Dockerfile next to it is not a build file of that frontend).
  if (remote === undefined && dockerfile === undefined && dockerfileText === undefined && flags.frontend === TS_FRONTEND) dockerfile = join(ctx, DEFAULT_BUILD_FILE);
  if (remote === undefined && dockerfile === undefined && dockerfileText === undefined && flags.frontend === BUILDPACKS_FRONTEND) dockerfile = join(ctx, DEFAULT_PROJECT_FILE);
  if (remote === undefined && dockerfile === undefined && dockerfileText === undefined && !(await isFile(join(ctx, 'Dockerfile')))) {
    for (const name of ['dockerfile', DEFAULT_BUILD_FILE]) {
      if (!(await isFile(join(ctx, name)))) continue;
      dockerfile = join(ctx, name);
      break;
    }
    // then a project.toml whose first line is `# syntax=kiln/buildpacks` (Cloud Native Buildpacks)
    const project = join(ctx, DEFAULT_PROJECT_FILE);
    if (dockerfile === undefined && selectsBuildpacks(await readFile(project, 'utf8').catch(() => ''))) dockerfile = project;
  }
  const target = dockerfile ?? join(ctx, 'Dockerfile');
  // A remote context's Dockerfile is the frontend's to find (it names the URL when it is missing).
  if ((remote === undefined || dockerfile !== undefined) && dockerfileText === undefined && !(await stat(target).then((s) => s.isFile(), () => false))) {
    if (flags.frontend === TS_FRONTEND && flags.file === undefined) throw new EngineError('KLN0702', `cannot read build file ${join(context, DEFAULT_BUILD_FILE)}: no such file`, { hint: 'pass -f FILE.ts' });
    if (flags.frontend === BUILDPACKS_FRONTEND && flags.file === undefined) throw new EngineError('KLN0702', `cannot read project file ${join(context, DEFAULT_PROJECT_FILE)}: no such file`, { hint: 'add a project.toml (it may be empty) or pass -f FILE' });
    // `-f DIR`: the file is missing only in the sense that a directory is not one.
    if (await isDir(target)) {
      const inside = join(flags.file ?? join(context, 'Dockerfile'), 'Dockerfile');
      throw new EngineError('KLN0702', `cannot read Dockerfile ${flags.file ?? join(context, 'Dockerfile')}: it is a directory`, {
        hint: (await isFile(join(target, 'Dockerfile'))) ? `-f names the file itself: -f ${inside}` : '-f names the Dockerfile itself, not its directory',
      });
    }
    // A project.toml without its `# syntax=kiln/buildpacks` line is not picked: say how to pick it.
    const project = flags.file === undefined && flags.frontend === undefined && remote === undefined && (await isFile(join(ctx, DEFAULT_PROJECT_FILE)));
    throw new EngineError('KLN0702', `cannot read Dockerfile ${flags.file ?? join(context, 'Dockerfile')}: no such file`, {
      hint: project ? `${join(context, DEFAULT_PROJECT_FILE)} is a buildpacks project only with "# syntax=${BUILDPACKS_FRONTEND}" as its first line, or --frontend ${BUILDPACKS_FRONTEND}` : MISSING_DOCKERFILE_HINT,
    });
  }
  const env = callerEnv(io);
  const buildArgs = new Map<string, string>();
  const sde = env['SOURCE_DATE_EPOCH'];
  if (sde !== undefined && sde !== '') buildArgs.set('SOURCE_DATE_EPOCH', sde);
  for (const a of flags.buildArg) {
    const kv = parseBuildArg(a, env);
    if (kv !== undefined) buildArgs.set(kv[0], kv[1]);
  }
  // Checked here as well as by the engine: a typo fails before the context is sent.
  if (flags.platform !== undefined) parsePlatformList(flags.platform);
  for (const a of flags.allow) {
    if (a !== 'security.insecure' && a !== 'network.host') throw new EngineError('KLN0702', `unknown entitlement "${a}"`, { hint: 'use --allow security.insecure or --allow network.host' });
  }
  const parsed = await parseOutputs(flags.output, io, flags.tag);
  cleanup.push(parsed.remove);
  if (flags.quiet === true && parsed.redirects.some((r) => r.target.kind === 'stdout')) {
    throw new EngineError('KLN0702', '--quiet prints the image ID on stdout: an output cannot go there too', { hint: 'write the output to a file (dest=FILE)' });
  }
  // Destinations are absolute already (the caller's directory).
  const outputs = outputSpecs(parsed.specs, flags, io);
  // Checked before anything runs: the build would otherwise succeed and only then fail here.
  if (flags.iidfile !== undefined && call === undefined && !outputs.some((o) => o.type === 'oci' || o.type === 'docker' || o.type === 'image')) {
    throw new EngineError('KLN0704', '--iidfile needs an image output (-t NAME or --output type=oci|docker|image)');
  }
  // Parents made for them go again if the build fails before writing there.
  const made: string[] = [];
  cleanup.push(() => removeMadeDirs(made));
  const results: ResultFiles = {
    ...(flags.iidfile === undefined ? {} : { iid: await fileTarget(io, '--iidfile', flags.iidfile, 'file', made) }),
    ...(flags.metadataFile === undefined ? {} : { meta: await fileTarget(io, '--metadata-file', flags.metadataFile, 'file', made) }),
  };
  const buildContexts: BuildContext[] = [];
  for (const c of flags.buildContext) buildContexts.push(await resolveBuildContext(c, callerPath(io, '.')));
  const secrets = await parseSecrets(flags.secret, env, callerPath(io, '.'));
  const sourcePolicy = await loadSourcePolicy(io, flags.sourcePolicyFile);
  // buildx: an ssh git context without any --ssh gets `--ssh default` (your SSH_AUTH_SOCK agent),
  // which its git source asks for.
  const impliedSsh = flags.ssh.length === 0 && remote !== undefined && isGitSsh(context);
  const ssh = await parseSsh(impliedSsh ? ['default'] : flags.ssh, env, callerPath(io, '.')).catch((e: unknown) => {
    if (!impliedSsh || !(e instanceof EngineError)) throw e;
    throw new EngineError(e.code, `the build context ${redactUrl(context)} is fetched over ssh with your agent (an implied --ssh default, as buildx): ${e.message.replace(/^--ssh default: /, '')}`, { hint: e.hint });
  });
  cleanup.push(ssh.close);
  const req: BuildRequest = {
    context: ctx,
    ...(remote === undefined ? {} : { remoteContext: remote }),
    ...(dockerfile === undefined ? {} : { dockerfile }),
    ...(dockerfileText === undefined ? {} : { dockerfileText }),
    ...(flags.target === undefined ? {} : { target: flags.target }),
    buildArgs,
    ...(flags.platform === undefined ? {} : { platform: flags.platform }),
    secrets,
    ssh: ssh.sockets,
    outputs,
    ...(parsed.redirects.length === 0 ? {} : { displayDests: new Map(parsed.redirects.map((r) => [r.file, r.display])) }),
    noCache: !flags.cache,
    noCacheFilter: flags.cacheFilter,
    buildContexts,
    allowInsecure: flags.allow.includes('security.insecure'),
    allowNetworkHost: flags.allow.includes('network.host'),
    // a .ts build file selects the TypeScript DSL frontend unless --frontend says otherwise
    ...(flags.frontend !== undefined ? { frontend: flags.frontend } : dockerfile?.endsWith('.ts') === true ? { frontend: TS_FRONTEND } : {}),
    ...(flags.parallelism === undefined ? {} : { parallelism: flags.parallelism }),
    ...(call === undefined ? {} : { call: call.name, ...(call.format === undefined ? {} : { callFormat: call.format }), ...(call.ignoreStatus === true ? { callIgnoreStatus: true as const } : {}) }),
    ...runFlags(flags),
    ...(await cacheFlags(flags, io)),
    ...(attestations.provenance === undefined && attestations.sbom === undefined ? {} : { attestations }),
    ...(sourcePolicy === undefined ? {} : { sourcePolicy }),
  };
  return { req, outputs: parsed, results };
}

/**
 * buildx's `kiln build -`: standard input is a tar archive (plain, gzip or zstd) to use as the
 * context, or else a Dockerfile, built with an empty context. Either way it is read whole
 * before the build; the archive is unpacked (confined to it) into a private temporary directory.
 */
async function stdinContext(flags: BuildFlags, io: CliIo, cleanup: (() => Promise<void>)[]): Promise<{ dir: string; dockerfileText?: string }> {
  if (flags.file === '-') throw new EngineError('KLN0702', 'standard input cannot be both the build context and the Dockerfile (- and -f -)', { hint: 'pass a context directory, or the Dockerfile in the archive' });
  const bytes = Buffer.from(await readAll(io.stdin));
  const dir = await mkdtemp(join(tmpdir(), 'kiln-stdin-context-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const head = bytes.subarray(0, 4).toString('hex');
  const archive = head.startsWith('1f8b') || head === '28b52ffd' || bytes.subarray(257, 262).toString('latin1') === 'ustar';
  if (!archive) {
    if (head.startsWith('425a68') || head === 'fd377a58') throw new EngineError('KLN0702', 'the context archive on standard input is bzip2 or xz', { hint: 'send a plain, gzip or zstd tar' });
    return { dir, dockerfileText: new TextDecoder().decode(bytes) };
  }
  try {
    // Owners are not kept: the context goes to the build as root's (buildx's resetUIDAndGID), and
    // a rootless kiln without subordinate ids has no id for the archive's own owners.
    await applyLayer(dir, Readable.from([bytes]), { whiteouts: false, owners: false });
  } catch (cause) {
    throw new EngineError('KLN0702', 'cannot unpack the context archive on standard input', { cause });
  }
  return { dir };
}

/** `--label`, `--add-host`, `--pull`, `--network` as the frontend options buildx sends. */
function runFlags(flags: BuildFlags): Pick<BuildRequest, 'labels' | 'extraHosts' | 'pull' | 'network' | 'ulimits' | 'shmSize' | 'cgroupParent'> {
  const labels = new Map<string, string>();
  for (const l of flags.label) {
    // buildx's listToMap: KEY alone is an empty label (not read from the environment).
    const i = l.indexOf('=');
    if (i === 0 || l === '') throw new EngineError('KLN0702', `invalid --label "${l}": empty key`, { hint: 'use --label KEY=VALUE' });
    labels.set(i < 0 ? l : l.slice(0, i), i < 0 ? '' : l.slice(i + 1));
  }
  for (const h of flags.addHost) {
    if (!/^[^:=\s]+[:=]\S+$/.test(h)) throw new EngineError('KLN0702', `invalid --add-host "${h}"`, { hint: 'use --add-host HOST:IP' });
  }
  const network = flags.network === undefined || flags.network === 'default' ? undefined : flags.network;
  if (network !== undefined && network !== 'none' && network !== 'host') {
    throw new EngineError('KLN0702', `invalid --network "${flags.network}"`, { hint: 'use --network default, none or host' });
  }
  const shm = flags.shmSize === undefined ? undefined : parseSize(flags.shmSize);
  if (shm !== undefined && !(shm > 0)) throw new EngineError('KLN0702', `invalid --shm-size "${flags.shmSize}"`, { hint: 'use a size such as 64m or 1g' });
  return {
    ...(flags.ulimit.length > 0 ? { ulimits: flags.ulimit } : {}),
    ...(shm === undefined ? {} : { shmSize: shm }),
    ...(flags.cgroupParent === undefined ? {} : { cgroupParent: flags.cgroupParent }),
    ...(labels.size > 0 ? { labels } : {}),
    ...(flags.addHost.length > 0 ? { extraHosts: flags.addHost } : {}),
    ...(flags.pull === true ? { pull: true } : {}),
    ...(network === undefined ? {} : { network }),
  };
}

/**
 * buildx's output rules: `-t` names every image output that has none; `-t` alone means type=image;
 * `--annotation`s go on every image output.
 */
function outputSpecs(parsed: readonly ExportSpec[], flags: BuildFlags, io: CliIo): ExportSpec[] {
  // buildx's --load is --output type=docker into Docker's image store; refused rather than
  // ignored, as by kiln bake (the user expects the image in Docker).
  if (flags.load === true) {
    throw new EngineError('KLN0702', '--load is not applicable: kiln has no Docker daemon to load images into', {
      hint: "-t NAME alone keeps the image in kiln's image store (kiln images, kiln push, kiln save); --output type=docker,dest=FILE.tar writes a tarball for docker load",
    });
  }
  const specs = [...parsed];
  // buildx's --push sets push=true on every image output given with --output (named by the -t
  // names, else its name=); without one it is --output type=registry of the -t names.
  const pushed = specs.map((s) => (s.type === 'image' ? { ...s, push: true } : s));
  if (flags.push === true && specs.some((s) => s.type === 'image')) {
    specs.splice(0, specs.length, ...pushed);
  } else if (flags.push === true) {
    if (flags.tag.length === 0) throw new EngineError('KLN0702', '--push needs at least one -t NAME', { hint: 'or an image output: --output type=image,name=REPO[:TAG]' });
    specs.push(parseOutputSpec(`type=image,push=true,name=${flags.tag.join(',')}`));
  } else if (specs.length === 0 && flags.tag.length > 0) {
    specs.push(parseOutputSpec(`type=image,name=${flags.tag.join(',')}`));
  }
  const annotations = parseAnnotationFlags(flags.annotation ?? []);
  if (annotations.length > 0 && !specs.some((s) => s.type !== 'local' && s.type !== 'tar')) {
    writeWarning(io, { message: '--annotation applies to image outputs (-t NAME, --output type=image|oci|docker|registry); this build has none' });
  }
  return specs.map((s) => {
    if (s.type === 'local' || s.type === 'tar') return s;
    const named = s.names.length === 0 && flags.tag.length > 0 ? { ...s, names: flags.tag } : s;
    return annotations.length === 0 ? named : { ...named, annotations: [...(s.annotations ?? []), ...annotations] };
  });
}

/**
 * buildx's `--metadata-file` (see {@link resultMetadata}) and `--iidfile` (the config digest,
 * else the manifest digest, of the first image output), each written atomically. Returns the image ID.
 */
async function writeResultFiles(engine: KilnEngine, exports: readonly ExportResult[], historyRef: string | undefined, files: ResultFiles, io: CliIo): Promise<string | undefined> {
  const { meta, imageId } = await resultMetadata(engine.content, exports, historyRef);
  if (files.meta !== undefined) await writeTarget(io, files.meta, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`));
  if (files.iid !== undefined) {
    if (imageId === undefined) throw new EngineError('KLN0704', '--iidfile needs an image output (-t NAME or --output type=oci|docker|image)');
    await writeTarget(io, files.iid, Buffer.from(imageId));
  }
  return imageId;
}
