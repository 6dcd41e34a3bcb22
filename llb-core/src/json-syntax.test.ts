import { describe, expect, test } from 'vitest';
import { findJsonSyntaxError } from './json-syntax.js';

describe('findJsonSyntaxError', () => {
  test.for([
    // the trailing comma: V8's message has neither line nor column for it
    ['{"rules": [\n  {"action": "DENY"},\n]}', 3, 1, 'expected a value after the comma (JSON allows no trailing comma), found "]"'],
    ['{"a": 1,\n}', 2, 1, 'expected a key after the comma (JSON allows no trailing comma), found "}"'],
    ['{"a": "b}\n', 1, 7, 'a string is not closed before the end of the line'],
    ["{'a': 1}", 1, 2, "expected a key in double quotes, found ' (JSON strings are in double quotes)"],
    ['{\n  // note\n  "a": 1}', 2, 3, 'expected a key in double quotes, found a comment (JSON has none)'],
    ['{"a" 1}', 1, 6, 'expected ":" after the key, found "1"'],
    ['{"a": 1 "b": 2}', 1, 9, 'expected "," or "}", found "\\""'],
    ['[1, 2', 1, 6, 'expected "," or "]", found the end of the file'],
    ['{"a": tru}', 1, 7, 'expected a value, found "t"'],
    ['{} {}', 1, 4, 'expected the end of the file after the value, found "{"'],
    ['"a\\x"', 1, 3, 'invalid escape \\x in a string'],
  ] as const)('%j', ([text, line, column, message]) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(findJsonSyntaxError(text)).toEqual({ line, column, message });
  });

  test('valid JSON has no error', () => {
    for (const t of ['{}', '[]', ' {"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"]} \n', '0', '"s"']) expect(findJsonSyntaxError(t), t).toBeUndefined();
  });
});
