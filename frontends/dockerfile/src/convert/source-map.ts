/**
 * The Definition's source map: the Dockerfile as source 0 and, per op, the ranges of the
 * instruction that made it, so solver errors can point at the Dockerfile line
 * (BuildKit's client/llb/sourcemap.go).
 */
import type { Definition, Digest, Locations, Range as PbRange } from '@kiln/llb-core';
import type { Range } from '../parser/ast.js';

function toPbRange(r: Range): PbRange {
  return { start: { line: r.start.line, character: r.start.column - 1 }, end: { line: r.end.line, character: r.end.column } };
}

/** Attach the Dockerfile as source 0 and the ranges of each op's instruction (by progress name). */
export function withSourceMap(def: Definition, file: string, text: string, locations: ReadonlyMap<string, readonly Range[]>): Definition {
  const out = new Map<string, Locations>();
  for (const digest of def.source?.locations?.keys() ?? []) {
    const meta = def.metadata.get(digest as Digest);
    const name = meta?.description?.get('llb.customname') ?? meta?.progressGroup?.name;
    const ranges = name === undefined ? undefined : locations.get(name);
    out.set(digest, ranges === undefined ? {} : { locations: [{ sourceIndex: 0, ranges: ranges.map(toPbRange) }] });
  }
  return {
    ...def,
    source: { locations: out, infos: [{ filename: file, data: new TextEncoder().encode(text), language: 'Dockerfile' }] },
  };
}

