// Where the CLI bundle lives and how kiln.js tells that it matches the compiled packages
// (cli/scripts/bundle.mjs makes it). Node built-ins only: this runs before anything else loads.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The bundle, its V8 code cache and its stamp under a checkout `root`. */
export function paths(root = repo) {
  const bundle = join(root, 'cli', 'dist', 'kiln.cjs');
  return { bundle, cache: `${bundle}.cache`, stamp: `${bundle}.stamp.json` };
}
export const { bundle: BUNDLE, cache: CACHE, stamp: STAMP } = paths();

/** The packages whose compiled output the bundle holds. */
const PACKAGES = ['llb-core', 'frontends/dockerfile', 'frontends/buildpacks', 'frontends/ts-dsl', 'runtime', 'solver', 'gateway', 'cli'];

/**
 * The identity of what the bundle is made from, by size and mtime: each package's build info
 * file (`tsc -b` rewrites it whenever it emits) and the bundle and training scripts.
 */
export function stampOf(root = repo) {
  return [...PACKAGES.map((p) => join(p, 'dist', '.tsbuildinfo')), join('cli', 'scripts', 'bundle.mjs'), join('cli', 'scripts', 'train.mjs')].map((f) => {
    const st = statSync(join(root, f), { throwIfNoEntry: false });
    return [f, st?.size ?? -1, st?.mtimeMs ?? -1];
  });
}

/**
 * True when the bundle was made from the tsc output that is there now. A `tsc -b` after
 * `npm run build` (a developer's edit) makes it stale, and kiln.js runs dist/main.js instead.
 */
export function bundleIsFresh(root = repo) {
  let recorded;
  try {
    recorded = JSON.parse(readFileSync(paths(root).stamp, 'utf8'));
  } catch {
    return false;
  }
  const now = stampOf(root);
  return (
    Array.isArray(recorded) &&
    recorded.length === now.length &&
    now.every((entry, i) => entry[1] !== -1 && entry.every((v, j) => recorded[i]?.[j] === v)) &&
    statSync(paths(root).bundle, { throwIfNoEntry: false }) !== undefined
  );
}
