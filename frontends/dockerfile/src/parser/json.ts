/**
 * The JSON (exec) form of instruction arguments: `JSON.parse` decides what is valid JSON (it
 * accepts exactly what Go's encoding/json accepts), and a scan of the now known-valid text gives
 * the offset of every top-level element, so a non-string element can be reported at its column.
 * Values are decoded as Go's Unmarshal into `[]interface{}` decodes them (lone surrogates,
 * numbers out of float64's range, nesting depth).
 */

/** A JSON array of strings with element offsets (relative to the parsed text). */
export interface JsonArray {
  readonly elements: readonly { readonly value: string; readonly offset: number }[];
  /** Offset of the first element that is not a string, when there is one. */
  readonly nonString: number | undefined;
}

/**
 * Parse `text` as a JSON array. Undefined when it is not valid JSON or not an array (the caller
 * then falls back to the shell form, as BuildKit does).
 */
export function parseJsonArray(text: string): JsonArray | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  const values = v as unknown[];
  for (const x of values) if (typeof x !== 'string') return mixedArray(text, values);
  return stringArray(text, values as string[]);
}

/**
 * The common case, an array of strings only: after '[', each element is a '"' after whitespace
 * or a ',', and a string ends at the first '"' not escaped by a backslash.
 */
function stringArray(text: string, values: readonly string[]): JsonArray {
  const elements: { value: string; offset: number }[] = [];
  let i = text.indexOf('[') + 1;
  for (const value of values) {
    i = text.indexOf('"', i);
    elements.push({ value: wellFormed(value), offset: i });
    i = stringEnd(text, i);
  }
  return { elements, nonString: undefined };
}

/** Go's scanner nests arrays and objects at most this deep ("exceeded max depth", a syntax error). */
const MAX_NESTING_DEPTH = 10000;

/**
 * An array with other values than strings: one pass over the valid JSON `text` finds where each
 * top-level element starts. It also applies what Go rejects and JSON.parse does not: nesting
 * deeper than {@link MAX_NESTING_DEPTH}, and a number out of float64's range anywhere (an
 * UnmarshalTypeError). Either is an error other than errDockerfileNotStringArray, so BuildKit's
 * parseMaybeJSON takes the shell form: undefined here.
 */
function mixedArray(text: string, values: readonly unknown[]): JsonArray | undefined {
  const elements: { value: string; offset: number }[] = [];
  let nonString: number | undefined;
  let depth = 0;
  let index = 0;
  let elementStarts = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    if (elementStarts && c !== 0x5d) {
      const value = values[index++];
      if (typeof value === 'string') elements.push({ value: wellFormed(value), offset: i });
      else nonString ??= i;
    }
    elementStarts = false;
    if (c === 0x22) {
      i = stringEnd(text, i) - 1;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_NESTING_DEPTH) return undefined;
      elementStarts = depth === 1;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2c) {
      elementStarts = depth === 1;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j] ?? '')) j++;
      if (!Number.isFinite(Number(text.slice(i, j)))) return undefined;
      i = j - 1;
    }
  }
  return { elements, nonString };
}

/** The offset just past the JSON string literal that starts at `start` (its opening quote). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
  return i + 1;
}

/** A UTF-16 surrogate that pairs with no neighbour (a lone one). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const SURROGATE = /[\ud800-\udfff]/;

/**
 * Go's encoding/json (unquote) decodes an escaped surrogate that does not pair with the escape
 * after it as U+FFFD; JSON.parse keeps it as a lone UTF-16 unit, which would then reach the
 * LLB, the image config and the history differently from BuildKit.
 */
function wellFormed(s: string): string {
  return SURROGATE.test(s) ? s.replace(LONE_SURROGATE, '\ufffd') : s;
}
