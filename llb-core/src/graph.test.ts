import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeDefinition, encodeDefinition } from './pb/definition-codec.js';
import { decodeOp, encodeOp } from './pb/op-codec.js';
import { digestOf, type Digest } from './digest.js';
import { linkOps, loadDefinition } from './graph.js';
import type { Op } from './op.js';

const vec = (n: string): Uint8Array =>
  new Uint8Array(readFileSync(join(import.meta.dirname, '../../../shared/conformance/llb-ops', n)));

describe('decode errors', () => {
  test('garbage bytes fail with LLB_DECODE or LLB_TRUNCATED', () => {
    const garbage = new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x00, 0x13, 0x99]);
    expect(() => decodeDefinition(garbage)).toThrow(expect.objectContaining({ name: 'LlbError' }));
    expect(() => decodeOp(new Uint8Array([0x0f]))).toThrow(expect.objectContaining({ code: 'LLB_DECODE' }));
  });

  test('every truncation of a real definition fails cleanly', () => {
    const pb = vec('exec-mounts.pb');
    for (let n = 1; n < pb.length; n++) {
      let err: unknown;
      try {
        const d = decodeDefinition(pb.subarray(0, n));
        loadDefinition(d);
      } catch (e) {
        err = e;
      }
      // A prefix either fails with an LlbError or is a shorter, still-valid definition.
      if (err !== undefined) expect(err).toMatchObject({ name: 'LlbError' });
    }
    expect(() => decodeDefinition(pb.subarray(0, pb.length - 3))).toThrow(
      expect.objectContaining({ code: 'LLB_TRUNCATED' }),
    );
  });

  test('a wrong wire type for a known field is rejected', () => {
    // Op.inputs (field 1) sent as varint.
    expect(() => decodeOp(new Uint8Array([0x08, 0x01]))).toThrow(expect.objectContaining({ code: 'LLB_DECODE' }));
  });

  test('an op naming a missing input fails with LLB_MISSING_INPUT', () => {
    const def = decodeDefinition(vec('exec-basic.pb'));
    const withoutSource = { ...def, def: def.def.slice(1) };
    expect(() => loadDefinition(withoutSource)).toThrow(expect.objectContaining({ code: 'LLB_MISSING_INPUT' }));
    // and survives a re-encode as a clear error too
    expect(() => loadDefinition(decodeDefinition(encodeDefinition(withoutSource)))).toThrow(
      expect.objectContaining({ code: 'LLB_MISSING_INPUT' }),
    );
  });

  test('an out-of-range mount input fails with LLB_BAD_INPUT_INDEX', () => {
    const def = decodeDefinition(vec('exec-basic.pb'));
    const execBytes = def.def[1] as Uint8Array;
    const op = decodeOp(execBytes);
    if (op.kind !== 'exec') throw new Error('expected exec');
    const bad: Op = { ...op, exec: { ...op.exec, mounts: [{ input: 3, dest: '/' }] } };
    const badBytes = encodeOp(bad);
    const term: Op = { kind: 'none', inputs: [{ digest: digestOf(badBytes), index: 0 }] };
    expect(() => loadDefinition({ def: [def.def[0] as Uint8Array, badBytes, encodeOp(term)], metadata: new Map() })).toThrow(
      expect.objectContaining({ code: 'LLB_BAD_INPUT_INDEX' }),
    );
  });

  test('a cycle fails with LLB_CYCLE', () => {
    const a = 'sha256:' + 'a'.repeat(64);
    const b = 'sha256:' + 'b'.repeat(64);
    const opA: Op = { kind: 'merge', inputs: [{ digest: b as Digest, index: 0 }], merge: { inputs: [{ input: 0 }] } };
    const opB: Op = { kind: 'merge', inputs: [{ digest: a as Digest, index: 0 }], merge: { inputs: [{ input: 0 }] } };
    const ops = new Map([
      [a as Digest, { op: opA, bytes: encodeOp(opA) }],
      [b as Digest, { op: opB, bytes: encodeOp(opB) }],
    ]);
    expect(() => linkOps(ops, a as Digest)).toThrow(expect.objectContaining({ code: 'LLB_CYCLE' }));
  });

  test('an empty definition loads with no root', () => {
    const g = loadDefinition({ def: [], metadata: new Map() });
    expect(g.root).toBeUndefined();
    expect(g.vertices.size).toBe(0);
  });

  test('loads vertices in post-order with resolved inputs', () => {
    const g = loadDefinition(decodeDefinition(vec('exec-mounts.pb')));
    const digests = readFileSync(join(import.meta.dirname, '../../../shared/conformance/llb-ops/exec-mounts.digests'), 'utf8')
      .split('\n')
      .filter(Boolean);
    expect(g.order.map((v) => v.digest)).toEqual(digests);
    expect(g.root?.vertex.op.kind).toBe('file');
    expect(g.root?.vertex.inputs.map((i) => i.index)).toEqual([1, 2]);
  });
});

describe('fuzzed definitions', () => {
  test('random byte mutations of every vector fail only with LlbError', async () => {
    const { readdirSync } = await import('node:fs');
    const { definitionToJsonLines } = await import('./json-view.js');
    const dir = join(import.meta.dirname, '../../../shared/conformance/llb-ops');
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    let failures = 0;
    let llbErrors = 0;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.pb'))) {
      const orig = readFileSync(join(dir, f));
      for (let i = 0; i < 60; i++) {
        const b = new Uint8Array(orig);
        for (let k = 0; k < 3; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
        try {
          const d = decodeDefinition(b);
          definitionToJsonLines(d);
          encodeDefinition(d);
          loadDefinition(d);
        } catch (e) {
          if ((e as { name?: string }).name === 'LlbError') llbErrors++;
          else failures++;
        }
      }
    }
    expect(failures).toBe(0);
    expect(llbErrors).toBeGreaterThan(100);
  });
});
