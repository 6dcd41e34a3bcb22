import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string): string => fileURLToPath(new URL(`./${p}/src/index.ts`, import.meta.url));

// Tests run against the TypeScript sources, so `npm test` needs no prior build.
export default defineConfig({
  resolve: {
    alias: {
      '@kiln/llb-core': src('llb-core'),
      '@kiln/dockerfile': src('frontends/dockerfile'),
      '@kiln/buildpacks': src('frontends/buildpacks'),
      '@kiln/ts-dsl': src('frontends/ts-dsl'),
      // More specific first: '@kiln/runtime' would also match '@kiln/runtime/registry' as a prefix.
      '@kiln/runtime/registry': fileURLToPath(new URL('./runtime/src/registry-entry.ts', import.meta.url)),
      '@kiln/runtime': src('runtime'),
      '@kiln/solver': src('solver'),
      '@kiln/gateway': src('gateway'),
      '@kiln/cli': src('cli'),
    },
  },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default is one worker less than the CPUs: one file at a time on a 2-core machine,
    // where most end-to-end time is spent waiting on runc, registries and child processes. Two
    // workers there: the whole suite took 507 s instead of 874 s here, all tests passing.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Test files share their worker's module cache instead of importing kiln's sources anew each
    // (tests restore what they change in process.env). Measured on this 2-core VM, whole suite:
    // 928 s of CPU instead of 1,231 s, 661 s instead of 748-770 s wall; the unit tests alone
    // 75 s instead of 133 s. A third worker gained nothing (770 s): the suite is CPU-bound here.
    isolate: false,
    reporters: ['default', './scripts/summary-reporter.ts'],
    // Names the run, so the CLI the end-to-end tests run is built once per run, not once per file.
    globalSetup: ['./scripts/test-global-setup.ts'],
  },
});
