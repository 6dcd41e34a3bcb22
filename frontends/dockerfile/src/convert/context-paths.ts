/**
 * The build-context paths a build reads (`local.followpaths`). BuildKit learns them while
 * dispatching and fills the context source in afterwards (a mutable output). kiln predicts them
 * from the unexpanded instructions, dispatches once with that context, and dispatches again
 * only when the paths actually read differ from the prediction (variables in paths, ONBUILD
 * triggers of base images): the result is always exact.
 */
import type { EnvGetter } from '../shell/lex.js';
import type { ShellLex } from '../shell/lex.js';
import type { DispatchState } from './dispatch-state.js';
import { parseGitRef } from './git-ref.js';
import { rootJoin } from './run-mounts.js';

const NO_ENV: EnvGetter = { get: () => undefined };
const isHTTP = (s: string): boolean => s.startsWith('http://') || s.startsWith('https://');

/** Context paths of the stages about to be dispatched, as far as they are known before expansion. */
export function predictContextPaths(stages: Iterable<DispatchState>, shlex: ShellLex): Set<string> {
  const out = new Set<string>();
  const word = (w: string): string => {
    try {
      return shlex.processWord(w, NO_ENV);
    } catch {
      return w;
    }
  };
  for (const d of stages) {
    for (const sc of d.commands) {
      const c = sc.command;
      if (c.name === 'copy' && c.from === '') for (const p of c.sourcePaths) out.add(rootJoin(word(p)));
      if (c.name === 'add') {
        for (const p of c.sourcePaths) {
          const w = word(p);
          if (!isHTTP(w) && parseGitRef(w) === undefined) out.add(rootJoin(w));
        }
      }
      if (c.name === 'run') {
        for (const m of c.mounts) {
          if (m.type === 'secret' || m.type === 'ssh' || m.from !== '' || m.type === 'cache') continue;
          out.add(rootJoin(m.source));
        }
      }
    }
  }
  return out;
}

/** `local.followpaths` for a set of context paths (BuildKit normalizeContextPaths); undefined = all. */
export function followPaths(paths: ReadonlySet<string>): string[] | undefined {
  if (paths.size === 0 || paths.has('/')) return undefined;
  return [...paths].map((p) => p.replace(/^\/+/, '')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Same follow paths (or both "everything")? */
export function sameFollowPaths(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((p, i) => p === b[i]);
}
