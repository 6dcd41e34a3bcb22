import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseDockerignore } from '@kiln/llb-core';

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
    return { patterns: parseDockerignore(text), file };
  }
  return { patterns: [], file: undefined };
}

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}
