import { BakeConfig } from './config.js';
import { isComposeName, type BakeFile } from './files.js';
import { loadCompose } from './compose.js';
import { loadHcl } from './hcl/decode.js';
import { jsonToHcl } from './hcl/json.js';
import { parseHcl } from './hcl/parser.js';

/** Environment lookups of a bake file's variables. */
export type BakeEnv = Readonly<Record<string, string | undefined>>;

/** A JSON bake file is one whose first non-blank character is `{` (buildx tries HCL's JSON syntax). */
const looksJson = (f: BakeFile): boolean => f.name.endsWith('.json') || (!f.name.endsWith('.hcl') && f.text.trimStart().startsWith('{'));

/**
 * Reads every file into one {@link BakeConfig}, as buildx: the Compose files first, then the HCL
 * and JSON files merged in their order into one body (later definitions over earlier ones; the
 * variables and functions of every file visible in all).
 */
export function loadConfig(files: readonly BakeFile[], env: BakeEnv, vars: BakeEnv = {}): BakeConfig {
  const config = new BakeConfig();
  const compose = files.filter((f) => isComposeName(f.name));
  if (compose.length > 0) loadCompose(config, compose, env);
  const parsed = files.filter((f) => !isComposeName(f.name)).map((file) => ({ file, hcl: looksJson(file) ? jsonToHcl(file) : parseHcl(file.text, file.name) }));
  if (parsed.length > 0) loadHcl(config, parsed, env, vars);
  return config;
}
