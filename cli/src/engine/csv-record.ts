/**
 * One CSV record read as buildx reads `--cache-to`/`--cache-from` values: Go's encoding/csv with
 * its defaults (tonistiigi/go-csvvalue, which buildx calls, matches it for one line). Fields are
 * split on commas and kept as they are (no trimming; an empty field between or after commas is a
 * field). A field quoted from its first character may hold commas, and `""` in it is one `"`; a
 * quote anywhere else in a field, text after a closing quote, or a quote never closed is an error.
 */

/** encoding/csv's ParseError for a line: `parse error on line 1, column N: …`. */
export class CsvError extends Error {
  override readonly name = 'CsvError';
  /** 1-based, in UTF-8 bytes as Go counts it: `dest=/é"` is column 9, not 8. */
  readonly column: number;
  constructor(column: number, what: string) {
    super(`parse error on line 1, column ${column}: ${what}`);
    this.column = column;
  }
}

/** The 1-based byte column of `text[index]` (Go's ParseError counts bytes, JS strings UTF-16 units). */
const columnAt = (text: string, index: number): number => Buffer.byteLength(text.slice(0, index), 'utf8') + 1;

/** csv.ErrBareQuote. */
const BARE_QUOTE = 'bare " in non-quoted-field';
/** csv.ErrQuote. */
const QUOTE = 'extraneous or missing " in quoted-field';

/**
 * The fields of `line`; none for an empty line (encoding/csv reads no record there: io.EOF). A
 * trailing newline is dropped, as csvvalue allows it. Throws {@link CsvError}.
 */
export function readCsvRecord(line: string): string[] {
  const text = line.endsWith('\r\n') ? line.slice(0, -2) : line.endsWith('\n') ? line.slice(0, -1) : line;
  if (text === '') return [];
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (text[i] !== '"') {
      const comma = text.indexOf(',', i);
      const field = text.slice(i, comma < 0 ? text.length : comma);
      const q = field.indexOf('"');
      if (q >= 0) throw new CsvError(columnAt(text, i + q), BARE_QUOTE);
      fields.push(field);
      if (comma < 0) return fields;
      i = comma + 1;
      continue;
    }
    // A quoted field: up to a quote followed by a comma or the end.
    let field = '';
    i += 1;
    for (;;) {
      const q = text.indexOf('"', i);
      if (q < 0) throw new CsvError(columnAt(text, i), QUOTE);
      field += text.slice(i, q);
      i = q + 1;
      const next = text[i];
      if (next === '"') {
        field += '"';
        i += 1;
      } else if (next === ',') {
        fields.push(field);
        i += 1;
        break;
      } else if (next === undefined) {
        fields.push(field);
        return fields;
      } else throw new CsvError(columnAt(text, q), QUOTE);
    }
  }
}
