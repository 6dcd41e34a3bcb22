import { expect, test } from 'vitest';
import { copy, http, image, local, SourceMap } from '@kiln/llb-core';
import { loadGraph } from './load.js';

const M = { platform: 'linux/amd64' } as const;
const text = 'FROM busybox\nADD https://example.invalid/a.txt /a.txt\nCOPY x /x\nADD https://example.invalid/a.txt /again.txt\n';
const dockerfile = new SourceMap('Dockerfile', new TextEncoder().encode(text), { language: 'Dockerfile' });
const at = (line: number) => [dockerfile.location([{ start: { line, character: 0 }, end: { line, character: 3 } }])];

// As BuildKit's Dockerfile frontend writes it: ADD's FileOp is located, its http source is not.
async function graph() {
  const ctx = local('context');
  const src = http('https://example.invalid/a.txt', { filename: 'a.txt' });
  const st = image('busybox', { sourceLocations: at(1) })
    .file(copy(src, '/a.txt', '/a.txt'), { sourceLocations: at(2) })
    .file(copy(ctx, '/x', '/x'), { sourceLocations: at(3) })
    .file(copy(src, '/a.txt', '/again.txt'), { sourceLocations: at(4) });
  return loadGraph(await st.marshal(M));
}

test('an http source without its own location takes those of the ADDs that read it: a failed download names its Dockerfile lines', async () => {
  const g = await graph();
  const source = [...g.vertices.values()].find((v) => v.op.kind === 'source' && v.op.source.identifier === 'https://example.invalid/a.txt');
  expect(source?.options.locations).toEqual([
    { file: 'Dockerfile', line: 2, column: 1, source: 'ADD https://example.invalid/a.txt /a.txt' },
    { file: 'Dockerfile', line: 4, column: 1, source: 'ADD https://example.invalid/a.txt /again.txt' },
  ]);
});

test('the local context (read by every COPY) and located ops keep what the source map says', async () => {
  const g = await graph();
  const byId = (id: string) => [...g.vertices.values()].find((v) => v.op.kind === 'source' && v.op.source.identifier === id);
  expect(byId('local://context')?.options.locations).toBeUndefined();
  expect(byId('docker-image://docker.io/library/busybox:latest')?.options.locations?.map((l) => l.line)).toEqual([1]);
  const copies = [...g.vertices.values()].filter((v) => v.op.kind === 'file').map((v) => v.options.locations?.map((l) => l.line));
  expect(copies.sort()).toEqual([[2], [3], [4]]);
});
