import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeDefinition, encodeDefinition } from './definition-codec.js';
import { decodeOp, encodeOp } from './op-codec.js';
import { digestOf } from '../digest.js';
import { loadDefinition } from '../graph.js';

const root = join(import.meta.dirname, '../../../../shared/conformance');
const llbOps = join(root, 'llb-ops');
const d2l = join(root, 'dockerfile2llb');

interface Vector {
  name: string;
  pb: Uint8Array;
  digests: string[];
}
const vectors: Vector[] = [
  ...readdirSync(llbOps)
    .filter((f) => f.endsWith('.pb'))
    .map((f) => ({
      name: `llb-ops/${f}`,
      pb: new Uint8Array(readFileSync(join(llbOps, f))),
      digests: readFileSync(join(llbOps, f.replace(/\.pb$/, '.digests')), 'utf8').split('\n').filter(Boolean),
    })),
  ...readdirSync(d2l)
    .filter((d) => existsSync(join(d2l, d, 'llb.pb')))
    .map((d) => ({
      name: `dockerfile2llb/${d}`,
      pb: new Uint8Array(readFileSync(join(d2l, d, 'llb.pb'))),
      digests: readFileSync(join(d2l, d, 'digests.txt'), 'utf8').split('\n').filter(Boolean),
    })),
];

describe('conformance round trip', () => {
  test('finds the vectors', () => {
    expect(vectors.length).toBeGreaterThan(70);
  });
  test.for(vectors)('$name', (v) => {
    const def = decodeDefinition(v.pb);
    expect(Buffer.from(encodeDefinition(def)).equals(Buffer.from(v.pb))).toBe(true);
    expect(def.def.map((b) => digestOf(b))).toEqual(v.digests);
    for (const bytes of def.def) {
      const op = decodeOp(bytes);
      expect(Buffer.from(encodeOp(op)).equals(Buffer.from(bytes))).toBe(true);
    }
    const g = loadDefinition(def);
    expect(g.vertices.size).toBe(v.digests.length);
  });
});
