import { loadDefinition, type Definition, type LlbVertex, type Op, type Source } from '@kiln/llb-core';
import { SolverError, type SourceLocation } from '../errors.js';
import { applySourcePolicy } from '../policy/apply.js';
import { redactIdentifier, type SourcePolicyEngine } from '../policy/engine.js';
import type { SolverEdge, SolverVertex } from '../scheduler/types.js';

/** A Definition loaded into solver vertices. */
export interface LoadedGraph {
  /** The build result (the terminal op's input); undefined for an empty definition. */
  readonly root: SolverEdge<Op> | undefined;
  readonly vertices: ReadonlyMap<string, SolverVertex<Op>>;
}

/** Options of {@link loadGraph}. */
export interface LoadGraphOptions {
  /**
   * The build's source policy (`--source-policy-file`): applied to the source ops first, so the
   * vertices, their digests and cache keys are those of the converted graph (BuildKit's loadLLB).
   * A denied source throws its SourcePolicyError with the op's source-map location.
   */
  readonly sourcePolicy?: SourcePolicyEngine;
}

/**
 * Turns a Definition into {@link SolverVertex}es (BuildKit's llbsolver loadLLB): names come from
 * the `llb.customname` description (else a summary of the op), `ignore_cache` from metadata,
 * and locations from the source map (1-based line and column, with the source line's text).
 * Throws SOLVER_INVALID_DEFINITION when the definition does not decode or link.
 */
export function loadGraph(input: Definition, opts: LoadGraphOptions = {}): LoadedGraph {
  const def = opts.sourcePolicy === undefined ? input : applySourcePolicy(input, opts.sourcePolicy, (d) => sourceLocations(input.source, d)[0]);
  let loaded;
  try {
    loaded = loadDefinition(def);
  } catch (err) {
    throw new SolverError('SOLVER_INVALID_DEFINITION', `invalid definition: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const inherited = consumerLocations(loaded.order, (d) => sourceLocations(loaded.source, d));
  const out = new Map<string, SolverVertex<Op>>();
  const convert = (v: LlbVertex): SolverVertex<Op> => {
    const have = out.get(v.digest);
    if (have !== undefined) return have;
    const desc = v.metadata.description;
    const own = sourceLocations(loaded.source, v.digest);
    const locations = own.length > 0 ? own : (inherited.get(v.digest) ?? []);
    const sv: SolverVertex<Op> = {
      digest: v.digest,
      name: desc?.get('llb.customname') ?? defaultName(v.op),
      inputs: v.inputs.map((i) => ({ vertex: convert(i.vertex), index: i.index })),
      options: {
        ...(v.metadata.ignoreCache === true ? { ignoreCache: true } : {}),
        ...(desc === undefined ? {} : { description: Object.fromEntries(desc) }),
        ...(locations.length === 0 ? {} : { locations }),
        ...(v.metadata.progressGroup?.id === undefined ? {} : { progressGroup: v.metadata.progressGroup.id }),
      },
      op: v.op,
    };
    out.set(v.digest, sv);
    return sv;
  };
  for (const v of loaded.order) convert(v);
  const root = loaded.root === undefined ? undefined : { vertex: convert(loaded.root.vertex), index: loaded.root.index };
  return { root, vertices: out };
}

/**
 * Locations for source ops the source map leaves out: BuildKit's Dockerfile frontend locates
 * ADD's FileOp but not the http or git source it reads from, so a failed download had no
 * Dockerfile line. Such a source takes the locations of the ops that consume it. Local sources
 * are left alone: the build context feeds every COPY, and no one of them is where it failed.
 */
function consumerLocations(order: readonly LlbVertex[], own: (digest: string) => SourceLocation[]): Map<string, SourceLocation[]> {
  const out = new Map<string, SourceLocation[]>();
  for (const v of order) {
    const locs = own(v.digest);
    if (locs.length === 0) continue;
    for (const { vertex: input } of v.inputs) {
      if (input.op.kind !== 'source' || (input.op.source.identifier ?? '').startsWith('local://') || own(input.digest).length > 0) continue;
      const have = out.get(input.digest) ?? [];
      for (const l of locs) if (!have.some((h) => h.file === l.file && h.line === l.line && h.column === l.column)) have.push(l);
      out.set(input.digest, have);
    }
  }
  return out;
}

function sourceLocations(source: Source | undefined, digest: string): SourceLocation[] {
  const locs = source?.locations?.get(digest)?.locations ?? [];
  const out: SourceLocation[] = [];
  for (const l of locs) {
    const info = source?.infos?.[l.sourceIndex ?? 0];
    const r = l.ranges?.[0];
    if (info === undefined || r === undefined) continue;
    const line = r.start.line ?? 0;
    const text = info.data === undefined ? undefined : Buffer.from(info.data).toString('utf8').split('\n')[line - 1];
    out.push({ file: info.filename ?? '', line, column: (r.start.character ?? 0) + 1, ...(text === undefined ? {} : { source: text }) });
  }
  return out;
}

/** A progress name for ops without `llb.customname`, close to BuildKit's defaults. */
export function defaultName(op: Op): string {
  switch (op.kind) {
    case 'exec':
      return (op.exec.meta?.args ?? []).join(' ');
    case 'source':
      // Progress and history records show it: a URL's user and password stay out (any frontend's
      // `https://user:token@…` download, raw LLB included).
      return redactIdentifier(op.source.identifier ?? 'source');
    case 'file': {
      const a = op.file.actions?.[0]?.action;
      if (a === undefined) return 'file';
      switch (a.kind) {
        case 'copy':
          return `copy ${a.copy.src ?? ''} ${a.copy.dest ?? ''}`;
        case 'mkdir':
          return `mkdir ${a.mkdir.path ?? ''}`;
        case 'mkfile':
          return `mkfile ${a.mkfile.path ?? ''}`;
        case 'rm':
          return `rm ${a.rm.path ?? ''}`;
        case 'symlink':
          return `symlink ${a.symlink.oldpath ?? ''} -> ${a.symlink.newpath ?? ''}`;
        case 'none':
          return 'file';
        default:
          return 'file';
      }
    }
    case 'merge':
      return 'merge';
    case 'diff':
      return 'diff';
    case 'build':
      return 'build';
    case 'none':
      return 'none';
    default: {
      const never: never = op;
      return never;
    }
  }
}
