// Loads the CLI from the one-file bundle (cli/dist/kiln.cjs) through vm.Script with its V8 code
// cache, when the bundle matches the current tsc output; see cli/scripts/bundle.mjs. Node
// built-ins only.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script, constants } from 'node:vm';
import { BUNDLE, CACHE, bundleIsFresh } from './bundle-stamp.js';

/**
 * The CLI's `main`, from the bundle, or undefined when there is no bundle for the current tsc
 * output (the caller then imports dist/main.js). `writeCache()` stores V8's code cache of the
 * bundle as it is now: after commands ran, it holds the bytecode of every function they called.
 */
export function loadBundle(debug = () => undefined) {
  if (!bundleIsFresh()) return undefined;
  const cache = cacheFile();
  const loaded = identity(cache);
  let cachedData;
  try {
    cachedData = readFileSync(cache);
  } catch {
    // none yet: compiled as usual
  }
  // latin1: the bundle is ASCII (esbuild's charset=ascii), so no UTF-8 decoding. V8 checks the
  // cache against this source and this V8 (version, flags) and ignores a mismatch.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${readFileSync(BUNDLE, 'latin1')}\n})`, {
    filename: BUNDLE,
    ...(cachedData === undefined ? {} : { cachedData }),
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  debug(`loading cli/dist/kiln.cjs, code cache ${cachedData === undefined ? 'absent' : script.cachedDataRejected === true ? 'rejected' : 'used'}`);
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
  return {
    main: module.exports.main,
    /** No cache V8 could use: writing one after the command helps the next run with these flags. */
    cacheMissing: cachedData === undefined || script.cachedDataRejected === true,
    /** Writes the cache, unless another process wrote one since this one loaded (a training run's wins). */
    writeCache(force = false) {
      if (!force && identity(cache) !== loaded) return;
      const tmp = `${cache}.${process.pid}.tmp`;
      writeFileSync(tmp, script.createCachedData());
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
