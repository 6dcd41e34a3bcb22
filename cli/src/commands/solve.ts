import { readFile, stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { decodeDefinition, decodeOp, suggest, type Definition } from '@kiln/llb-core';
import { hostPlatform, parseOutputSpec, parsePlatform } from '@kiln/runtime';
import { BrokenPipeError, callerEnv, callerPath, readAll, stdinIsTerminal, type CliIo } from '../io.js';
import { parseOutputs } from '../engine/output-targets.js';
import { SolverBackend } from '../engine/backend.js';
import { loadSourcePolicy } from '../engine/source-policy.js';
import { kilnRoot, parsePositiveInt, ReportedError, startProgress, withInterrupt } from '../engine/cli-support.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { gcAfterBuild } from '../engine/auto-gc.js';
import { callerCredentials } from '../engine/credentials.js';
import { EngineError } from '../engine/errors.js';
import { exportOutputs } from '../engine/export.js';
import { formatBuildError } from '../engine/report.js';
import { parseSecrets, parseSsh } from '../engine/session.js';
import { startRecording } from '../history/recorder.js';
import { describeSolve, recordOptions } from '../history/describe.js';

/** Parsed flags of `kiln solve`. */
export interface SolveFlags {
  readonly output: string[];
  readonly local: string[];
  readonly secret: string[];
  readonly ssh: string[];
  readonly allow: string[];
  readonly tag: string[];
  readonly platform?: string;
  readonly progress: string;
  readonly cache: boolean;
  readonly root?: string;
  /** `--parallelism <n>`: containers at once (CPU-bound ops: at most min(n, CPUs)). */
  readonly parallelism?: number;
  /** `--source-policy-file FILE`; else `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`. */
  readonly sourcePolicyFile?: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * Registers `kiln solve [FILE|-]`: runs a marshaled LLB Definition from any producer (kiln's State
 * API, `buildctl`-style Go clients, `kiln llb`), with `--local NAME=DIR` for its local sources.
 */
export function registerSolve(program: Command, io: CliIo): void {
  program
    .command('solve')
    .description('run a raw LLB definition (pb bytes, e.g. from `go run … | kiln solve -`)')
    .argument('[file]', 'definition file, or - for stdin (default)')
    .option('-o, --output <spec>', 'output: type=oci|docker|image|registry|local|tar,… (repeatable)', collect, [])
    .option('--local <name=dir>', 'directory for local source NAME (repeatable)', collect, [])
    .option('--secret <spec>', 'secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)', collect, [])
    .option('--ssh <spec>', 'ssh agent: default, ID=SOCKET or ID=KEYFILE (repeatable)', collect, [])
    .option('--allow <entitlement>', 'allow security.insecure or network.host (repeatable)', collect, [])
    .option('-t, --tag <name>', 'image name for image outputs (repeatable)', collect, [])
    .option('--platform <platform>', 'platform recorded in an exported image config')
    .addOption(new Option('--progress <mode>', 'progress output').choices(['auto', 'plain', 'tty', 'rawjson', 'quiet']).default('auto'))
    .option('--no-cache', 'do not use the cache')
    .option('--debug', 'show stack traces for errors')
    .option('--root <dir>', 'kiln state directory')
    .option('--parallelism <n>', 'containers run at once (CPU-bound steps: at most the CPU count); default max(8, 4 x CPUs)', parsePositiveInt)
    .option('--source-policy-file <file>', 'source policy (JSON): allow, deny or convert the sources of the definition (default: $EXPERIMENTAL_BUILDKIT_SOURCE_POLICY)')
    .action(async (file: string | undefined, flags: SolveFlags, cmd: Command) => {
      await solveCommand(file, flags, io, cmd.optsWithGlobals<{ debug?: boolean }>().debug === true);
    });
}

/** Runs `kiln solve`; failures are printed and thrown as {@link ReportedError}. */
export async function solveCommand(file: string | undefined, flags: SolveFlags, io: CliIo, debug = false): Promise<void> {
  let lease: EngineLease | undefined;
  let cancelled = false;
  let progress: ReturnType<typeof startProgress> | undefined;
  let closeSsh: (() => Promise<void>) | undefined;
  let removeOutputs: (() => Promise<void>) | undefined;
  try {
    const def = await readDefinition(file, io);
    const sourcePolicy = await loadSourcePolicy(io, flags.sourcePolicyFile);
    const localDirs = await localFlags(flags.local, localSourceNames(def), io);
    // As kiln build: dest=- (or -o -) is stdout, a device or FIFO is written in place, a symlink through.
    const parsed = await parseOutputs(flags.output, io, flags.tag);
    removeOutputs = parsed.remove;
    const outputs = parsed.specs.map((s) => (s.type !== 'local' && s.type !== 'tar' && s.names.length === 0 && flags.tag.length > 0 ? { ...s, names: flags.tag } : s));
    const displayDests = new Map(parsed.redirects.map((r) => [r.file, r.display]));
    if (outputs.length === 0 && flags.tag.length > 0) outputs.push(parseOutputSpec(`type=image,name=${flags.tag.join(',')}`));
    const secrets = await parseSecrets(flags.secret, callerEnv(io), callerPath(io, '.'));
    const ssh = await parseSsh(flags.ssh, callerEnv(io), callerPath(io, '.'));
    closeSsh = ssh.close;
    const platform = flags.platform === undefined ? hostPlatform() : parsePlatform(flags.platform);
    const l = (lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path }));
    const e = l.engine;
    const display = (progress = startProgress(flags.progress, io));
    const solver = e.solver({ localDirs, secrets, ssh: ssh.sockets, allowInsecure: flags.allow.includes('security.insecure'), allowNetworkHost: flags.allow.includes('network.host'), platform, ...(flags.parallelism === undefined ? {} : { parallelism: flags.parallelism }) });
    await e.credentials.run(callerCredentials(io), () => withInterrupt(io, async (signal) => {
      await l.begin(signal);
      const recording = startRecording(describeSolve({ file: file === undefined || file === '-' ? '-' : callerPath(io, file), localDirs, secrets: Object.keys(secrets), ssh: Object.keys(ssh.sockets), ...(flags.platform === undefined ? {} : { platform: flags.platform }), noCache: !flags.cache }), display.sink, { ...recordOptions(io, e.root, signal), displayDests });
      const progress = recording.sink;
      const backend = new SolverBackend(e, solver, { progress, signal, noCache: !flags.cache, ...(sourcePolicy === undefined ? {} : { sourcePolicy }) });
      try {
        const ref = await backend.solve(def, { signal });
        await recording.completed({ exports: outputs.length > 0 ? await exportOutputs(e, outputs, { ref, platform }, { progress, signal, displayDests, ...(solver.images === undefined ? {} : { images: solver.images }) }) : [] });
      } catch (err) {
        await recording.failed(err);
        throw err;
      } finally {
        await backend.release();
      }
    }));
    progress = undefined;
    await display.finish();
    await parsed.deliver(io);
  } catch (e) {
    await progress?.finish().catch(() => undefined);
    // `kiln solve … -o - | head`: the reader had what it wanted (cleaned up below).
    if (e instanceof BrokenPipeError) throw new ReportedError(0, e.message);
    cancelled = (e as { code?: unknown }).code === 'KLN0705';
    io.stderr.write(formatBuildError(e));
    if (debug && e instanceof Error && e.stack !== undefined) io.stderr.write(`${e.stack}\n`);
    throw new ReportedError(cancelled ? 130 : 1, e instanceof Error ? e.message : String(e));
  } finally {
    // Automatic GC (docs/gc.md), as after kiln build; not after Ctrl-C.
    const gc = lease === undefined || cancelled ? undefined : gcAfterBuild(lease.engine, io);
    lease?.release();
    await closeSsh?.();
    await removeOutputs?.();
    await gc?.();
  }
}

/** The names of the definition's local sources (`local://NAME`). */
function localSourceNames(def: Definition): string[] {
  const names = new Set<string>();
  for (const bytes of def.def) {
    const op = decodeOp(bytes);
    if (op.kind === 'source' && op.source.identifier?.startsWith('local://') === true) names.add(op.source.identifier.slice('local://'.length));
  }
  return [...names];
}

/**
 * `--local NAME=DIR` values, checked before anything runs as BuildKit's client checks them
 * (a missing directory, a local source of the definition without one); a NAME the definition
 * does not read is only a warning (a typo, or flags shared by several definitions).
 */
async function localFlags(values: readonly string[], needed: readonly string[], io: CliIo): Promise<Record<string, string>> {
  const localDirs: Record<string, string> = {};
  for (const l of values) {
    const i = l.indexOf('=');
    if (i <= 0) throw new EngineError('KLN0702', `invalid --local "${l}": expected NAME=DIR`);
    const [name, given] = [l.slice(0, i), l.slice(i + 1)];
    const dir = callerPath(io, given);
    const st = await stat(dir).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error || !st.isDirectory()) {
      throw new EngineError('KLN0702', `--local ${name}: cannot use ${given}: ${st instanceof Error ? (st.code === 'ENOENT' ? 'no such directory' : st.message) : 'not a directory'}`, { hint: 'give the directory the local source reads: --local NAME=DIR' });
    }
    localDirs[name] = dir;
    if (!needed.includes(name)) {
      const near = suggest(name, needed);
      io.stderr.write(`WARNING: --local ${name}: the definition has no local source "${name}"${near === undefined ? '' : ` (did you mean ${near}?)`}\n`);
    }
  }
  const missing = needed.filter((n) => localDirs[n] === undefined);
  if (missing.length > 0) {
    throw new EngineError('KLN0702', `the definition reads local source${missing.length > 1 ? 's' : ''} ${missing.map((n) => JSON.stringify(n)).join(', ')}, and no directory was given for ${missing.length > 1 ? 'them' : 'it'}`, {
      hint: missing.map((n) => `--local ${n}=DIR`).join(' '),
    });
  }
  return localDirs;
}

async function readDefinition(file: string | undefined, io: CliIo): Promise<Definition> {
  // Waiting for Ctrl-D on a terminal looked like a hang (`kiln solve` without a file or a pipe).
  if ((file === undefined || file === '-') && stdinIsTerminal(io)) {
    throw new EngineError('KLN0706', 'kiln solve reads the LLB definition from standard input, which is a terminal', { hint: 'pipe one in (kiln llb . --format pb | kiln solve) or pass a file: kiln solve llb.pb' });
  }
  let bytes: Uint8Array;
  try {
    bytes = file === undefined || file === '-' ? await readAll(io.stdin) : await readFile(callerPath(io, file));
  } catch (cause) {
    throw new EngineError('KLN0706', `cannot read ${file}: ${(cause as { code?: string }).code === 'ENOENT' ? 'no such file' : String(cause)}`);
  }
  if (bytes.length === 0) throw new EngineError('KLN0706', 'the LLB definition is empty', { hint: 'pipe a marshaled Definition (pb bytes) into `kiln solve -`' });
  try {
    return decodeDefinition(bytes);
  } catch (cause) {
    throw new EngineError('KLN0706', 'the input is not a marshaled LLB Definition', { cause, hint: 'kiln solve reads pb bytes (llb.Definition.ToPB().Marshal()), not JSON' });
  }
}
