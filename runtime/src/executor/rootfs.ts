import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
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

/** Mount points of every container (see {@link standardMounts}): directories, then files. */
const STANDARD_DIRS = ['proc', 'dev', 'sys'];
const ETC_FILES = ['etc/hosts', 'etc/resolv.conf'];

/** The two variants of the mount point layer ({@link mountPointLayers}). */
export interface MountPointLayers {
  /** `proc`, `dev`, `sys`. */
  readonly dirs: string;
  /** Those plus empty `etc/hosts` and `etc/resolv.conf`, for images that have an `/etc` directory. */
  readonly withEtc: string;
}

/**
 * Read-only layers holding only empty mount points, placed *below* all of a run's layers (made
 * once under `dir`, a tmpfs). An image without them (a minimal one; almost every image lacks
 * /etc/hosts and /etc/resolv.conf) otherwise makes runc create them in the writable layer on every
 * run — copying /etc up for the two files — and kiln remove them again afterwards: about ten
 * metadata operations on the snapshots' disk per exec, several inside the container's start-up.
 * At the bottom they hide nothing: any layer that has, or whites out, one of these names wins,
 * and what the run writes never lands in them. The container sees what it saw before (the paths
 * are mount points). Checked on every run (one stat): the runtime dir may have been cleaned.
 */
export function mountPointLayers(dir: string): MountPointLayers {
  const layers = { dirs: join(dir, 'dirs'), withEtc: join(dir, 'etc') };
  if (existsSync(join(layers.withEtc, ETC_FILES[ETC_FILES.length - 1] as string))) return layers;
  for (const layer of [layers.dirs, layers.withEtc]) {
    for (const d of STANDARD_DIRS) mkdirSync(join(layer, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(layers.withEtc, 'etc'), { recursive: true, mode: 0o755 });
  // The last file is the marker checked above: written last, each atomically.
  for (const f of ETC_FILES) {
    const tmp = join(layers.withEtc, `${f}.${process.pid}.tmp`);
    writeFileSync(tmp, '', { mode: 0o644 });
    renameSync(tmp, join(layers.withEtc, f));
  }
  return layers;
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
  mountPoints?: MountPointLayers,
  /** Whether /etc/hosts and /etc/resolv.conf may come from the mount point layer (not when the process may unmount them: insecure). */
  etcMountPoints = true,
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
  // The /etc variant only under an image's own /etc directory: it never supplies /etc itself.
  const bottomLayer =
    mountPoints === undefined
      ? undefined
      : etcMountPoints && new RootView(upper ?? emptyRoot, lowers, lowerStats).lstat('etc')?.stat.isDirectory() === true
        ? mountPoints.withEtc
        : mountPoints.dirs;
  const bottom = bottomLayer === undefined ? [] : [bottomLayer];
  if (!readonly && upper !== undefined) {
    const options = bottom.length === 0 ? m.options : m.options.map((o) => (o.startsWith('lowerdir=') ? `${o}:${bottom.join(':')}` : o));
    return {
      path: emptyRoot,
      mount: { destination: '/', type: 'overlay', source: 'overlay', options },
      readonly: false,
      keepChanges: true,
      view: new RootView(upper, [...lowers, ...bottom], lowerStats, bottomLayer),
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
    view: new RootView(scratch, all, upper === undefined ? lowerStats : undefined, bottomLayer),
  };
}
