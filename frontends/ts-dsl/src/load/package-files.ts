/**
 * Where this package's own modules are on disk, for bundling them into a build: the DSL
 * (`kiln`) and the evaluator. From tsc output these are `.js` files next to this one; under
 * vitest the `.ts` sources; inside the CLI's one-file CommonJS bundle `import.meta` is empty,
 * so the installed package is found from the running script instead.
 */
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsDslError } from '../errors.js';

let srcRoot: string | undefined;

/** The directory holding this package's compiled (dist) or source (src) modules (found once). */
export function packageSrcRoot(): string {
  return (srcRoot ??= findSrcRoot());
}

function findSrcRoot(): string {
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

/**
 * Requires a dependency of this package (esbuild, typescript) from its directory at run time:
 * the CLI's one-file bundle must not inline them, and it runs in a vm.Script where import() has
 * no loader.
 */
export function requirePackage<T>(name: string): T {
  return createRequire(join(packageSrcRoot(), 'package.json'))(name) as T;
}
