import { expect, test } from 'vitest';
import { callMetadata } from './result-metadata.js';

const enc = new TextEncoder();
const meta = (o: Record<string, string>): Map<string, Uint8Array> => new Map(Object.entries(o).map(([k, v]) => [k, enc.encode(v)]));

// buildx's decodeExporterResponse over a call's result metadata: result.json inlined when it is
// an object with keys or a list of objects, any other value inlined only when it is base64 of
// such JSON, else kept as its text; keys sorted (a Go map).
test('a --call answer is written as buildx decodes it: result.json inlined, the text and status as strings', () => {
  const m = callMetadata(meta({ version: '1.0.0', 'result.txt': 'TARGET  DESCRIPTION\napp\n', 'result.json': '{"target":"app","args":[{"name":"PORT"}]}', 'result.statuscode': '1' }));
  expect(Object.keys(m)).toEqual(['result.json', 'result.statuscode', 'result.txt', 'version']);
  expect(m).toEqual({ 'result.json': { target: 'app', args: [{ name: 'PORT' }] }, 'result.statuscode': '1', 'result.txt': 'TARGET  DESCRIPTION\napp\n', version: '1.0.0' });
});

test.for([
  ['{}', '{}'],
  ['[]', '[]'],
  ['[1,2]', '[1,2]'],
  ['not json', 'not json'],
  ['[{"a":1},null]', [{ a: 1 }, null]],
] as const)('result.json %s is kept as %j', ([json, want]) => {
  expect(callMetadata(meta({ 'result.json': json }))['result.json']).toEqual(want);
});

test('another value is inlined only when it is base64 of a JSON object (as an exporter response value)', () => {
  const b64 = Buffer.from('{"k":"v"}').toString('base64');
  expect(callMetadata(meta({ x: b64, y: Buffer.from('"s"').toString('base64'), z: 'abcd' }))).toEqual({ x: { k: 'v' }, y: Buffer.from('"s"').toString('base64'), z: 'abcd' });
});
