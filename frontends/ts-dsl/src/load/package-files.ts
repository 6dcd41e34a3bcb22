/**
 * Where this package's own modules are on disk, for bundling them into a build: the DSL
 * (`kiln`) and the evaluator. From tsc output these are `.js` files next to this one; under
 * vitest the `.ts` sources; inside the CLI's one-file CommonJS bundle `import.meta` is empty,
 * so the installed package is found from the running script instead.
 */
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsDslError } from '../errors.js';

/** The directory holding this package's compiled (dist) or source (src) modules. */
export function packageSrcRoot(): string {
  const url: unknown = import.meta.url;
  if (typeof url === 'string' && url.startsWith('file:')) return join(dirname(fileURLToPath(url)), '..');
  let dir = dirname(realpathSync(process.argv[1] ?? process.cwd()));
  for (;;) {
    const candidate = join(dir, 'node_modules', '@kiln', 'ts-dsl', 'dist');
    if (existsSync(candidate)) return realpathSync(candidate);
    const up = dirname(dir);
    if (up === dir) throw new TsDslError('KLN0804', 'cannot find the @kiln/ts-dsl package files', { hint: 'run kiln from its installation (npx tsc -b builds frontends/ts-dsl/dist)' });
    dir = up;
  }
}

/** The absolute path of one of this package's modules (`dsl/index`, `eval/child`). */
export function packageModule(name: string): string {
  const root = packageSrcRoot();
  for (const ext of ['.js', '.ts']) {
    const p = join(root, name + ext);
    if (existsSync(p)) return p;
  }
  throw new TsDslError('KLN0804', `cannot find ${name} of @kiln/ts-dsl under ${root}`, { hint: 'npx tsc -b builds frontends/ts-dsl/dist' });
}
