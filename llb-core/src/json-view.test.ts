import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeDefinition } from './pb/definition-codec.js';
import { definitionJsonLineChunks, definitionToJsonLines, goJsonString } from './json-view.js';
import { definitionToDot } from './dot-view.js';

const root = join(import.meta.dirname, '../../../shared/conformance');
const cases = [
  ...readdirSync(join(root, 'llb-ops'))
    .filter((f) => f.endsWith('.pb'))
    .map((f) => ({ name: f, pb: join(root, 'llb-ops', f), json: join(root, 'llb-ops', f.replace(/\.pb$/, '.json')) })),
  ...readdirSync(join(root, 'dockerfile2llb'))
    .filter((d) => existsSync(join(root, 'dockerfile2llb', d, 'llb.pb')))
    .map((d) => ({ name: d, pb: join(root, 'dockerfile2llb', d, 'llb.pb'), json: join(root, 'dockerfile2llb', d, 'llb.json') })),
];

describe('dump-llb JSON view', () => {
  test.for(cases)('$name', (c) => {
    const def = decodeDefinition(new Uint8Array(readFileSync(c.pb)));
    const ours = definitionToJsonLines(def);
    const ref = readFileSync(c.json, 'utf8');
    const lines = (s: string): unknown[] => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
    expect(lines(ours)).toEqual(lines(ref));
    // Same text too, line by line (Go's key order and escaping).
    expect(ours).toBe(ref);
  });

  test('chunks are whole lines of about the asked size that join to the whole text', () => {
    const c = cases.reduce((a, b) => (readFileSync(b.pb).length > readFileSync(a.pb).length ? b : a));
    const def = decodeDefinition(new Uint8Array(readFileSync(c.pb)));
    const whole = definitionToJsonLines(def);
    const chunks = [...definitionJsonLineChunks(def, 1000)];
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('')).toBe(whole);
    for (const [i, ch] of chunks.entries()) {
      expect(ch.endsWith('\n')).toBe(true);
      if (i < chunks.length - 1) expect(ch.length).toBeGreaterThanOrEqual(1000);
    }
  });

  test('DOT view names every op and edge', () => {
    const def = decodeDefinition(new Uint8Array(readFileSync(join(root, 'llb-ops/exec-mounts.pb'))));
    const dot = definitionToDot(def);
    expect(dot.startsWith('digraph {\n')).toBe(true);
    expect(dot).toContain('[label="docker-image://localhost:5000/busybox:latest" shape="ellipse"];');
    expect(dot).toContain('[label="copy{src=/x, dest=/x}" shape="note"];');
    expect(dot).toContain('-> "sha256:601d3e41752fb4a3ef5b1e884be2d932c9af0067f688620e09c11699712d31b6" [label="/rw"];');
    expect(dot.split('\n').filter((l) => l.includes(' -> ')).length).toBe(5);
  });
});

/** Go's encoding/json string quoting, one code point at a time (the oracle). */
function goQuoteOracle(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || ch === '<' || ch === '>' || ch === '&' || cp === 0x2028 || cp === 0x2029) out += `\\u${cp.toString(16).padStart(4, '0')}`;
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else out += ch;
  }
  return `${out}"`;
}

describe('goJsonString', () => {
  test('quotes like Go on random strings (controls, HTML characters, U+2028, surrogates)', () => {
    const alphabet = ['a', ' ', '"', '\\', '\n', '\r', '\t', '\b', '\f', '\u0000', '\u001f', '<', '>', '&', '\u2028', '\u2029', '\u2027', 'é', '\ud83d\ude00', '\ud83d', '\ude00', '\uffff', '\ue000'];
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      let s = '';
      for (let j = rnd(8); j > 0; j--) s += alphabet[rnd(alphabet.length)];
      expect(goJsonString(s), JSON.stringify(s)).toBe(goQuoteOracle(s));
    }
    expect(goJsonString('plain/path:tag')).toBe('"plain/path:tag"');
  });
});
