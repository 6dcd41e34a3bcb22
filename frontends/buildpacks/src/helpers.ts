/**
 * kiln's lifecycle helpers, mounted read-only at `/.kiln` in detect and build execs: small sh
 * scripts (run by the build image's `/bin/sh`) so the exec's command line reads
 * `/.kiln/build /cnb/buildpacks/<bp>/<version>/bin/build …` in progress and errors.
 */
import { mkfile, scratch, type State } from '@kiln/llb-core';

/** Where the helpers are mounted. */
export const HELPERS_DIR = '/.kiln';

// detect: record the exit status in a file, so exit 100 neither fails the solve nor defeats caching
const DETECT = `#!/bin/sh
: >/kiln/out/plan.toml
"$@" >/kiln/out/output 2>&1
echo $? >/kiln/out/status
cat /kiln/out/output
`;

// build: restore the cache (layer dirs and their types-less tomls, store.toml) into the
// buildpack's layers dir, then run bin/build with the positional arguments every API accepts
const BUILD = `#!/bin/sh
mkdir -p "$2" || exit 1
cp -a /kiln/cache/. "$2"/ 2>/dev/null || true
exec "$@"
`;

/** The helpers' state (scratch plus two files). */
export function helpersState(): State {
  return scratch().file(mkfile('/detect', 0o755, DETECT).mkfile('/build', 0o755, BUILD), { customName: '[internal] kiln lifecycle helpers' });
}
