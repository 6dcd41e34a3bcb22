import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { callerPath, readAll, type CliIo } from '../io.js';
import { BakeError } from './errors.js';

/** One bake file as read: its name as given (shown in errors), its absolute path, its text. */
export interface BakeFile {
  readonly name: string;
  /** Absolute path; undefined for standard input (`-f -`). */
  readonly path?: string;
  readonly text: string;
}

/** buildx's default bake files, read in this order when no `-f` is given. */
export const DEFAULT_BAKE_FILES = ['docker-bake.json', 'docker-bake.hcl', 'docker-bake.override.json', 'docker-bake.override.hcl'] as const;
/** Compose files buildx also reads by default; kiln does not read Compose files. */
const COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;

/** A file is a Compose file by its name (kiln reads bake JSON and HCL only). */
export const isComposeName = (name: string): boolean => /\.(ya?ml)$/i.test(name) || (COMPOSE_FILES as readonly string[]).includes(basename(name));

/**
 * Reads the `-f` files (relative to the caller's directory; `-` is stdin), or buildx's default
 * files that exist. A Compose file is refused with a hint (kiln reads bake JSON and HCL only).
 */
export async function readBakeFiles(names: readonly string[], io: CliIo): Promise<BakeFile[]> {
  const out: BakeFile[] = [];
  if (names.length === 0) {
    for (const n of DEFAULT_BAKE_FILES) {
      const path = callerPath(io, n);
      const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw new BakeError('KLN0850', `cannot read ${n}: ${e.message}`);
      });
      if (text !== undefined) out.push({ name: n, path, text });
    }
    if (out.length === 0) {
      const compose: string[] = [];
      for (const n of COMPOSE_FILES) if (await readFile(callerPath(io, n)).then(() => true, () => false)) compose.push(n);
      throw new BakeError('KLN0850', 'no bake file found (docker-bake.json, docker-bake.hcl, docker-bake.override.json, docker-bake.override.hcl)', {
        hint: compose.length > 0 ? `${compose.join(', ')} is a Compose file, which kiln does not read: write a docker-bake.hcl or docker-bake.json` : 'write a docker-bake.hcl or pass -f FILE',
      });
    }
    return out;
  }
  for (const n of names) {
    if (isComposeName(n)) throw new BakeError('KLN0850', `${n}: Compose files are not supported by kiln bake`, { hint: 'write the targets as a docker-bake.hcl or docker-bake.json' });
    if (n === '-') {
      out.push({ name: '-', text: new TextDecoder().decode(await readAll(io.stdin)) });
      continue;
    }
    const path = callerPath(io, n);
    const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new BakeError('KLN0850', `cannot read bake file ${n}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { hint: 'pass -f with an existing docker-bake.hcl or .json file' });
    });
    out.push({ name: n, path, text });
  }
  return out;
}
