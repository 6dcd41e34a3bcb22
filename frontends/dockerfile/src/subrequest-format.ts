/**
 * The byte-level formats of subrequest answers: Go's `json.MarshalIndent(v, "", "  ")` (what
 * BuildKit puts in `result.json`, and buildx prints for `--call=…,format=json`) and Go's
 * text/tabwriter with spaces (what the subrequests' printers lay their tables out with).
 */

/** A JSON value as Go would marshal it; `undefined` members are left out (omitempty). */
export type GoJsonValue = string | number | boolean | null | readonly GoJsonValue[] | { readonly [k: string]: GoJsonValue | undefined };

/** Go's encoding/json string escaping with HTML escaping on (the Marshal default). */
function goString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&' || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * `json.MarshalIndent(v, "", "  ")`: members in the order given (a Go struct's field order),
 * `undefined` members dropped, `[]`/`{}` when empty.
 */
export function goJsonIndent(value: GoJsonValue, indent = ''): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return goString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = (value as readonly GoJsonValue[]).map((v) => `${inner}${goJsonIndent(v, inner)}`);
    return items.length === 0 ? '[]' : `[\n${items.join(',\n')}\n${indent}]`;
  }
  const members = Object.entries(value).flatMap(([k, v]) => (v === undefined ? [] : [`${inner}${goString(k)}: ${goJsonIndent(v, inner)}`]));
  return members.length === 0 ? '{}' : `{\n${members.join(',\n')}\n${indent}}`;
}

/** A `[]byte` as encoding/json writes it: standard base64. */
export function goBytes(data: Uint8Array): string {
  return Buffer.from(data).toString('base64');
}

/** A Dockerfile span as a BuildKit `pb.Location` (instruction ranges have no character). */
export function pbLocation(ranges: readonly { readonly start: { readonly line: number }; readonly end: { readonly line: number } }[]): GoJsonValue {
  return { ranges: ranges.map((r) => ({ start: { line: r.start.line }, end: { line: r.end.line } })) };
}

/**
 * Go's `tabwriter.NewWriter(w, 0, 0, padding, ' ', 0)` over `text`: tab-terminated cells of
 * adjacent lines form a column as wide as its widest cell plus `padding`; the last cell of a
 * line is not part of a column (so a row whose last cell is empty keeps its padding).
 */
export function tabwrite(text: string, padding: number): string {
  const final = text.endsWith('\n');
  const lines = (final ? text.slice(0, -1) : text).split('\n').map((l) => l.split('\t'));
  const width = (s: string): number => [...s].length;
  const widths: number[] = [];
  const out: string[] = [];
  const writeLines = (from: number, to: number): void => {
    for (let i = from; i < to; i++) {
      const cells = lines[i] ?? [];
      out.push(cells.map((c, j) => (j < widths.length ? c + ' '.repeat(Math.max(0, (widths[j] ?? 0) - width(c))) : c)).join(''));
    }
  };
  // text/tabwriter's format: a column block is a run of lines with a cell in this column.
  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= (lines[t]?.length ?? 0) - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let w = 0;
      for (; t < line1; t++) {
        const cells = lines[t] ?? [];
        if (column >= cells.length - 1) break;
        w = Math.max(w, width(cells[column] ?? '') + padding);
      }
      widths.push(w);
      format(line0, t);
      widths.pop();
      line0 = t;
    }
    writeLines(line0, line1);
  };
  format(0, lines.length);
  return out.join('\n') + (final ? '\n' : '');
}
