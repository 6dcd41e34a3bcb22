import type { OpContext, SessionGroup } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';

/**
 * Where an op takes secrets and ssh agents from: the builds attached to its vertex when the
 * scheduler runs it (a shared step outlives the build whose worker made it), else this worker's
 * own build (an op run directly).
 */
export function sessionOf(deps: Pick<RuntimeWorkerDeps, 'secrets' | 'ssh' | 'onFailedExec'>, ctx: Pick<OpContext, 'group'>): SessionGroup {
  return (
    ctx.group ?? {
      secret: (id) => deps.secrets?.[id],
      sshSockets: (id) => {
        const s = deps.ssh?.[id];
        return s === undefined ? [] : [s];
      },
      onFailedExec: () => deps.onFailedExec,
    }
  );
}
