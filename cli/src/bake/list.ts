import type { BakeConfig } from './config.js';
import { BakeError } from './errors.js';

/** A `--list` request: buildx's parseList (`targets`, or CSV `type=targets|variables,format=table|json`). */
export interface ListRequest {
  readonly type: 'targets' | 'variables';
  readonly format: 'table' | 'json';
}

/** buildx's parseList: a bare word is the type; otherwise `type=` and `format=` fields (format table by default). */
export function parseList(input: string): ListRequest {
  const bad = (why: string): BakeError => new BakeError('KLN0854', `invalid --list "${input}": ${why}`, { hint: 'use --list targets, --list variables or --list type=targets|variables,format=table|json' });
  let type: string | undefined;
  let format = 'table';
  if (!input.includes(',') && !input.includes('=')) type = input;
  else {
    for (const field of input.split(',')) {
      const i = field.indexOf('=');
      if (i < 0) throw bad(`"${field}" is not KEY=VALUE`);
      const key = field.slice(0, i).trim().toLowerCase();
      if (key === 'type') type = field.slice(i + 1);
      else if (key === 'format') format = field.slice(i + 1);
      else throw bad(`unknown key "${key}"`);
    }
  }
  if (type !== 'targets' && type !== 'variables') throw bad(`the type is ${JSON.stringify(type ?? '')}, not targets or variables`);
  if (format !== 'table' && format !== 'json') throw bad(`the format is ${JSON.stringify(format)}, not table or json`);
  return { type, format };
}

/**
 * `--list`: the definition's targets and groups, or its variables, as buildx prints them: a table,
 * or (`format=json`) buildx's JSON, `[{"name", "description", "group"}]` for targets (names
 * starting with `_` left out, a group's description followed by its targets) and
 * `[{"name", "description", "value"}]` for variables (the value as a string: JSON for a list or
 * an object; none for null).
 */
export function listBake(config: BakeConfig, what: string): string {
  const req = parseList(what);
  // buildx's target list is a nil slice until it gets an entry (`null`), its variables a made one (`[]`).
  if (req.type === 'targets') return req.format === 'json' ? goJson(targetList(config), 'null') : targetTable(config);
  return req.format === 'json' ? goJson(variableList(config), '[]') : variableTable(config);
}

/** buildx's printTargetList entries, by name. */
function targetList(config: BakeConfig): { name: string; description?: string; group?: true }[] {
  const names = [...new Set([...config.targets.keys(), ...config.groups.keys()])].sort();
  const out: { name: string; description?: string; group?: true }[] = [];
  for (const name of names) {
    if (name.startsWith('_')) continue; // buildx's convention for a private target
    const g = config.groups.get(name);
    if (g === undefined) {
      const d = config.targets.get(name)?.description ?? '';
      out.push({ name, ...(d === '' ? {} : { description: d }) });
      continue;
    }
    const members = [...g.targets].sort().join(', ');
    const own = g.description ?? '';
    const d = members === '' ? own : own === '' ? members : `${own} (${members})`;
    out.push({ name, ...(d === '' ? {} : { description: d }), group: true });
  }
  return out;
}

function variableList(config: BakeConfig): { name: string; description?: string; value?: string }[] {
  return [...config.variables.keys()].sort().map((name) => {
    const v = config.variables.get(name);
    const value = v?.value();
    const d = v?.description ?? '';
    return { name, ...(d === '' ? {} : { description: d }), ...(value === null || value === undefined ? {} : { value: typeof value === 'string' ? value : JSON.stringify(value) }) };
  });
}

/** buildx's printTargetList table: the JSON list's entries (no `_` names, a group's members after its description), in tabwriter columns. */
function targetTable(config: BakeConfig): string {
  return goTabwriter([['TARGET', 'DESCRIPTION'], ...targetList(config).map((e) => [e.name, e.description ?? ''])]);
}

/**
 * Go's tabwriter.NewWriter(w, 1, 8, 1, '\t', 0), as buildx's tables: every cell but a line's last
 * is padded with tabs to the column's width (its widest cell plus one) rounded up to 8.
 */
export function goTabwriter(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.slice(0, -1).forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 1, [...c].length + 1)));
  return rows
    .map((r) =>
      r
        .map((c, i) => {
          if (i === r.length - 1) return c;
          const cellw = Math.ceil((widths[i] ?? 1) / 8) * 8;
          return c + '\t'.repeat(Math.ceil((cellw - [...c].length) / 8));
        })
        .join(''),
    )
    .map((l) => `${l}\n`)
    .join('');
}

function variableTable(config: BakeConfig): string {
  const rows = [['VARIABLE', 'TYPE', 'VALUE', 'DESCRIPTION']];
  for (const name of [...config.variables.keys()].sort()) {
    const v = config.variables.get(name);
    const value = v?.value();
    const kind = value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value === 'object' ? 'map' : typeof value === 'boolean' ? 'bool' : typeof value;
    rows.push([name, kind, typeof value === 'string' ? value : JSON.stringify(value), v?.description ?? '']);
  }
  return table(rows);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 2))).join('').trimEnd()).join('\n') + '\n';
}

/**
 * JSON as Go's json.Encoder with SetIndent("", "  ") writes it: `<`, `>`, `&`, U+2028 and U+2029
 * escaped, a newline at the end; `empty` for an empty list.
 */
function goJson(v: readonly unknown[], empty: 'null' | '[]'): string {
  const text = v.length === 0 ? empty : JSON.stringify(v, null, 2);
  return `${text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}
