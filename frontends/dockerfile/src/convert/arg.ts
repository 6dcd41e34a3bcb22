/**
 * ARG inside a stage (BuildKit v0.11.6 dispatchArg): a build arg overrides the default; a bare
 * ARG takes the meta ARG of the same name; an ARG with a value joins the exec env (except the
 * SBOM switches BUILDKIT_SBOM_SCAN_CONTEXT/STAGE, BuildKit's nonEnvArgs).
 */
import type { ArgCommand } from '../instructions/commands.js';
import type { ArgValue, DispatchOptions, DispatchState } from './dispatch-state.js';
import { commitToHistory } from './image.js';
import { NON_ENV_ARGS } from './names.js';

export function dispatchArg(d: DispatchState, c: ArgCommand, opt: DispatchOptions): void {
  const commitStrs: string[] = [];
  for (const arg of c.args) {
    let value = opt.buildArgValues.has(arg.key) ? opt.buildArgValues.get(arg.key) : arg.value;
    commitStrs.push(arg.value === undefined ? arg.key : `${arg.key}=${arg.value}`);
    if (value === undefined) {
      for (const ma of opt.metaArgs) if (ma.key === arg.key) value = ma.value;
    }
    if (value !== undefined && !NON_ENV_ARGS.has(arg.key)) d.state = d.state.addEnv(arg.key, value);
    const buildArg: ArgValue = { key: arg.key, value };
    d.buildArgs.push(buildArg);
  }
  commitToHistory(d.image, `ARG ${commitStrs.join(' ')}`, false, false);
}
