import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { cleanPath } from './clean-path.js';

/**
 * Parses a `.dockerignore` file the way moby/patternmatcher's ignorefile.ReadAll does: a UTF-8
 * BOM is dropped, lines starting with `#` are comments, lines are trimmed, empty lines skipped,
 * `!` exceptions keep their mark, patterns are cleaned and a leading `/` is removed (the
 * context root is `/`).
 */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    let line = i === 0 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw;
    if (line.startsWith('#')) return;
    line = line.trim();
    if (line === '') return;
    const invert = line.startsWith('!');
    if (invert) line = line.slice(1).trim();
    if (line.length > 0) {
      line = cleanPath(line);
      if (line.length > 1 && line.startsWith('/')) line = line.slice(1);
    }
    out.push(invert ? `!${line}` : line);
  });
  return out;
}

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
    return { patterns: parseDockerignore(text), file };
  }
  return { patterns: [], file: undefined };
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}
