// Loads the CLI from the one-file bundle (cli/dist/kiln.cjs) through vm.Script with its V8 code
// cache, when the bundle matches the current tsc output; see cli/scripts/bundle.mjs. Node
// built-ins only.
'use strict';
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname } = require('node:path');
const vm = require('node:vm');
const { BUNDLE, CACHE, bundleIsFresh } = require('./bundle-stamp.js');

/**
 * The CLI's `main`, from the bundle, or undefined when there is no bundle for the current tsc
 * output (the caller then imports dist/main.js). `writeCache()` stores V8's code cache of the
 * bundle as it is now: after commands ran, it holds the bytecode of every function they called.
 */
function loadBundle(debug = () => undefined, fresh = bundleIsFresh()) {
  // Node 20 before 20.12 has no main-context loader for the bundle's `import()`: dist/main.js.
  const importModuleDynamically = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  if (importModuleDynamically === undefined || !fresh) return undefined;
  const cache = cacheFile();
  const loaded = identity(cache);
  // latin1: the bundle is ASCII (esbuild's charset=ascii), so no UTF-8 decoding.
  const source = readFileSync(BUNDLE, 'latin1');
  // Its first line names its content (cli/scripts/bundle.mjs: a hash of the rest).
  const first = source.slice(0, source.indexOf('\n') + 1);
  const tag = /^\/\*kiln-bundle [0-9a-f]{64}\*\/\n$/.test(first) ? Buffer.from(first, 'latin1') : undefined;
  let file;
  try {
    file = readFileSync(cache);
  } catch {
    // none yet: compiled as usual
  }
  // V8 checks a cache against its own version and flags but against the source only by length:
  // it would run an older bundle's bytecode for a new bundle of the same length (a run of the old
  // bundle can write its cache after a rebuild removed the old caches). So each cache starts with
  // the first line of the bundle it was made from, and one made from another bundle is not used.
  const tagged = tag !== undefined && file !== undefined && file.length > tag.length && file.subarray(0, tag.length).equals(tag);
  const cachedData = tagged ? file.subarray(tag.length) : undefined;
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: BUNDLE,
    ...(cachedData === undefined ? {} : { cachedData }),
    importModuleDynamically,
  });
  const rejected = (file !== undefined && !tagged) || script.cachedDataRejected === true;
  debug(`loading cli/dist/kiln.cjs, code cache ${file === undefined ? 'absent' : rejected ? 'rejected' : 'used'}`);
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
  return {
    main: module.exports.main,
    /** No cache V8 could use: writing one after the command helps the next run with these flags. */
    cacheMissing: tag !== undefined && (file === undefined || rejected),
    /** Writes the cache, unless another process wrote one since this one loaded (a training run's wins). */
    writeCache(force = false) {
      if (tag === undefined || (!force && identity(cache) !== loaded)) return;
      const tmp = `${cache}.${process.pid}.tmp`;
      writeFileSync(tmp, Buffer.concat([tag, script.createCachedData()]), { mode: 0o644 });
      renameSync(tmp, cache);
    },
  };
}

function identity(file) {
  const st = statSync(file, { throwIfNoEntry: false });
  return st === undefined ? 'absent' : `${st.ino}:${st.size}:${st.mtimeMs}`;
}

/**
 * The code cache for this process's V8 flags. V8 refuses a cache made under other flags (many of
 * them: --max-old-space-size, --expose-gc, …), so runs with node options of their own (execArgv,
 * NODE_OPTIONS) keep theirs next to the trained one, named by a hash of those options.
 */
function cacheFile() {
  const flags = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join('\0');
  if (flags === '') return CACHE;
  // FNV-1a: a name, not a security boundary, and node:crypto costs ~10 ms to load.
  let h = 0x811c9dc5;
  for (let i = 0; i < flags.length; i++) h = Math.imul(h ^ flags.charCodeAt(i), 0x01000193) >>> 0;
  return CACHE.replace(/\.cache$/, `.${h.toString(16).padStart(8, '0')}.cache`);
}

module.exports = { loadBundle };
