import { MountType, type ExecOp } from '@kiln/llb-core';
import type { RuntimeWorker, Worker } from '@kiln/solver';

/**
 * The worker the engine hands the solver: the runtime worker with exec ops normalised first.
 * BuildKit's client marshals secret and ssh mounts without `input`/`output` (both read as 0), and
 * its exec op gives outputs only to bind mounts (llbsolver/mounts PrepareMounts); the runtime
 * worker reads `output: 0` on such a mount as "pass input 0 through", which replaced the RUN's
 * own root output. Marking them input/output -1 (pb.Empty, pb.SkipOutput) says what BuildKit means.
 * The solver computes cache keys from the original op, so keys are unchanged.
 */
export function normalizingWorker(inner: RuntimeWorker): Worker {
  return {
    sourceCacheKey: (op, ctx) => inner.sourceCacheKey(op, ctx),
    source: (op, ctx) => inner.source(op, ctx),
    validateExec: (op) => inner.validateExec(op),
    exec: (op, inputs, ctx) => inner.exec(normalizeExec(op), inputs, ctx),
    file: (op, inputs, ctx) => inner.file(op, inputs, ctx),
    merge: (op, inputs, ctx) => inner.merge(op, inputs, ctx),
    diff: (op, inputs, ctx) => inner.diff(op, inputs, ctx),
    checksum: (ref, path, opts, signal) => inner.checksum(ref, path, opts, signal),
  };
}

function normalizeExec(op: ExecOp): ExecOp {
  const mounts = op.mounts;
  if (mounts === undefined || !mounts.some((m) => m.mountType === MountType.SECRET || m.mountType === MountType.SSH)) return op;
  return {
    ...op,
    mounts: mounts.map((m) => (m.mountType === MountType.SECRET || m.mountType === MountType.SSH ? { ...m, input: -1, output: -1 } : m)),
  };
}
