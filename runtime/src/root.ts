import { join } from 'node:path';
import { ContentStore } from './content/store.js';
import { ImageStore } from './image/image-store.js';

/** Where the kiln root comes from, for diagnostics (`kiln du` prints it). */
export type KilnRootSource = 'option' | 'env' | 'default-root' | 'default-user';

/** A resolved kiln state directory. */
export interface KilnRoot {
  readonly path: string;
  readonly source: KilnRootSource;
}

/** Inputs to {@link resolveKilnRoot}; the CLI passes `process.env`, `process.getuid()` and `os.homedir()`. */
export interface ResolveKilnRootOptions {
  /** `--root`; wins over everything. */
  readonly root?: string | undefined;
  /** The environment to read `KILN_ROOT`, `XDG_DATA_HOME` from. Nothing is read implicitly. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Effective uid; 0 selects `/var/lib/kiln`. */
  readonly uid?: number | undefined;
  /** Home directory, used when `XDG_DATA_HOME` is unset (`~/.local/share/kiln`). */
  readonly home?: string | undefined;
}

/**
 * Resolves the kiln root: `--root` option, then `KILN_ROOT`, then `/var/lib/kiln` for root,
 * otherwise `$XDG_DATA_HOME/kiln` (default `~/.local/share/kiln`). Pure: the caller passes env/uid/home.
 */
export function resolveKilnRoot(opts: ResolveKilnRootOptions = {}): KilnRoot {
  if (opts.root !== undefined && opts.root !== '') return { path: opts.root, source: 'option' };
  const env = opts.env ?? {};
  const fromEnv = env['KILN_ROOT'];
  if (fromEnv !== undefined && fromEnv !== '') return { path: fromEnv, source: 'env' };
  if (opts.uid === 0) return { path: '/var/lib/kiln', source: 'default-root' };
  const xdg = env['XDG_DATA_HOME'];
  if (xdg !== undefined && xdg !== '') return { path: join(xdg, 'kiln'), source: 'default-user' };
  const home = opts.home ?? env['HOME'];
  if (home === undefined || home === '') return { path: '/var/lib/kiln', source: 'default-root' };
  return { path: join(home, '.local', 'share', 'kiln'), source: 'default-user' };
}

/** The content store and image records under one kiln root. */
export interface KilnStores {
  readonly root: string;
  readonly content: ContentStore;
  readonly images: ImageStore;
}

/** Opens (creating if needed) `<root>/content` and `<root>/images`. */
export async function openKilnStores(root: string): Promise<KilnStores> {
  return { root, content: await ContentStore.open(root), images: await ImageStore.open(root) };
}
