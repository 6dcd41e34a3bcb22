/**
 * A small JSON writer for values that mirror Go structs: objects are written in their insertion
 * order (callers build them in the Go struct's field order and sort map keys themselves),
 * strings escaped as Go's encoding/json escapes them, and {@link RawJson} spliced in as it is
 * (a `json.RawMessage`, or an `Op` whose Go JSON llb-core writes).
 */

/** Already-encoded JSON text, written as it is. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** A JSON value the writer accepts. */
export type GoJsonValue = null | boolean | number | string | RawJson | readonly GoJsonValue[] | { readonly [key: string]: GoJsonValue | undefined };

/** `s` quoted as Go's encoding/json quotes it: `<`, `>`, `&`, U+2028/9 as `\u00XX`, `\b`/`\f` as `\u0008`/`\u000c`. */
export function goQuote(s: string): string {
  return JSON.stringify(s).replace(/\\[bf]|[<>&\u2028\u2029]/g, (m) => {
    if (m === '\\b') return '\\u0008';
    if (m === '\\f') return '\\u000c';
    return `\\u${m.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Compact JSON text of `v`; object members whose value is `undefined` are left out (Go's omitempty is the caller's). */
export function goJson(v: GoJsonValue): string {
  if (v === null) return 'null';
  if (v instanceof RawJson) return v.text;
  if (typeof v === 'string') return goQuote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${(v as readonly GoJsonValue[]).map(goJson).join(',')}]`;
  const parts: string[] = [];
  for (const [k, x] of Object.entries(v as { readonly [key: string]: GoJsonValue | undefined })) {
    if (x !== undefined) parts.push(`${goQuote(k)}:${goJson(x)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Entries of a map as a Go map marshals them: keys sorted (byte order). */
export function sortedMap<T extends GoJsonValue>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out[k] = v;
  return out;
}

/** Go's `time.Time` JSON (RFC 3339 with the fraction's trailing zeros dropped), in UTC. */
export function goTime(d: Date): string {
  return d.toISOString().replace(/\.?0+Z$/, 'Z');
}
