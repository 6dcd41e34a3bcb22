/**
 * The stage graph: which stages a command reads (`COPY --from`, `RUN --mount=from=`), implicit
 * stages for images named there, cycle detection and reachability from the target (BuildKit's
 * toCommand, detectRunMount, validateCircularDependency, isReachable).
 */
import { KilnError } from '../errors.js';
import { parseInstruction } from '../instructions/parse.js';
import { parse } from '../parser/parser.js';
import type { DockerImage } from './image.js';
import type { Command, Stage } from '../instructions/commands.js';
import type { Position } from '../parser/ast.js';
import { DispatchState, type DispatchStates, type StageCommand } from './dispatch-state.js';

/** Empty image name. */
export const SCRATCH = 'scratch';

function implicitStage(baseName: string, cmd: Command, states: DispatchStates, at?: Position): DispatchState {
  // BuildKit makes a new implicit stage per reference; they are indistinguishable (same base,
  // no commands), so one per name is kept: it resolves the image once.
  const known = states.implicit.get(baseName);
  if (known !== undefined) return known;
  const stage: Stage = {
    name: '',
    index: -1,
    baseName,
    platform: '',
    sourceCode: '',
    comment: '',
    commands: [],
    // errors about the image (not found, bad reference) point at the flag that names it
    location: at === undefined ? cmd.location : { start: at, end: at },
    node: cmd.node,
  };
  const ds = new DispatchState(stage, { baseName, stageName: '', unregistered: true });
  states.implicit.set(baseName, ds);
  return ds;
}

/**
 * Link a command to the stages it reads. Unknown names become implicit image stages, as in
 * BuildKit. Throws KLN0501 for an out-of-range `COPY --from=<index>`.
 */
export function toCommand(cmd: Command, states: DispatchStates): StageCommand {
  if (cmd.name === 'copy' && cmd.from !== '') {
    let src: DispatchState | undefined;
    if (/^[+-]?\d+$/.test(cmd.from)) {
      const index = Number.parseInt(cmd.from, 10);
      src = states.findByIndex(index);
      if (src === undefined) {
        throw new KilnError('KLN0501', `invalid stage index ${index}`, {
          hint: `COPY --from=<n> counts stages from 0; this Dockerfile has ${states.states.length}`,
        });
      }
    } else {
      src = states.findByName(cmd.from) ?? implicitStage(cmd.from, cmd, states, cmd.node.flags.find((f) => f.value.startsWith('--from'))?.position);
    }
    return { command: cmd, sources: [src] };
  }
  if (cmd.name === 'run') {
    // BuildKit v0.11.6 gives every mount a source stage (scratch when it has no `from`, or is
    // a tmpfs); only mounts with a `from` (cache: implicitly scratch) read it.
    const sources = cmd.mounts.map((m, i) => {
      const from = m.from === '' || m.type === 'tmpfs' ? SCRATCH : m.from;
      return states.findByName(from) ?? implicitStage(from, cmd, states, cmd.mountSpecs[i]?.position);
    });
    return { command: cmd, sources };
  }
  return { command: cmd, sources: [] };
}

/**
 * BuildKit's validateCircularDependency: a depth-first walk over `deps`; the error carries the
 * location of the command that closes the cycle.
 */
export function validateCircularDependency(states: readonly DispatchState[], file: string): void {
  const visited = new Set<DispatchState>();
  const path = new Set<DispatchState>();
  const visit = (s: DispatchState, current: Command[]): Command[] | undefined => {
    if (visited.has(s)) return undefined;
    visited.add(s);
    path.add(s);
    for (const [dep, c] of s.deps) {
      const next = [...current, c];
      if (path.has(dep)) return next;
      const found = visit(dep, next);
      if (found !== undefined) return found;
    }
    path.delete(s);
    return undefined;
  };
  for (const s of states) {
    const cmds = visit(s, []);
    if (cmds !== undefined) {
      const last = cmds[cmds.length - 1];
      throw new KilnError('KLN0502', `circular dependency detected on stage: ${s.stageName}`, {
        ...(last === undefined ? {} : { location: { file, ...last.location.start }, source: last.node.original }),
        hint: 'a stage cannot COPY --from or mount a stage that (indirectly) depends on it',
      });
    }
  }
}

/** Every stage the target needs (its base chain and everything it copies or mounts from). */
export function reachableStages(target: DispatchState): Set<DispatchState> {
  const out = new Set<DispatchState>();
  const stack = [target];
  while (stack.length > 0) {
    const s = stack.pop() as DispatchState;
    if (out.has(s)) continue;
    out.add(s);
    if (s.base !== undefined) stack.push(s.base);
    for (const d of s.deps.keys()) stack.push(d);
  }
  return out;
}

/**
 * Triggers a stage will run: its base stage's own ONBUILD lines (the base ran the ones it
 * inherited and cleared them), or its base image's OnBuild.
 */
export function onbuildTriggers(d: DispatchState): string[] {
  if (d.base !== undefined) return d.base.stage.commands.flatMap((c) => (c.name === 'onbuild' ? [c.expression] : []));
  return [...((d.image as DockerImage | undefined)?.config.OnBuild ?? [])];
}

/** The stages an ONBUILD trigger reads (`COPY --from`, mount `from`); unparsable triggers read none here. */
export function triggerSources(trigger: string, states: DispatchStates, file: string): DispatchState[] {
  try {
    const ast = parse(trigger, { file });
    const node = ast.children[0];
    if (ast.children.length !== 1 || node === undefined) return [];
    const ic = parseInstruction(node, { file, escapeToken: ast.escapeToken });
    if (ic.name === 'from') return [];
    return toCommand(ic, states).sources.filter((s): s is DispatchState => s !== undefined);
  } catch {
    return []; // reported with its location when the trigger is dispatched
  }
}
