#!/usr/bin/env node
// A running `kiln daemon` for this command's root serves it (see cli/src/daemon); otherwise kiln
// runs in this process: from the one-file bundle with its code cache when `npm run build` made
// one for the current tsc output (cli/bin/load-bundle.js), else from dist/main.js. The daemon
// check loads only Node built-ins.
//
// CommonJS (cli/bin/package.json): an ES module entry makes Node load its ES module loader first,
// about 10 ms of every start. With a fresh bundle nothing here imports an ES module: the daemon
// client comes from its own small bundle (cli/dist/client.cjs) and the CLI from kiln.cjs.
'use strict';
const { CLIENT, bundleIsFresh } = require('./bundle-stamp.js');

const fresh = process.env.KILN_BUNDLE !== '0' && bundleIsFresh();

// A command whose work ends without it settling (a promise nobody resolves: kiln's bug) would
// let Node exit 0 with nothing done and nothing said: exit 70 (EX_SOFTWARE), saying so.
let settled = false;
process.on('exit', (code) => {
  if (settled || code !== 0) return;
  process.exitCode = 70;
  require('node:fs').writeSync(2, 'kiln: internal error: the command stopped before it finished (nothing was left to wait on); please report it\n');
});

(async () => {
  const { runViaDaemon, runInUserNamespace } = fresh ? require(CLIENT) : await import('../dist/daemon/client.js');
  const viaDaemon = await runViaDaemon(process.argv);
  // A non-root user's kiln runs its engine in a user namespace of its own (rootless kiln,
  // cli/src/userns): re-executed there, unless this is that process already or root.
  process.exitCode = viaDaemon ?? (await runInUserNamespace(process.argv)) ?? (await runHere(process.argv));
  settled = true;
})();

async function runHere(argv) {
  // KILN_DEBUG_LOAD=1 says which way kiln loaded (and whether V8 took the code cache).
  const debug = process.env.KILN_DEBUG_LOAD === '1' ? (s) => process.stderr.write(`kiln: ${s}\n`) : () => undefined;
  const bundle = fresh ? require('./load-bundle.js').loadBundle(debug, fresh) : undefined;
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
