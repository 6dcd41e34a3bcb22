/**
 * TOML reading with located errors, and the narrowing helpers the descriptor readers share.
 * smol-toml parses (TOML 1.0); its errors carry 1-based line and column.
 */
import { parse, stringify, TomlError } from 'smol-toml';
import { BuildpacksError } from './errors.js';

/** A parsed TOML table. */
export type Table = { readonly [key: string]: unknown };

/** Parses TOML text; a syntax error becomes KLN0901 at `file:line:col`. */
export function parseToml(text: string, file: string): Table {
  try {
    return parse(text) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      const message = e.message.split('\n')[0] ?? e.message;
      let why = message.replace(/^Invalid TOML document: /, '');
      // smol-toml's word for a basic string that reaches the end of its line
      if (why === 'control characters are not allowed in strings' && /^\r?$/.test(text.split('\n')[e.line - 1]?.slice(e.column - 1) ?? '')) why = 'the string is not closed before the end of the line';
      // (no cause: its message is this one again, and the CLI would print it as a second line)
      throw new BuildpacksError('KLN0901', `invalid TOML: ${why}`, { location: { file, line: e.line, column: e.column } });
    }
    throw e;
  }
}

/** Writes a table as TOML. */
export function toToml(table: Readonly<Record<string, unknown>>): string {
  return stringify(table);
}

/**
 * The line and column where `text` writes the key at `path` (`io.buildpacks.build.env[1].value`,
 * as {@link Fields} names it), for errors about a value of the wrong type; undefined when it is
 * not found (an inline table, a key written in an unusual way). Headers of arrays of tables are
 * counted, so `[1]` is the second `[[io.buildpacks.build.env]]`.
 */
export function tomlKeyPosition(text: string, path: string): { line: number; column: number } | undefined {
  const keyParts = (k: string): string[] => k.split('.').map((p) => p.trim().replace(/^"(.*)"$|^'(.*)'$/, '$1$2'));
  const counts = new Map<string, number>();
  /** A header's table path with the index of every array of tables it passes through. */
  const indexed = (parts: readonly string[]): string => {
    let out = '';
    let plain = '';
    for (const p of parts) {
      plain = plain === '' ? p : `${plain}.${p}`;
      out = out === '' ? p : `${out}.${p}`;
      const n = counts.get(plain);
      if (n !== undefined) out += `[${n - 1}]`;
    }
    return out;
  };
  let table = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const header = /^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?/.exec(line);
    if (header !== null) {
      const parts = keyParts(header[2] ?? '');
      if (header[1] === '[[') {
        const plain = parts.join('.');
        counts.set(plain, (counts.get(plain) ?? 0) + 1);
      }
      table = indexed(parts);
      if (table === path) return { line: i + 1, column: line.indexOf('[') + 1 };
      continue;
    }
    const kv = /^(\s*)([A-Za-z0-9_."' -]+?)\s*=/.exec(line);
    if (kv === null) continue;
    const full = [table, keyParts(kv[2] ?? '').join('.')].filter((x) => x !== '').join('.');
    if (full === path) return { line: i + 1, column: (kv[1]?.length ?? 0) + 1 };
  }
  return undefined;
}

/** Narrows and reads typed fields of a table, failing with KLN0901 naming the file, the key and (given the text) its line. */
export class Fields {
  constructor(
    readonly file: string,
    readonly table: Table,
    readonly path = '',
    /** The file's text, to locate a key in errors. */
    readonly text?: string,
  ) {}

  /** Parses `text` (KLN0901 at the place of a syntax error) and keeps it to locate later errors. */
  static parse(file: string, text: string): Fields {
    return new Fields(file, parseToml(text, file), '', text);
  }

  #name(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  fail(key: string, what: string): never {
    // the key's line, else (a required key left out) its table's header
    const at = this.text === undefined ? undefined : (tomlKeyPosition(this.text, this.#name(key)) ?? (this.path === '' ? undefined : tomlKeyPosition(this.text, this.path)));
    throw new BuildpacksError('KLN0901', `${at === undefined ? `${this.file}: ` : ''}${this.#name(key)} ${what}`, at === undefined ? {} : { location: { file: this.file, ...at } });
  }

  has(key: string): boolean {
    return this.table[key] !== undefined;
  }

  string(key: string): string | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(key, `must be a string, not ${describe(v)}`);
    return v;
  }

  requiredString(key: string): string {
    const v = this.string(key);
    if (v === undefined || v === '') this.fail(key, 'is required');
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(key, `must be a boolean, not ${describe(v)}`);
    return v;
  }

  strings(key: string): readonly string[] | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) this.fail(key, 'must be an array of strings');
    return v as string[];
  }

  subtable(key: string): Fields | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) this.fail(key, `must be a table, not ${describe(v)}`);
    return new Fields(this.file, v, this.#name(key), this.text);
  }

  tables(key: string): readonly Fields[] {
    const v = this.table[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every(isTable)) this.fail(key, 'must be an array of tables ([[' + this.#name(key) + ']])');
    return (v as Table[]).map((t, i) => new Fields(this.file, t, `${this.#name(key)}[${i}]`, this.text));
  }

  /** A metadata table passed through as it is (`{}` when absent). */
  metadata(key: string): Table | undefined {
    const v = this.table[key];
    if (v === undefined) return undefined;
    if (!isTable(v)) this.fail(key, 'must be a table');
    return v;
  }

  /** The raw value (metadata tables are passed through as they are). */
  raw(key: string): unknown {
    return this.table[key];
  }
}

/** True for a plain TOML table (not an array, date or primitive). */
export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}
