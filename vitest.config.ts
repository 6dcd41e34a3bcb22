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
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
