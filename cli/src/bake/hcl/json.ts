import { findJsonSyntaxError } from '@kiln/llb-core';
import { BakeError } from '../errors.js';
import type { BakeFile } from '../files.js';
import type { Attribute, Block, Expr, HclFile, Pos } from './ast.js';
import { parseTemplate } from './parser.js';

/** How deep a JSON bake file may nest (the HCL parser's limit): the conversion recurses. */
const JSON_MAX_NESTING = 128;
const BLOCK_TYPES = ['group', 'target', 'variable', 'function'] as const;

/**
 * A JSON bake file as an HCL body (HCL's JSON syntax, as buildx reads it): each of `group`,
 * `target`, `variable` and `function` maps labels to block bodies; strings are templates
 * (`${…}`, `%{…}`, `$${` escapes). Converted, the file merges with HCL files in order, and shares
 * their variables and functions. Positions are those of the keys (JSON values carry none).
 */
export function jsonToHcl(f: BakeFile): HclFile {
  let value: unknown;
  try {
    value = JSON.parse(f.text);
  } catch (e) {
    // JSON.parse names no position for some mistakes (a trailing comma), and then its message
    // holds the file's tail, newlines included
    const found = findJsonSyntaxError(f.text);
    const m = /position (\d+)/.exec(e instanceof Error ? e.message : '');
    const at = found !== undefined ? { line: found.line, column: found.column } : m === null ? { line: 1, column: 1 } : lineColumn(lineStarts(f.text), Number(m[1]));
    const why = found?.message ?? (e instanceof Error ? (e.message.replace(/ in JSON at position \d+.*$/, '').split('\n')[0] ?? '') : String(e));
    throw new BakeError('KLN0851', `invalid JSON: ${why}`, { location: { file: f.name, ...at }, hint: 'a bake JSON file is {"group": {...}, "target": {...}}' });
  }
  // Keys are found in file order from a cursor (a label after its block type, an attribute after
  // its label), and lines by binary search: linear in the file, however many targets it has.
  const lines = lineStarts(f.text);
  const where = (key: string, from = 0): Pos => {
    const i = f.text.indexOf(JSON.stringify(key), from);
    return { file: f.name, ...(i < 0 ? { line: 1, column: 1, offset: 0 } : { ...lineColumn(lines, i), offset: i }) };
  };
  const fail = (message: string, pos: Pos, hint?: string): never => {
    throw new BakeError('KLN0853', message, { location: { file: pos.file, line: pos.line, column: pos.column }, ...(hint === undefined ? {} : { hint }) });
  };
  if (!isRecord(value)) return fail('a bake JSON file must be an object', { file: f.name, line: 1, column: 1, offset: 0 });
  const deep = tooDeepAt(value, JSON_MAX_NESTING);
  if (deep !== undefined) {
    const at = nthBracket(f.text, deep);
    fail(`nested too deeply (more than ${JSON_MAX_NESTING} levels of objects and lists)`, { file: f.name, ...lineColumn(lines, at), offset: at }, 'a bake JSON file nests a few levels: target, name, key, value');
  }
  const blocks: Block[] = [];
  for (const [type, defs] of Object.entries(value)) {
    const tpos = where(type);
    if (!(BLOCK_TYPES as readonly string[]).includes(type)) fail(`unknown top-level key "${type}"`, tpos, 'use group, target, variable or function');
    if (!isRecord(defs)) return fail(`${type} must be an object`, tpos);
    let cursor = tpos.offset;
    for (const [label, def] of Object.entries(defs)) {
      const pos = where(label, cursor);
      cursor = pos.offset;
      if (!isRecord(def)) return fail(`${type} "${label}" must be an object`, pos);
      const attributes: Attribute[] = Object.entries(def).map(([name, v]) => {
        const apos = where(name, pos.offset);
        // A function's params name variables: in HCL's JSON syntax they are bare names.
        const expr = type === 'function' && (name === 'params' || name === 'variadic_params') ? names(v, apos) : toExpr(v, apos, f.name);
        return { name, expr, pos: apos };
      });
      blocks.push({ type, labels: [label], body: { attributes, blocks: [] }, pos });
    }
  }
  return { name: f.name, body: { attributes: [], blocks } };
}

function toExpr(v: unknown, pos: Pos, file: string): Expr {
  if (typeof v === 'string') return parseTemplate(v, file, pos);
  if (Array.isArray(v)) return { kind: 'tuple', items: v.map((x) => toExpr(x, pos, file)), pos };
  if (isRecord(v)) return { kind: 'object', items: Object.entries(v).map(([k, x]) => ({ key: { kind: 'literal', value: k, pos }, value: toExpr(x, pos, file) })), pos };
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return { kind: 'literal', value: v, pos };
  return { kind: 'literal', value: null, pos };
}

function names(v: unknown, pos: Pos): Expr {
  if (typeof v === 'string') return { kind: 'variable', name: v, pos };
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return { kind: 'tuple', items: v.map((name: string) => ({ kind: 'variable', name, pos })), pos };
  return { kind: 'literal', value: null, pos };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The offsets where the lines of `text` start. */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** The 1-based line and column of a text offset. */
function lineColumn(starts: readonly number[], offset: number): { line: number; column: number } {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] ?? 0) <= offset) lo = mid;
    else hi = mid - 1;
  }
  return { line: lo + 1, column: offset - (starts[lo] ?? 0) + 1 };
}

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
