/**
 * Which checks run: the `BUILDKIT_DOCKERFILE_CHECK` build arg when given (it replaces the
 * directive, as BuildKit's dockerui reads `build-arg:BUILDKIT_DOCKERFILE_CHECK` first), else the
 * file's `# check=` directive, else every non-experimental rule as warnings.
 */
import { KilnError } from '../errors.js';
import { parseCheckDirective, parseDirective, type CheckConfig } from '../parser/directives.js';
import { DEFAULT_CHECK_CONFIG } from './linter.js';

/** The build arg that overrides `# check=` (same syntax). */
export const CHECK_BUILD_ARG = 'BUILDKIT_DOCKERFILE_CHECK';

/**
 * The check configuration of a build. Throws KilnError KLN0102 (located at the directive) when
 * the value is not `skip=…;experimental=…;error=…`.
 */
export function resolveCheckConfig(text: string, buildArgs: ReadonlyMap<string, string>, file: string): CheckConfig {
  const arg = buildArgs.get(CHECK_BUILD_ARG);
  if (arg !== undefined) {
    try {
      return parseCheckDirective(arg);
    } catch (e) {
      throw new KilnError('KLN0102', `failed to parse ${CHECK_BUILD_ARG}: ${(e as Error).message}`, { cause: e, hint: 'use skip=RULE,…;error=true' });
    }
  }
  // Fast path: no `check` anywhere means no directive (most Dockerfiles).
  if (!/check/i.test(text)) return DEFAULT_CHECK_CONFIG;
  const d = parseDirective('check', text);
  if (d === undefined) return DEFAULT_CHECK_CONFIG;
  try {
    return parseCheckDirective(d.cmdline);
  } catch (e) {
    if (e instanceof KilnError) e.withLocation({ file, ...d.location.start });
    throw e;
  }
}
