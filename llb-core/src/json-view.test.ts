import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeDefinition } from './pb/definition-codec.js';
import { definitionJsonLineChunks, definitionToJsonLines } from './json-view.js';
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
