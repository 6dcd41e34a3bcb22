import { describe, expect, test } from 'vitest';
import { goJsonString, opMetadataJson } from './json-view.js';

// The dump writes ASCII strings that need escaping byte by byte (not through goJsonString):
// both must print the same text. goJsonString itself is checked against a Go oracle in json-view.test.ts.
describe('JSON writer string escaping', () => {
  test('ASCII strings with control characters, quotes, backslashes and <>& print as goJsonString does', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const special = '"\\<>&\n\r\t\u0000\u0001\u001f\u007f';
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const len = rand(24);
      for (let j = 0; j < len; j++) s += rand(3) === 0 ? special[rand(special.length)] : String.fromCharCode(0x20 + rand(0x5f));
      expect(opMetadataJson({ description: new Map([['k', s]]) }), JSON.stringify(s)).toBe(`{"description":{"k":${goJsonString(s)}},"caps":null}`);
    }
  });

  test('strings beyond ASCII still print as goJsonString does', () => {
    for (const s of ['é<b>', 'a\u2028b&', '\ud800x"', '日本 "q"', '😀\n']) {
      expect(opMetadataJson({ description: new Map([[s, s]]) })).toBe(`{"description":{${goJsonString(s)}:${goJsonString(s)}},"caps":null}`);
    }
  });
});
