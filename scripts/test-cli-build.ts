import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

/**
 * `npm run build` (tsc -b, then the CLI bundle) for the integration tests, as a user runs it
 * before kiln: once per test run (named by {@link RUN_ENV}, which the global setup sets), one
 * build at a time across test workers (concurrent builds race on .tsbuildinfo). Every file that
 * runs kiln asks; the first builds, the others find the run's marker. Outside a vitest run
 * (no run name) it builds every time.
 */
export function buildCliOnce(): void {
  const run = process.env[RUN_ENV];
  const build = `"${process.execPath}" node_modules/typescript/bin/tsc -b && "${process.execPath}" cli/scripts/bundle.mjs`;
  const script = run === undefined ? build : `test -e "${markerOf(run)}" || { ${build} && touch "${markerOf(run)}"; }`;
  execFileSync('flock', ['/tmp/kiln-cli-tsc.lock', 'sh', '-c', script], { cwd: repo, stdio: 'inherit' });
}

/** The variable naming this test run. */
export const RUN_ENV = 'KILN_TEST_RUN';

/** The file that says the CLI was built in test run `run`. */
export function markerOf(run: string): string {
  return join(tmpdir(), `kiln-test-built-${run.replace(/[^0-9a-z-]/gi, '')}`);
}
