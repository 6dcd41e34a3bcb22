import { parse } from 'yaml';
import { BakeConfig } from './config.js';
import { BakeError } from './errors.js';
import { isComposeName, type BakeFile } from './files.js';
import { loadCompose } from './compose.js';
import { loadHcl, lookupAllowed } from './hcl/decode.js';
import { jsonToHcl } from './hcl/json.js';
import { parseHcl } from './hcl/parser.js';

/** Environment lookups of a bake file's variables. */
export type BakeEnv = Readonly<Record<string, string | undefined>>;

/** A JSON bake file is one whose first non-blank character is `{` (buildx tries HCL's JSON syntax). */
const looksJson = (f: BakeFile): boolean => f.name.endsWith('.json') || (!f.name.endsWith('.hcl') && f.text.trimStart().startsWith('{'));

/**
 * A Compose file: by its name, or (a name without .json, .hcl, .yml or .yaml, as `-f -`) YAML with
 * a `services` map, as buildx's validateComposeFile tries Compose first.
 */
function isCompose(f: BakeFile): boolean {
  if (isComposeName(f.name)) return true;
  if (/\.(json|hcl)$/i.test(f.name) || f.text.trimStart().startsWith('{')) return false;
  try {
    const doc: unknown = parse(f.text, { logLevel: 'silent' });
    return typeof doc === 'object' && doc !== null && 'services' in doc && typeof doc.services === 'object' && doc.services !== null;
  } catch {
    return false;
  }
}

/** Built-in values of the bake files (buildx's defaults map). */
export interface LoadOptions {
  /** `BAKE_CMD_CONTEXT` (default `cwd://`). */
  readonly cmdContext?: string;
}

/**
 * Reads every file into one {@link BakeConfig}, as buildx: the Compose files first, then the HCL
 * and JSON files merged in their order into one body (later definitions over earlier ones; the
 * variables and functions of every file visible in all).
 */
export function loadConfig(files: readonly BakeFile[], env: BakeEnv, vars: BakeEnv = {}, opts: LoadOptions = {}): BakeConfig {
  try {
    return load(files, env, vars, opts);
  } catch (e) {
    // The parser and evaluator bound nesting and sizes; should a JavaScript limit still be hit
    // (a stack overflow, a string or array too long), it is the files' error, not a crash.
    if (e instanceof RangeError) {
      throw new BakeError('KLN0852', `the bake files are too large or nested too deeply to evaluate (${e.message})`, { hint: `files: ${files.map((f) => f.name).join(', ')}`, cause: e });
    }
    throw e;
  }
}

function load(files: readonly BakeFile[], env: BakeEnv, vars: BakeEnv, opts: LoadOptions): BakeConfig {
  const config = new BakeConfig();
  const compose = files.filter(isCompose);
  // buildx's composeEnv: no environment at all when the variables' lookup is off.
  if (compose.length > 0) loadCompose(config, compose, lookupAllowed(env) ? env : {});
  const parsed = files.filter((f) => !isCompose(f)).map((file) => ({ file, hcl: looksJson(file) ? jsonToHcl(file) : parseHcl(file.text, file.name) }));
  if (parsed.length > 0) loadHcl(config, parsed, env, vars, opts.cmdContext);
  return config;
}
