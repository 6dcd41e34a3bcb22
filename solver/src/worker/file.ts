import type { ChownOpt as LlbChown, FileOp, FileOpAction, UserOpt as LlbUser } from '@kiln/llb-core';
import { chmodSync, constants, copyFileSync, lchownSync, linkSync, lstatSync, lutimesSync } from 'node:fs';
import type { ChownOpt, FileAction, FileOpOptions, Mount, UserOpt } from '@kiln/runtime';
import { throwIfCancelled } from '../errors.js';
import { SolverError } from '../errors.js';
import type { WorkerOpContext } from '../llb/worker.js';
import type { WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { emptySnapshot } from './sources.js';
import { newSnapshotId, readableInPlace, snapshotSize } from './snapshots.js';

const NO_TIME = -1n;

/** llb-core's FileOpAction body → the runtime's FileAction (BuildKit defaults for unset fields). */
export function toRuntimeAction(a: FileOpAction, ownerRoots: (input: number) => string | undefined): FileAction {
  const owner = (o: LlbChown | undefined): ChownOpt | undefined => {
    if (o === undefined) return undefined;
    const u = (x: LlbUser | undefined): UserOpt | undefined => {
      if (x === undefined || x.kind === 'none') return undefined;
      if (x.kind === 'byId') return { byID: x.byId };
      const root = ownerRoots(x.byName.input ?? 0);
      return { byName: x.byName.name ?? '', ...(root === undefined ? {} : { root }) };
    };
    const user = u(o.user);
    const group = u(o.group);
    return { ...(user === undefined ? {} : { user }), ...(group === undefined ? {} : { group }) };
  };
  const withOwner = <T extends object>(t: T, o: LlbChown | undefined): T => {
    const c = owner(o);
    return c === undefined ? t : { ...t, owner: c };
  };
  const act = a.action;
  switch (act.kind) {
    case 'copy': {
      const c = act.copy;
      return withOwner(
        {
          kind: 'copy' as const,
          src: c.src ?? '',
          dest: c.dest ?? '',
          mode: c.mode ?? -1,
          followSymlink: c.followSymlink === true,
          dirCopyContents: c.dirCopyContents === true,
          attemptUnpackDockerCompatibility: c.attemptUnpackDockerCompatibility === true,
          createDestPath: c.createDestPath === true,
          allowWildcard: c.allowWildcard === true,
          allowEmptyWildcard: c.allowEmptyWildcard === true,
          timestamp: c.timestamp ?? NO_TIME,
          alwaysReplaceExistingDestPaths: c.alwaysReplaceExistingDestPaths === true,
          ...(c.includePatterns === undefined ? {} : { includePatterns: c.includePatterns }),
          ...(c.excludePatterns === undefined ? {} : { excludePatterns: c.excludePatterns }),
          ...(c.modeStr === undefined || c.modeStr === '' ? {} : { modeStr: c.modeStr }),
        },
        c.owner,
      );
    }
    case 'mkdir': {
      const m = act.mkdir;
      return withOwner({ kind: 'mkdir' as const, path: m.path ?? '', mode: m.mode ?? 0o755, makeParents: m.makeParents === true, timestamp: m.timestamp ?? NO_TIME }, m.owner);
    }
    case 'mkfile': {
      const m = act.mkfile;
      return withOwner({ kind: 'mkfile' as const, path: m.path ?? '', mode: m.mode ?? 0o644, data: m.data ?? new Uint8Array(), timestamp: m.timestamp ?? NO_TIME }, m.owner);
    }
    case 'rm': {
      const m = act.rm;
      return { kind: 'rm', path: m.path ?? '', allowNotFound: m.allowNotFound === true, allowWildcard: m.allowWildcard === true };
    }
    case 'symlink': {
      const m = act.symlink;
      return withOwner({ kind: 'symlink' as const, oldpath: m.oldpath ?? '', newpath: m.newpath ?? '', timestamp: m.timestamp ?? NO_TIME }, m.owner);
    }
    case 'none':
      throw new SolverError('SOLVER_INVALID_DEFINITION', 'file action without a body');
    default: {
      const never: never = act;
      return never;
    }
  }
}

/**
 * Runs a FileOp: actions in order; an action's `input` is an op input (its snapshot is the
 * parent of a new active snapshot), a previous action (written into the same active snapshot) or
 * scratch; `secondaryInput` (copy source) is mounted read-only. Actions with an output index are
 * committed. Active snapshots and mounts are always cleaned up.
 */
export async function runFileOp(deps: RuntimeWorkerDeps, op: FileOp, inputs: readonly WorkerRef[], ctx: WorkerOpContext): Promise<WorkerRef[]> {
  const s = deps.snapshotter;
  const n = inputs.length;
  const actions = op.actions ?? [];
  // Per action: the active snapshot holding its result and its mount path.
  const results: Array<{ active: string; path: string } | undefined> = [];
  const toRelease: Array<() => Promise<void>> = [];
  const actives = new Set<string>();
  const readonlyMounts = new Map<string, string>();
  /** Inputs read in place: committed snapshots that are one plain directory (see mountRO). */
  const layerDirs = new Set<string>();
  const activeMounts = new Map<string, () => Promise<void>>();
  const mountRO = async (snapshot: string, copiedFile?: string): Promise<string> => {
    const have = readonlyMounts.get(snapshot);
    if (have !== undefined) return have;
    // A committed snapshot that is one plain directory (a local source, a one-layer image) is
    // read where it is: no mount, and a copy from it may hard-link its files, because a
    // committed layer directory is never written to (the snapshotter's contract). So is its top
    // layer for a copy of one file that layer holds (see readableInPlace).
    const plain = plainLayerDir(await s.mounts(snapshot), 'ro');
    const dir = plain ?? (copiedFile === undefined ? undefined : await readableInPlace(s, snapshot, copiedFile));
    if (dir !== undefined) {
      // The top layer shows that one file only: not reused for other paths of the snapshot.
      if (plain !== undefined) readonlyMounts.set(snapshot, dir);
      layerDirs.add(dir);
      return dir;
    }
    const m = await s.mount(snapshot, ctx.signal);
    toRelease.push(() => m.release());
    readonlyMounts.set(snapshot, m.path);
    return m.path;
  };
  const outputs: WorkerRef[] = [];
  try {
    for (const [i, a] of actions.entries()) {
      const input = a.input ?? 0;
      let target: { active: string; path: string };
      if (input >= n) {
        const prev = results[input - n];
        if (prev === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', `file action ${i} uses the result of action ${input - n}, which has none`);
        target = prev;
      } else {
        const parent = input < 0 ? await emptySnapshot(deps) : inputs[input]?.snapshot;
        if (parent === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', `file action ${i} refers to missing input ${input}`);
        const active = newSnapshotId('file');
        await s.prepare(active, parent);
        actives.add(active);
        const m = await s.mount(active, ctx.signal);
        activeMounts.set(active, () => m.release());
        target = { active, path: m.path };
      }
      const secondary = a.secondaryInput ?? 0; // proto3: an unset index is 0; "none" is an explicit -1
      let src: string | undefined;
      if (secondary >= 0) {
        if (secondary >= n) src = results[secondary - n]?.path;
        else {
          const ref = inputs[secondary];
          if (ref !== undefined) src = await mountRO(ref.snapshot, singleCopiedFile(a));
        }
      }
      const ownerRoot = async (idx: number): Promise<string | undefined> => {
        if (idx >= n) return results[idx - n]?.path;
        const ref = inputs[idx];
        return ref === undefined ? undefined : mountRO(ref.snapshot);
      };
      // Resolve owner roots up front (the converter is synchronous).
      const roots = new Map<number, string | undefined>();
      for (const idx of ownerInputs(a)) roots.set(idx, await ownerRoot(idx));
      const action = toRuntimeAction(a, (idx) => roots.get(idx));
      const out = a.output ?? 0;
      // A copy out of an immutable layer dir into a result committed right away links its files.
      let copyLinks: FileOpOptions['copyLinks'];
      if (action.kind === 'copy' && out >= 0 && src !== undefined && layerDirs.has(src)) {
        const destLayer = ownLayerDir(await s.mounts(target.active));
        if (destLayer !== undefined) copyLinks = { destLayer, links: [], stamps: [] };
      }
      await deps.applyFileAction(
        action,
        { dest: target.path, ...(src === undefined ? {} : { src }) },
        { signal: ctx.signal, ownerRoot: target.path, ...(copyLinks === undefined ? {} : { copyLinks }) },
      );
      results[i] = target;
      if (out >= 0) {
        // Unmount before commit; an action with an output is not built on by later actions.
        await activeMounts.get(target.active)?.();
        activeMounts.delete(target.active);
        if (copyLinks !== undefined) await makeLinks(copyLinks, ctx.signal);
        const id = newSnapshotId('file');
        await s.commit(id, target.active);
        actives.delete(target.active);
        results[i] = undefined;
        outputs[out] = { snapshot: id, size: await snapshotSize(s, id) };
      }
    }
    return outputs;
  } finally {
    for (const r of activeMounts.values()) await r().catch(() => undefined);
    for (const r of toRelease.reverse()) await r().catch(() => undefined);
    for (const a of actives) await s.remove(a).catch(() => undefined);
  }
}

/**
 * The source path of a copy action that reads exactly one path (no wildcard characters, no
 * include/exclude patterns, no archive unpacking): such a copy can read it from the top layer
 * of a snapshot that holds it as a regular file (see readableInPlace).
 */
function singleCopiedFile(a: FileOpAction): string | undefined {
  const act = a.action;
  if (act.kind !== 'copy') return undefined;
  const c = act.copy;
  const src = c.src ?? '';
  if (src === '' || /[*?[\\]/.test(src)) return undefined;
  if ((c.includePatterns ?? []).length > 0 || (c.excludePatterns ?? []).length > 0 || c.attemptUnpackDockerCompatibility === true) return undefined;
  return src;
}

function ownerInputs(a: FileOpAction): number[] {
  const act = a.action;
  const o = act.kind === 'copy' ? act.copy.owner : act.kind === 'mkdir' ? act.mkdir.owner : act.kind === 'mkfile' ? act.mkfile.owner : act.kind === 'symlink' ? act.symlink.owner : undefined;
  const out: number[] = [];
  for (const u of [o?.user, o?.group]) if (u?.kind === 'byName') out.push(u.byName.input ?? 0);
  return out;
}

/** The directory of a mount that is a single bind mount with option `opt` (`ro`/`rw`), if it is one. */
function plainLayerDir(ms: readonly Mount[], opt: 'ro' | 'rw'): string | undefined {
  const only = ms[0];
  return ms.length === 1 && only?.type === 'bind' && only.options.includes(opt) ? only.source : undefined;
}

/** An active snapshot's own layer directory: its overlay upperdir, or the directory itself. */
function ownLayerDir(ms: readonly Mount[]): string | undefined {
  const only = ms[0];
  if (ms.length !== 1 || only === undefined) return undefined;
  if (only.type === 'overlay') {
    const upper = only.options.find((o) => o.startsWith('upperdir='));
    return upper === undefined ? undefined : upper.slice('upperdir='.length);
  }
  return plainLayerDir(ms, 'rw');
}

/** Errors after which a file is copied instead of linked (another filesystem, the link limit, permissions). */
const LINK_FALLBACK: ReadonlySet<unknown> = new Set<unknown>(['EXDEV', 'EMLINK', 'EPERM', 'EACCES', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Makes the hard links a copy deferred (runtime FileOpOptions.copyLinks) in the destination's
 * layer directory, now that it is not mounted (an overlay's upper dir may be changed offline
 * only), then restores the mtimes of the directories they went into. A file that cannot be
 * linked is copied with the source's owner, mode and times.
 */
async function makeLinks(plan: NonNullable<FileOpOptions['copyLinks']>, signal: AbortSignal): Promise<void> {
  for (const [i, l] of plan.links.entries()) {
    if (i % 1024 === 1023) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      throwIfCancelled(signal);
    }
    try {
      linkSync(l.from, l.to);
    } catch (err) {
      if (!LINK_FALLBACK.has(typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined)) throw err;
      const st = lstatSync(l.from, { bigint: true });
      copyFileSync(l.from, l.to, constants.COPYFILE_EXCL);
      lchownSync(l.to, Number(st.uid), Number(st.gid));
      chmodSync(l.to, Number(st.mode) & 0o7777);
      lutimesSync(l.to, nsToSeconds(st.atimeNs), nsToSeconds(st.mtimeNs));
    }
  }
  for (const d of plan.stamps) lutimesSync(d.path, d.atime, d.mtime);
}

function nsToSeconds(ns: bigint): number {
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}
