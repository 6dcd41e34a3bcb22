import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeDefinition, encodeDefinition } from '../pb/definition-codec.js';
import { decodeOp } from '../pb/op-codec.js';
import { fromDefinition } from './definition-op.js';

const dir = join(import.meta.dirname, '../../../../shared/conformance/llb-ops');
const names = readdirSync(dir).filter((f) => f.endsWith('.pb'));

describe('fromDefinition', () => {
  test.for(names)('%s re-marshals byte-identically', async (name) => {
    const bytes = readFileSync(join(dir, name));
    const st = fromDefinition(decodeDefinition(new Uint8Array(bytes)));
    const again = await st.marshal();
    expect(Buffer.from(encodeDefinition(again)).equals(bytes)).toBe(true);
  });

  test('a loaded graph can be extended', async () => {
    const st = fromDefinition(decodeDefinition(new Uint8Array(readFileSync(join(dir, 'exec-basic.pb')))));
    const d = await st.run({ args: ['true'] }).marshal();
    const exec = decodeOp(d.def.at(-2) as Uint8Array);
    expect(exec.kind).toBe('exec');
    expect(exec.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(exec.inputs[0]?.digest).toBe('sha256:76a51a431c82858dd124c05ecb390529ee334f2680b7aa557c4060dc471ba889');
  });

  test('an empty definition is scratch', () => {
    expect(fromDefinition({ def: [], metadata: new Map() }).isScratch).toBe(true);
  });
});
