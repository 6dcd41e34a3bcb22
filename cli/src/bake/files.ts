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

/** Compose's default files (compose-go's DefaultFileNames), which buildx reads first. */
const COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;
/** buildx's default files, read in this order (those that exist) when no `-f` is given. */
export const DEFAULT_BAKE_FILES = [...COMPOSE_FILES, 'docker-bake.json', 'docker-bake.hcl', 'docker-bake.override.json', 'docker-bake.override.hcl'] as const;

/** A Compose file, by its name (`.yml`/`.yaml`, or a Compose default name). */
export const isComposeName = (name: string): boolean => /\.(ya?ml)$/i.test(name) || (COMPOSE_FILES as readonly string[]).includes(basename(name));

/** `cwd://PATH`: a file of the caller's directory, also beside a remote definition (buildx's readBakeFiles). */
export const CWD_PREFIX = 'cwd://';

/**
 * Reads the `-f` files (relative to the caller's directory, with or without `cwd://`; `-` is
 * stdin), or buildx's default files that exist.
 */
export async function readBakeFiles(given: readonly string[], io: CliIo): Promise<BakeFile[]> {
  const names = given.map((n) => (n.startsWith(CWD_PREFIX) ? n.slice(CWD_PREFIX.length) : n));
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
      throw new BakeError('KLN0850', `no bake file found (${DEFAULT_BAKE_FILES.join(', ')})`, { hint: 'write a docker-bake.hcl or pass -f FILE' });
    }
    return out;
  }
  for (const n of names) {
    if (n === '-') {
      out.push({ name: '-', text: new TextDecoder().decode(await readAll(io.stdin)) });
      continue;
    }
    const path = callerPath(io, n);
    const text = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      // Node's EISDIR message ("illegal operation on a directory, read") names no file and no fix
      const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'it is a directory' : e.message;
      throw new BakeError('KLN0850', `cannot read bake file ${n}: ${why}`, { hint: e.code === 'EISDIR' ? `name the file in it: -f ${n.replace(/\/$/, '')}/docker-bake.hcl (without -f, kiln reads the default files of the current directory)` : 'pass -f with an existing docker-bake.hcl or .json file' });
    });
    out.push({ name: n, path, text });
  }
  return out;
}
