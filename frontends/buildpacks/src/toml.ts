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
      throw new BuildpacksError('KLN0901', `invalid TOML: ${message.replace(/^Invalid TOML document: /, '')}`, { location: { file, line: e.line, column: e.column }, cause: e });
    }
    throw e;
  }
}

/** Writes a table as TOML. */
export function toToml(table: Readonly<Record<string, unknown>>): string {
  return stringify(table);
}

/** Narrows and reads typed fields of a table, failing with KLN0901 naming the file and the key. */
export class Fields {
  constructor(
    readonly file: string,
    readonly table: Table,
    readonly path = '',
  ) {}

  #name(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  fail(key: string, what: string): never {
    throw new BuildpacksError('KLN0901', `${this.file}: ${this.#name(key)} ${what}`);
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
    return new Fields(this.file, v, this.#name(key));
  }

  tables(key: string): readonly Fields[] {
    const v = this.table[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every(isTable)) this.fail(key, 'must be an array of tables ([[' + this.#name(key) + ']])');
    return (v as Table[]).map((t, i) => new Fields(this.file, t, `${this.#name(key)}[${i}]`));
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
