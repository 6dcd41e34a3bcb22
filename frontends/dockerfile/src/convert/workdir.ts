/**
 * WORKDIR (BuildKit dispatchWorkdir): normalize against the current directory, set it on the
 * state and the image, and (for the instruction, not the inherited config) create it with a
 * mkdir file op owned by the current USER.
 */
import { mkdir } from '@kiln/llb-core';
import type { WorkdirCommand } from '../instructions/commands.js';
import { cleanPath } from '../instructions/mount.js';
import { envOf, prefixCommand, processCmdEnv, uppercaseCmd, type DispatchOptions, type DispatchState } from './dispatch-state.js';
import { commitToHistory } from './image.js';

/** BuildKit's system.NormalizeWorkdir for Linux. */
export function normalizeWorkdir(current: string, wd: string): string {
  if (wd.startsWith('/')) return cleanPath(wd);
  return cleanPath(`/${current === '' ? '/' : current}/${wd}`);
}

/** WORKDIR; with `opt` undefined it is the base image's WorkingDir (no op, no history). */
export function dispatchWorkdir(d: DispatchState, c: Pick<WorkdirCommand, 'path'> & Partial<WorkdirCommand>, opt?: DispatchOptions): void {
  const wd = normalizeWorkdir(d.image.config.WorkingDir ?? '', c.path);
  d.image.config.WorkingDir = wd;
  d.state = d.state.dir(wd);
  if (opt === undefined) return;
  let withLayer = false;
  if (wd !== '/') {
    const user = d.image.config.User;
    const platform = d.platform ?? opt.targetPlatform;
    const env = envOf(d.state);
    const name = prefixCommand(d, uppercaseCmd(processCmdEnv(opt.shlex, c.code ?? `WORKDIR ${c.path}`, env)), opt.multiPlatform, platform, env);
    d.state = d.state.file(mkdir(wd, 0o755, { parents: true, ...(user ? { chown: user } : {}) }), { customName: name, platform });
    if (c.location !== undefined) opt.location(name, [c.location]);
    withLayer = true;
  }
  commitToHistory(d.image, `WORKDIR ${wd}`, withLayer, false);
}
