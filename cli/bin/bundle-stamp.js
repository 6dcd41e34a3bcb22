// Where the CLI bundle lives and how kiln.js tells that it matches the compiled packages
// (cli/scripts/bundle.mjs makes it). Node built-ins only: this runs before anything else loads.
'use strict';
const { readFileSync, statSync } = require('node:fs');
const { join } = require('node:path');

const repo = join(__dirname, '..', '..');
/** The bundle, its V8 code cache and its stamp under a checkout `root`. */
function paths(root = repo) {
  const bundle = join(root, 'cli', 'dist', 'kiln.cjs');
  return { bundle, cache: `${bundle}.cache`, stamp: `${bundle}.stamp.json`, client: join(root, 'cli', 'dist', 'client.cjs') };
}
const { bundle: BUNDLE, cache: CACHE, stamp: STAMP, client: CLIENT } = paths();

/** The packages whose compiled output the bundle holds. */
const PACKAGES = ['llb-core', 'frontends/dockerfile', 'frontends/buildpacks', 'frontends/ts-dsl', 'runtime', 'solver', 'gateway', 'cli'];

/**
 * The bundle also holds the npm dependencies it imports (commander, protobufjs, chevrotain, …):
 * npm rewrites these lock files when it installs, and a bundle made before is stale. Optional (a
 * checkout installed by another client has neither).
 */
const LOCKS = ['package-lock.json', join('node_modules', '.package-lock.json')];

/**
 * The identity of what the bundle is made from, by size and mtime: each package's build info
 * file (`tsc -b` rewrites it whenever it emits), the npm lock files and the bundle and training
 * scripts.
 */
function stampOf(root = repo) {
  return [...PACKAGES.map((p) => join(p, 'dist', '.tsbuildinfo')), ...LOCKS, join('cli', 'scripts', 'bundle.mjs'), join('cli', 'scripts', 'train.mjs')].map((f) => {
    const st = statSync(join(root, f), { throwIfNoEntry: false });
    return [f, st?.size ?? -1, st?.mtimeMs ?? -1];
  });
}

/**
 * True when the bundle was made from the tsc output that is there now. A `tsc -b` after
 * `npm run build` (a developer's edit) makes it stale, and kiln.js runs dist/main.js instead.
 */
function bundleIsFresh(root = repo) {
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
    now.every((entry, i) => (entry[1] !== -1 || LOCKS.includes(entry[0])) && entry.every((v, j) => recorded[i]?.[j] === v)) &&
    statSync(paths(root).bundle, { throwIfNoEntry: false }) !== undefined &&
    statSync(paths(root).client, { throwIfNoEntry: false }) !== undefined
  );
}

module.exports = { paths, BUNDLE, CACHE, STAMP, CLIENT, stampOf, bundleIsFresh };
