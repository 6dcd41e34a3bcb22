/**
 * What an SBOM scan of the result covers besides the result (BuildKit v0.11 dockerfile2llb
 * `SBOMTargets`): `BUILDKIT_SBOM_SCAN_CONTEXT` and `BUILDKIT_SBOM_SCAN_STAGE`, declared as meta
 * ARGs (before FROM) or stage ARGs, turn on scanning of the build context (for the target stage)
 * and of the other stages the target is built from. A value is a Go bool, or a comma list of
 * stage names it is true for. A build arg only sets the value of an ARG that is declared.
 */
import type { State } from '@kiln/llb-core';
import { parseGoBool } from '../instructions/mount.js';
import type { ArgValue, DispatchState } from './dispatch-state.js';

const SCAN_CONTEXT = 'BUILDKIT_SBOM_SCAN_CONTEXT';
const SCAN_STAGE = 'BUILDKIT_SBOM_SCAN_STAGE';

/** The extras of a scan and whether it runs uncached (see {@link ConvertResult.sbom}). */
export interface SBOMScanTargets {
  /** `context` (the build context) and stage names → their states. */
  readonly extras: ReadonlyMap<string, State>;
  /** The target or a scanned stage is under `no-cache`. */
  readonly ignoreCache: boolean;
}

/** `isEnabledForStage`: a bool, else whether the stage is in the comma list. */
function enabledForStage(stage: string, value: string): boolean {
  const b = parseGoBool(value);
  return b ?? value.split(',').includes(stage);
}

/** Whether `name` is on for a dispatched stage: the meta ARG, then the stage's own ARGs (last wins). */
function enabled(d: DispatchState, name: string, metaArgs: readonly ArgValue[]): boolean {
  // The name as BuildKit has it when it reads the flags: `stage-N` for an unnamed stage, and
  // empty for a lone stage, named or not (toDispatchState clears it before dispatching).
  const stage = d.stageName;
  let on = false;
  const meta = metaArgs.find((a) => a.key === name);
  if (meta?.value !== undefined) on = enabledForStage(stage, meta.value);
  for (const a of d.buildArgs) if (a.key === name && a.value !== undefined) on = enabledForStage(stage, a.value);
  return on;
}

/** The scan targets of `target` among the stages it is built from (`reachable`, itself included). */
export function sbomScanTargets(target: DispatchState, reachable: Iterable<DispatchState>, metaArgs: readonly ArgValue[], context: State | undefined): SBOMScanTargets {
  const extras = new Map<string, State>();
  let ignoreCache = target.ignoreCache;
  if (context !== undefined && enabled(target, SCAN_CONTEXT, metaArgs)) extras.set('context', context);
  for (const d of reachable) {
    if (d === target || !d.dispatched || !enabled(d, SCAN_STAGE, metaArgs)) continue;
    extras.set(d.stageName, d.state);
    if (d.ignoreCache) ignoreCache = true;
  }
  return { extras, ignoreCache };
}
