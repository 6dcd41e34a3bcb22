import { dirname } from 'node:path';
import { BakeConfig } from './config.js';
import { BakeError, type BakeLocation } from './errors.js';
import { isComposeName, type BakeFile } from './files.js';
import { loadCompose } from './compose.js';
import { decodeTarget } from './target.js';
import { evaluateJsonTemplates, loadHcl } from './hcl/decode.js';

/** Environment lookups of a bake file's variables. */
export type BakeEnv = Readonly<Record<string, string | undefined>>;

/** A JSON bake file is one whose first non-blank character is `{` (buildx tries HCL's JSON syntax). */
const looksJson = (f: BakeFile): boolean => f.name.endsWith('.json') || (!f.name.endsWith('.hcl') && f.text.trimStart().startsWith('{'));

/** Reads every file into one {@link BakeConfig}, in order (later definitions over earlier ones). */
export function loadConfig(files: readonly BakeFile[], env: BakeEnv, vars: BakeEnv = {}): BakeConfig {
  const config = new BakeConfig();
  // As buildx: the Compose files first, then the bake files.
  const compose = files.filter((f) => isComposeName(f.name));
  if (compose.length > 0) loadCompose(config, compose, env);
  const hcl: BakeFile[] = [];
  for (const f of files) {
    if (isComposeName(f.name)) continue;
    if (looksJson(f)) loadJson(config, f, env, vars);
    else hcl.push(f);
  }
  if (hcl.length > 0) loadHcl(config, hcl, env, vars);
  return config;
}

/** A line:column of a JSON text offset (1-based). */
function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

function loadJson(config: BakeConfig, f: BakeFile, env: BakeEnv, vars: BakeEnv): void {
  let value: unknown;
  try {
    value = JSON.parse(f.text);
  } catch (e) {
    const m = /position (\d+)/.exec(e instanceof Error ? e.message : '');
    const at = m === null ? { line: 1, column: 1 } : position(f.text, Number(m[1]));
    throw new BakeError('KLN0851', `invalid JSON: ${e instanceof Error ? e.message.replace(/ in JSON at position \d+.*$/, '') : String(e)}`, { location: { file: f.name, ...at }, hint: 'a bake JSON file is {"group": {...}, "target": {...}}' });
  }
  const where = (key: string): BakeLocation => {
    const i = f.text.indexOf(`"${key}"`);
    return { file: f.name, ...(i < 0 ? { line: 1, column: 1 } : position(f.text, i)) };
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BakeError('KLN0853', 'a bake JSON file must be an object', { location: { file: f.name, line: 1, column: 1 } });
  // The loader walks the value recursively: refuse what would overflow the stack.
  const deep = tooDeepAt(value, JSON_MAX_NESTING);
  if (deep !== undefined) {
    throw new BakeError('KLN0853', `nested too deeply (more than ${JSON_MAX_NESTING} levels of objects and lists)`, { location: { file: f.name, ...position(f.text, nthBracket(f.text, deep)) }, hint: 'a bake JSON file nests a few levels: target, name, key, value' });
  }
  const root = value as Record<string, unknown>;
  for (const k of Object.keys(root)) {
    if (!['group', 'target', 'variable', 'function'].includes(k)) throw new BakeError('KLN0853', `unknown top-level key "${k}"`, { location: where(k), hint: 'use group, target, variable or function' });
  }
  // JSON bake files are HCL's JSON syntax: strings may use ${…} of variables and functions.
  const evaluated = evaluateJsonTemplates(config, root, f, env, vars);
  const groups = objectOf(evaluated['group'], 'group', where);
  for (const [name, g] of Object.entries(groups)) {
    const go = objectOf(g, `group "${name}"`, where);
    const targets = go['targets'];
    if (!Array.isArray(targets) || !targets.every((t) => typeof t === 'string')) throw new BakeError('KLN0853', `group "${name}": targets must be a list of strings`, { location: where(name) });
    config.addGroup(name, { targets: targets as string[], ...(typeof go['description'] === 'string' ? { description: go['description'] } : {}) });
  }
  const targets = objectOf(evaluated['target'], 'target', where);
  for (const [name, t] of Object.entries(targets)) {
    config.addTarget(name, decodeTarget(name, objectOf(t, `target "${name}"`, where), where), where(name), f.path === undefined ? undefined : dirname(f.path));
  }
}

/** The HCL parser's nesting limit, for JSON files too. */
const JSON_MAX_NESTING = 128;

/** The nesting level (count of opened objects and lists) past `max`, or undefined; iterative. */
function tooDeepAt(v: unknown, max: number): number | undefined {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop() ?? [null, 0];
    if (typeof x !== 'object' || x === null) continue;
    if (d > max) return d;
    for (const y of Object.values(x)) stack.push([y, d + 1]);
  }
  return undefined;
}

/** The offset of the first `{` or `[` that opens nesting level `level` (outside strings). */
function nthBracket(text: string, level: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (++depth === level) return i;
    } else if (c === '}' || c === ']') depth--;
  }
  return 0;
}

function objectOf(v: unknown, what: string, where: (k: string) => BakeLocation): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BakeError('KLN0853', `${what} must be an object`, { location: where(what.replace(/^.*"(.*)"$/, '$1')) });
  return v as Record<string, unknown>;
}
