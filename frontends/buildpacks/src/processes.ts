/**
 * The image's processes from the buildpacks' launch.toml files, as lifecycle's builder merges
 * them (phase/builder.go orderedProcesses): a later process of the same type replaces the
 * earlier one and moves to the end; the default is the last process marked default, and a
 * later process of that type not marked default unsets it (lifecycle warns "redefining the
 * following default process type with a process not marked as default").
 */
import type { ProcessType } from './descriptors.js';

/** The merged processes and the buildpacks' default type. */
export interface MergedProcesses {
  readonly processes: ReadonlyMap<string, ProcessType>;
  readonly defaultType?: string;
  /** Default types a later non-default process replaced. */
  readonly replacedDefaults: readonly string[];
}

/** Merges the processes of each buildpack, in group order. */
export function mergeProcesses(perBuildpack: readonly (readonly ProcessType[])[]): MergedProcesses {
  const processes = new Map<string, ProcessType>();
  let defaultType: string | undefined;
  const replacedDefaults: string[] = [];
  for (const list of perBuildpack) {
    for (const p of list) {
      processes.delete(p.type);
      processes.set(p.type, p);
      if (p.default) defaultType = p.type;
      else if (p.type === defaultType) {
        defaultType = undefined;
        replacedDefaults.push(p.type);
      }
    }
  }
  return { processes, replacedDefaults, ...(defaultType === undefined ? {} : { defaultType }) };
}
