#!/usr/bin/env node
// A running `kiln daemon` for this command's root serves it (see cli/src/daemon); otherwise kiln
// runs in this process: from the one-file bundle with its code cache when `npm run build` made
// one for the current tsc output (cli/bin/load-bundle.js), else from dist/main.js. The daemon
// check loads only Node built-ins.
import { runViaDaemon } from '../dist/daemon/client.js';

const viaDaemon = await runViaDaemon(process.argv);
process.exitCode = viaDaemon ?? (await runHere(process.argv));

async function runHere(argv) {
  // KILN_DEBUG_LOAD=1 says which way kiln loaded (and whether V8 took the code cache).
  const debug = process.env.KILN_DEBUG_LOAD === '1' ? (s) => process.stderr.write(`kiln: ${s}\n`) : () => undefined;
  const bundle = process.env.KILN_BUNDLE === '0' ? undefined : (await import('./load-bundle.js')).loadBundle(debug);
  if (bundle === undefined) {
    debug('loading cli/dist/main.js (no bundle for the current tsc output, or KILN_BUNDLE=0)');
    return (await import('../dist/main.js')).main(argv);
  }
  const code = await bundle.main(argv);
  if (bundle.cacheMissing) {
    // Other node options or another Node than the build's: this run's cache serves the next one.
    try {
      bundle.writeCache();
      debug('wrote a code cache for these node options');
    } catch {
      // a read-only install: compiled as usual each time
    }
  }
  return code;
}
