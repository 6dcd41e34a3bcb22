#!/usr/bin/env node
// A running `kiln daemon` for this command's root serves it (see cli/src/daemon); otherwise kiln
// runs in this process: from the one-file bundle with its code cache when `npm run build` made
// one for the current tsc output (cli/scripts/bundle.mjs), else from dist/main.js. The daemon
// check loads only Node built-ins.
import { runViaDaemon } from '../dist/daemon/client.js';

const viaDaemon = await runViaDaemon(process.argv);
process.exitCode = viaDaemon ?? (await (await loadMain())(process.argv));

async function loadMain() {
  const { BUNDLE, CACHE, bundleIsFresh } = await import('./bundle-stamp.js');
  // KILN_DEBUG_LOAD=1 says which way kiln loaded (and whether V8 took the code cache).
  const debug = process.env.KILN_DEBUG_LOAD === '1' ? (s) => process.stderr.write(`kiln: ${s}\n`) : () => undefined;
  if (process.env.KILN_BUNDLE === '0' || !bundleIsFresh()) {
    debug('loading cli/dist/main.js (no bundle for the current tsc output, or KILN_BUNDLE=0)');
    return (await import('../dist/main.js')).main;
  }
  const [{ readFileSync, renameSync, writeFileSync }, { createRequire }, { Script, constants }, { dirname }] = await Promise.all([
    import('node:fs'),
    import('node:module'),
    import('node:vm'),
    import('node:path'),
  ]);
  let cachedData;
  try {
    cachedData = readFileSync(CACHE);
  } catch {
    // none yet: compiled as usual
  }
  // V8 checks the cache against this source and this V8 (version, flags) and ignores a mismatch.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${readFileSync(BUNDLE, 'latin1')}\n})`, {
    filename: BUNDLE,
    ...(cachedData === undefined ? {} : { cachedData }),
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  debug(`loading cli/dist/kiln.cjs, code cache ${cachedData === undefined ? 'absent' : script.cachedDataRejected === true ? 'rejected' : 'used'}`);
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
  const { main } = module.exports;
  if (process.env.KILN_CODE_CACHE !== 'write') return main;
  // The build's training run: the cache is taken after the command, so it holds the bytecode of
  // every function the command called, not only the top level.
  return async (argv) => {
    const code = await main(argv);
    const tmp = `${CACHE}.${process.pid}.tmp`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, CACHE);
    return code;
  };
}
