/**
 * Where a JSON text is malformed, and how: `JSON.parse` names an offset for some mistakes only
 * (V8 says `Unexpected token ']', ..."x"}},]}\n" is not valid JSON`, with the text's tail and no
 * position, for a trailing comma, the commonest one). Used for error messages of the JSON files
 * users write (source policies, bake files); it runs only after `JSON.parse` failed.
 */

/** A syntax error of a JSON text: 1-based line and column, and what is wrong. */
export interface JsonSyntaxError {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

class Stop extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message);
  }
}

/** The first syntax error of `text`, or undefined when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] as string)) i++;
  };
  const found = (): string => {
    const c = text[i];
    if (c === undefined) return 'the end of the file';
    if (c === '/' && (text[i + 1] === '/' || text[i + 1] === '*')) return 'a comment (JSON has none)';
    if (c === "'") return "' (JSON strings are in double quotes)";
    return JSON.stringify(c);
  };
  const fail = (what: string): never => {
    throw new Stop(i, `expected ${what}, found ${found()}`);
  };
  const string = (): void => {
    const start = i;
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined || c === '\n') throw new Stop(start, 'a string is not closed before the end of the line');
      if (c === '"') break;
      if (c < ' ') throw new Stop(i, 'a control character in a string (write \\t or \\n)');
      if (c === '\\') {
        const e = text[i + 1] ?? '';
        if (e === 'u' ? !/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6)) : !'"\\/bfnrt'.includes(e) || e === '') throw new Stop(i, `invalid escape \\${e} in a string`);
        i += e === 'u' ? 6 : 2;
        continue;
      }
      i++;
    }
    i++;
  };
  const value = (depth: number): void => {
    if (depth > 512) throw new Stop(i, 'nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail(text[i] === '}' ? 'a key after the comma (JSON allows no trailing comma)' : 'a key in double quotes');
        string();
        ws();
        if (text[i] !== ':') fail('":" after the key');
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') return void i++;
        fail('"," or "}"');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        ws();
        if (text[i] === ']') fail('a value after the comma (JSON allows no trailing comma)');
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') return void i++;
        fail('"," or "]"');
      }
    }
    if (c === '"') return string();
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m !== null && m[0] !== '-') {
      i += m[0].length;
      return;
    }
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    fail('a value');
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail('the end of the file after the value');
    return undefined;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    const before = text.slice(0, e.at);
    const nl = before.lastIndexOf('\n');
    return { line: before.split('\n').length, column: e.at - nl, message: e.message };
  }
}
