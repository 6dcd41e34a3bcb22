import { rmSync } from 'node:fs';
import { markerOf, RUN_ENV } from './test-cli-build.js';

/**
 * Names this vitest run for the test workers (they inherit the environment), so the CLI is
 * built once per run ({@link buildCliOnce}); the run's marker goes at the end.
 */
export default function setup(): () => void {
  const run = `${process.pid}-${Date.now()}`;
  process.env[RUN_ENV] = run;
  return () => rmSync(markerOf(run), { force: true });
}
