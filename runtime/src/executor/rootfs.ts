import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WorkerError } from '../api/errors.js';
import type { ExecRequest } from '../api/executor.js';
import { RootView, type LowerStatCache } from './root-view.js';
import type { OciMount } from './spec.js';

/** How the container's root is put together. */
export interface RootLayout {
  /** `root.path` of config.json. */
  readonly path: string;
  /** An overlay runc mounts on `/` first, if any. */
  readonly mount: OciMount | undefined;
  readonly readonly: boolean;
  /** Whether writes land in the caller's snapshot (then mount stubs must be cleaned up). */
  readonly keepChanges: boolean;
  readonly view: RootView;
}

function layersOf(options: readonly string[]): { upper: string | undefined; lowers: string[] } {
  const upper = options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  const lowers = options
    .filter((o) => o.startsWith('lowerdir='))
    .flatMap((o) => o.slice('lowerdir='.length).split(':'))
    .filter((l) => l !== '');
  return { upper, lowers };
}

/** Top-level mount points of every container (see {@link standardMounts}). */
const STANDARD_DIRS = ['proc', 'dev', 'sys'];

/**
 * A read-only layer holding only the empty directories `proc`, `dev` and `sys`, placed *below*
 * all of a run's layers (created once under `dir`). An image without them (a minimal or scratch
 * based one) otherwise makes runc create them in the writable layer on every run, and kiln remove
 * them again afterwards: six metadata operations on the snapshots' disk per exec (3-4 ms under
 * load). At the bottom it hides nothing: any layer that has, or whites out, one of these names
 * wins, and what the run writes never lands in it. The container sees exactly what it saw before
 * (the directories are mount points). Returns the layer's path.
 */
export function standardDirsLayer(dir: string): string {
  // Checked on every run (one stat on a tmpfs): the runtime dir may have been cleaned meanwhile.
  if (existsSync(join(dir, STANDARD_DIRS[STANDARD_DIRS.length - 1] as string))) return dir;
  for (const d of STANDARD_DIRS) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  return dir;
}

/**
 * Chooses the root for a run from the snapshot's mounts:
 * - a writable bind (an active snapshot without parent): used in place;
 * - a writable overlay: runc mounts it on `/`;
 * - anything read-only: the layers become lowers of an overlay with a throw-away upper in
 *   `scratchDir` (runc needs somewhere to create mount points), and the root is remounted read-only.
 */
export async function rootLayout(
  req: ExecRequest,
  bundle: string,
  scratchDir: string,
  lowerStats?: LowerStatCache,
  bottomLayer?: string,
): Promise<RootLayout> {
  const m = req.rootfs[0];
  if (m === undefined || req.rootfs.length !== 1 || m.type === 'tmpfs') {
    throw new WorkerError('MOUNT_FAILED', 'the rootfs must be one bind or overlay mount (Snapshotter.mounts)');
  }
  const emptyRoot = join(bundle, 'rootfs');
  mkdirSync(emptyRoot);
  const { upper, lowers } = m.type === 'bind' ? { upper: m.source, lowers: [] as string[] } : layersOf(m.options);
  const readonly = req.readonlyRootfs === true || m.options.includes('ro') || upper === undefined;
  if (!readonly && m.type === 'bind') {
    return { path: m.source, mount: undefined, readonly: false, keepChanges: true, view: new RootView(m.source, []) };
  }
  const bottom = bottomLayer === undefined ? [] : [bottomLayer];
  if (!readonly && upper !== undefined) {
    const options = bottom.length === 0 ? m.options : m.options.map((o) => (o.startsWith('lowerdir=') ? `${o}:${bottom.join(':')}` : o));
    return {
      path: emptyRoot,
      mount: { destination: '/', type: 'overlay', source: 'overlay', options },
      readonly: false,
      keepChanges: true,
      view: new RootView(upper, [...lowers, ...bottom], lowerStats),
    };
  }
  const all = [...(upper === undefined ? [] : [upper]), ...lowers, ...bottom];
  // On disk, not in the (tmpfs) bundle: a process may write a lot before it is thrown away.
  const scratch = join(scratchDir, 'ro-upper');
  const work = join(scratchDir, 'ro-work');
  mkdirSync(scratch, { recursive: true });
  mkdirSync(work);
  return {
    path: emptyRoot,
    mount: {
      destination: '/',
      type: 'overlay',
      source: 'overlay',
      options: [`lowerdir=${all.join(':')}`, `upperdir=${scratch}`, `workdir=${work}`],
    },
    readonly: true,
    keepChanges: false,
    // An active snapshot's upper among the layers may still change: no shared lstat cache then.
    view: new RootView(scratch, all, upper === undefined ? lowerStats : undefined),
  };
}
