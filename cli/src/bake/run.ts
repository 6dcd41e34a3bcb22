import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { formatReference, parseOutputSpec, parseReference, type ExportResult } from '@kiln/runtime';
import { parseFlags } from '../commands/build.js';
import { callerEnv, type CliIo } from '../io.js';
import { kilnRoot, ReportedError, startProgress, withInterrupt } from '../engine/cli-support.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { callerCredentials } from '../engine/credentials.js';
import { runBuild, type BuildReport, type BuildRequest } from '../engine/build.js';
import { formatBuildError } from '../engine/report.js';
import type { KilnEngine } from '../engine/engine.js';
import type { ParsedOutputs } from '../engine/output-targets.js';
import { parseOverrides, printResolved, resolveTargets, type Resolved } from './config.js';
import { BakeError } from './errors.js';
import { readBakeFiles } from './files.js';
import { targetBuild, type TargetBuild } from './flags.js';
import { loadConfig } from './load.js';
import { BakeProgress } from './progress.js';

/** Parsed flags of `kiln bake`. */
export interface BakeFlags {
  readonly file: string[];
  readonly set: string[];
  readonly print?: boolean;
  readonly list?: string;
  readonly push?: boolean;
  readonly load?: boolean;
  readonly cache: boolean;
  readonly pull?: boolean;
  readonly progress: string;
  readonly root?: string;
}

/** Reads the bake files and resolves the requested targets with the flags' overrides. */
export async function resolveBake(targets: readonly string[], flags: BakeFlags, io: CliIo): Promise<Resolved & { readonly dirs: ReadonlyMap<string, string> }> {
  if (flags.load === true) {
    throw new BakeError('KLN0855', '--load is not applicable: kiln has no Docker daemon to load images into', {
      hint: "tags without an output store the image in kiln's image store (see kiln images); --set TARGET.output=type=docker,dest=FILE.tar writes a tarball for docker load",
    });
  }
  const env = callerEnv(io);
  const config = loadConfig(await readBakeFiles(flags.file, io), env);
  // buildx appends the command's shorthands to the --set values.
  const sets = [...flags.set];
  if (config.targets.size > 0) {
    if (flags.cache === false) sets.push('*.no-cache=true');
    if (flags.pull === true) sets.push('*.pull=true');
    if (flags.push === true) sets.push('*.push=true');
  }
  const resolved = resolveTargets(config, targets, parseOverrides(config, sets, env));
  return { ...resolved, dirs: config.dirs };
}

/** What one target's build ended with. */
type Outcome = { readonly ok: true; readonly report: BuildReport; readonly outputs: ParsedOutputs } | { readonly ok: false; readonly error: unknown; readonly dockerfileText?: string; readonly dockerfileName: string };

/**
 * `kiln bake`: every target's build runs at once in one engine (steps the builds share run
 * once, through the engine's shared solver) with one progress stream; a target named by another's
 * `target:NAME` context is built first and its result given as that named context. Every target
 * runs to its end; any failure is printed with its target and the command fails (exit 1).
 */
export async function bakeCommand(names: readonly string[], flags: BakeFlags, io: CliIo, debug = false): Promise<void> {
  const cleanup: (() => Promise<void>)[] = [];
  let lease: EngineLease | undefined;
  let display: ReturnType<typeof startProgress> | undefined;
  const failures: { target: string; text: string }[] = [];
  try {
    const resolved = await resolveBake(names, flags, io);
    if (flags.print === true) {
      io.stdout.write(printResolved(resolved));
      return;
    }
    if (resolved.targets.size === 0) throw new BakeError('KLN0853', 'no targets to build');
    const env = callerEnv(io);
    const inlineDir = await mkdtemp(join(tmpdir(), 'kiln-bake-'));
    cleanup.push(() => rm(inlineDir, { recursive: true, force: true }));
    const fileRelative = env['BUILDX_BAKE_FILE_RELATIVE_PATHS'] === '1' || env['BUILDX_BAKE_FILE_RELATIVE_PATHS'] === 'true';
    const builds: TargetBuild[] = [];
    for (const rt of resolved.targets.values()) {
      builds.push(await targetBuild(rt, { progress: flags.progress, ...(flags.root === undefined ? {} : { root: flags.root }) }, io, { fileDir: resolved.dirs.get(rt.name), fileRelative, inlineDir }));
    }
    for (const b of builds) for (const w of b.warnings) io.stderr.write(`WARNING: ${w}\n`);
    // Targets that are some target's context export their result as an image of kiln's store
    // (a private name, removed afterwards) that the other build reads as docker-image://.
    const linkedNames = new Set(builds.flatMap((b) => [...b.links.values()]));
    const linkRefs = new Map<string, string>();
    for (const n of linkedNames) linkRefs.set(n, formatReference(parseReference(`kiln.local/bake/${n.toLowerCase()}-${randomBytes(4).toString('hex')}:latest`)));
    // Every target's request is made before anything runs: a bad value fails the whole bake at once.
    const requests = new Map<string, { req: BuildRequest; outputs: ParsedOutputs; build: TargetBuild }>();
    for (const b of builds) {
      const { req, outputs } = await parseFlags(b.context, b.flags, io, cleanup);
      const ref = linkRefs.get(b.name);
      requests.set(b.name, { req: ref === undefined ? req : { ...req, outputs: [...req.outputs, parseOutputSpec(`type=image,name=${ref}`)] }, outputs, build: b });
    }
    const l = (lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path }));
    const d = (display = startProgress(flags.progress, io));
    const progress = new BakeProgress(d.sink);
    const e = l.engine;
    const onWarning = (w: { file?: string; line?: number; column?: number; message: string }): void =>
      void io.stderr.write(`WARNING: ${w.file === undefined ? '' : `${w.file}:${w.line ?? 0}:${w.column ?? 1}: `}${w.message}\n`);
    const outcomes = await e.credentials.run(callerCredentials(io), () =>
      withInterrupt(io, async (signal) => {
        await l.begin(signal);
        const running = new Map<string, Promise<Outcome>>();
        const start = (name: string): Promise<Outcome> => {
          let p = running.get(name);
          if (p === undefined) {
            p = runTarget(name);
            running.set(name, p);
          }
          return p;
        };
        const runTarget = async (name: string): Promise<Outcome> => {
          const r = requests.get(name);
          if (r === undefined) return { ok: false, error: new BakeError('KLN0853', `target "${name}" is not resolved`), dockerfileName: 'Dockerfile' };
          const dockerfileName = r.req.dockerfile === undefined ? 'Dockerfile' : basename(r.req.dockerfile);
          const dockerfileText = r.req.dockerfileText ?? (await readFile(r.req.dockerfile ?? join(r.req.context, 'Dockerfile'), 'utf8').catch(() => undefined));
          const fail = (error: unknown): Outcome => ({ ok: false, error, ...(dockerfileText === undefined ? {} : { dockerfileText }), dockerfileName });
          // A `target:NAME` context waits for NAME's image.
          const contexts = [...(r.req.buildContexts ?? [])];
          for (const [ctxName, other] of r.build.links) {
            const dep = await start(other);
            const ref = linkRefs.get(other);
            const image = dep.ok ? dep.report.exports.find((x) => x.digest !== undefined && ref !== undefined && x.names.includes(ref)) : undefined;
            if (!dep.ok || image?.digest === undefined || ref === undefined) {
              return fail(new BakeError('KLN0856', `target "${name}": its context "${ctxName}" is target "${other}", which ${dep.ok ? 'made no image' : 'failed'}`));
            }
            contexts.push({ kind: 'image', name: ctxName, ref: `${ref}@${image.digest}` });
          }
          try {
            const report = await runBuild(e, {
              ...r.req,
              buildContexts: contexts,
              progress: progress.forTarget(name),
              signal,
              onWarning,
              onCacheWarning: (m) => void io.stderr.write(`WARNING: [${name}] ${m}\n`),
            });
            return { ok: true, report, outputs: r.outputs };
          } catch (err) {
            return fail(err);
          }
        };
        const names = [...requests.keys()];
        const results = await Promise.all(names.map(start));
        return names.map((n, i) => [n, results[i]] as const);
      }),
    );
    await d.finish();
    display = undefined;
    for (const [name, o] of outcomes) {
      if (o === undefined) continue;
      if (!o.ok) {
        failures.push({ target: name, text: formatBuildError(o.error, { ...(o.dockerfileText === undefined ? {} : { dockerfileText: o.dockerfileText }), dockerfileName: o.dockerfileName }) });
        if (debug && o.error instanceof Error && o.error.stack !== undefined) failures.push({ target: name, text: `${o.error.stack}\n` });
        continue;
      }
      if (o.report.call !== undefined) io.stdout.write(`${name}:\n${o.report.call.text}`);
      else await o.outputs.deliver(io);
      printExports(name, o.report.exports, linkRefs.get(name), io);
    }
    // The private images go again: by name, and by the name@digest the context's resolve recorded.
    for (const [name, ref] of linkRefs) {
      await e.images.delete(ref).catch(() => false);
      const o = outcomes.find(([n]) => n === name)?.[1];
      const digest = o?.ok === true ? o.report.exports.find((x) => x.names.includes(ref))?.digest : undefined;
      if (digest !== undefined) await e.images.delete(`${ref}@${digest}`).catch(() => false);
    }
  } catch (err) {
    await display?.finish().catch(() => undefined);
    io.stderr.write(formatBuildError(err, {}));
    if (debug && err instanceof Error && err.stack !== undefined) io.stderr.write(`${err.stack}\n`);
    throw new ReportedError((err as { code?: unknown }).code === 'KLN0705' ? 130 : 1, err instanceof Error ? err.message : String(err));
  } finally {
    lease?.release();
    for (const c of cleanup) await c().catch(() => undefined);
  }
  if (failures.length > 0) {
    for (const f of failures) io.stderr.write(`target ${f.target} failed:\n${f.text}`);
    const names = [...new Set(failures.map((f) => f.target))];
    throw new ReportedError(1, `${names.length} target(s) failed: ${names.join(', ')}`);
  }
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
