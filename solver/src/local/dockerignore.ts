import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { parseDockerignore, PatternMatcher } from '@kiln/llb-core';
import { SolverError } from '../errors.js';

export { parseDockerignore };

/** Where the ignore patterns of a build came from. */
export interface DockerignoreResult {
  readonly patterns: readonly string[];
  /** The file that was read, or undefined when none exists. */
  readonly file: string | undefined;
}

/**
 * Finds the ignore file of a build as BuildKit's Dockerfile frontend does: `<Dockerfile name>.dockerignore`
 * next to the Dockerfile (e.g. `build/app.Dockerfile.dockerignore`) wins over `.dockerignore`
 * at the context root.
 */
export async function readDockerignore(contextDir: string, dockerfilePath?: string): Promise<DockerignoreResult> {
  const candidates: string[] = [];
  if (dockerfilePath !== undefined) {
    candidates.push(join(dirname(dockerfilePath), `${basename(dockerfilePath)}.dockerignore`));
  }
  candidates.push(join(contextDir, '.dockerignore'));
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
    const patterns = parseDockerignore(text);
    checkPatterns(text, patterns, relative(contextDir, file).startsWith('..') ? file : relative(contextDir, file));
    return { patterns, file };
  }
  return { patterns: [], file: undefined };
}

/**
 * Compiles each pattern now, so a bad one is reported at its line of the ignore file; it
 * failed later as "syntax error in pattern" of the build context's transfer, naming no file.
 */
function checkPatterns(text: string, patterns: readonly string[], shown: string): void {
  try {
    new PatternMatcher(patterns);
    return;
  } catch {
    // one of them: found below, to name its line
  }
  for (const p of patterns) {
    try {
      new PatternMatcher([p]);
    } catch (cause) {
      const lines = text.split('\n');
      const at = lines.findIndex((l) => parseDockerignore(l).includes(p));
      throw new SolverError('SOLVER_BAD_PATTERN', `${shown}${at < 0 ? '' : `:${at + 1}`}: ${(cause as Error).message}`, {
        cause,
        hint: 'patterns are Go filepath.Match globs with ** (escape a literal [ * ? or \\ with \\)',
      });
    }
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}
