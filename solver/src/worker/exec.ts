import { CacheSharingOpt, MountType, NetMode, SecurityMode, type ExecOp, type Mount as LlbMount, type ProxyEnv } from '@kiln/llb-core';
import type { ExecMount, NetworkMode } from '@kiln/runtime';
import { SolverError } from '../errors.js';
import { ExecFailedError, type FailedExecMount, type FailedExecState, type WorkerOpContext } from '../llb/worker.js';
import type { WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { sessionOf } from './session.js';
import { checkExecPlatform, emulatedCommand } from './exec-platform.js';
import { foreignProgramError } from './exec-foreign.js';
import { emptySnapshot } from './sources.js';
import type { CacheMounts } from './cache-mounts.js';
import { rootPath } from './root-path.js';
import { dirSize, newSnapshotId, snapshotSize, withMounted } from './snapshots.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** A mount selector as a relative path inside the snapshot ('' for its root). */
function cleanSelector(sel: string | undefined): string {
  const parts = (sel ?? '').split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new SolverError('SOLVER_INVALID_DEFINITION', `mount selector ${JSON.stringify(sel)} leaves the input`);
  return parts.join('/');
}

/**
 * Refuses an exec that needs an entitlement the build was not granted (BuildKit's
 * ValidateEntitlements, which runs on the whole definition before anything is solved or looked up
 * in the cache, so a cached insecure step is refused too).
 */
export function validateExecEntitlements(deps: Pick<RuntimeWorkerDeps, 'allowInsecure' | 'allowNetworkHost'>, op: ExecOp): void {
  if (op.security === SecurityMode.INSECURE && deps.allowInsecure !== true) {
    throw new SolverError('SOLVER_UNSUPPORTED', 'security.insecure is not allowed', { hint: 'pass --allow security.insecure' });
  }
  if (op.network === NetMode.HOST && deps.allowNetworkHost !== true) {
    throw new SolverError('SOLVER_UNSUPPORTED', 'network.host is not allowed', { hint: 'pass --allow network.host' });
  }
}

interface Prepared {
  readonly mount: LlbMount;
  readonly active?: string;
}

/** A mount as a failed exec's state keeps it; `active`: the writable snapshot to commit for it. */
type KeptMount = FailedExecMount | { readonly kind: 'active'; readonly dest: string; readonly active: string };

const SHARING: Readonly<Record<number, 'shared' | 'private' | 'locked'>> = {
  [CacheSharingOpt.SHARED]: 'shared',
  [CacheSharingOpt.PRIVATE]: 'private',
  [CacheSharingOpt.LOCKED]: 'locked',
};

/**
 * Runs an ExecOp on the runtime: the root mount and every writable mount with an output get an
 * active snapshot on top of their input (committed afterwards, one ref per output index);
 * read-only inputs are mounted from their committed snapshots; cache mounts bind persistent
 * directories; tmpfs, secret and ssh mounts come from the runtime. A non-zero exit is an
 * ExecFailedError; every active snapshot is removed on failure.
 */
export async function runExec(
  deps: RuntimeWorkerDeps,
  cacheMounts: CacheMounts,
  op: ExecOp,
  inputs: readonly WorkerRef[],
  ctx: WorkerOpContext,
): Promise<WorkerRef[]> {
  const s = deps.snapshotter;
  const meta = op.meta ?? {};
  const args = meta.args ?? [];
  if (args.length === 0) throw new SolverError('SOLVER_INVALID_DEFINITION', 'exec has no command');
  validateExecEntitlements(deps, op);
  const emulation = checkExecPlatform(ctx.platform);
  const session = sessionOf(deps, ctx);
  const prepared: Prepared[] = [];
  const releases: Array<() => Promise<void>> = [];
  const actives: string[] = [];
  const mounts: ExecMount[] = [];
  const kept: KeptMount[] = [];
  let rootfs: readonly import('@kiln/runtime').Mount[] | undefined;
  let readonlyRoot = false;
  // The root's input: where a failed exec's program is looked at (see foreignProgramError).
  let rootInput: string | undefined;
  try {
    for (const m of op.mounts ?? []) {
      const dest = m.dest ?? '/';
      const type = m.mountType ?? MountType.BIND;
      const input = m.input ?? 0;
      if (type === MountType.CACHE) {
        const cacheId = m.cacheOpt?.id ?? dest;
        const from = input >= 0 ? inputs[input] : undefined;
        // A cache seeded `from` an input is keyed by its id and that input's snapshot, as BuildKit's
        // getRefCacheDir keys it by id and ref ID: a changed seed starts a new cache directory.
        const dirId = from === undefined ? cacheId : `${cacheId}:${from.snapshot}`;
        // `from`/`source`: a new cache directory starts as a copy of the input's subpath.
        const seed =
          from === undefined
            ? undefined
            : (dir: string): Promise<void> =>
                withMounted(s, from.snapshot, ctx.signal, async (path) => {
                  await execFileP('cp', ['-a', `${await rootPath(path, cleanSelector(m.selector))}/.`, `${dir}/`]);
                });
        const c = await cacheMounts.acquire(dirId, m.cacheOpt?.sharing ?? CacheSharingOpt.SHARED, ctx.signal, seed);
        releases.push(async () => {
          await c.release();
          const record = deps.recordUsage;
          if (record !== undefined) {
            const rec = { snapshot: `cachemount:${dirId}`, description: `cache mount ${cacheId}`, kind: 'exec.cachemount' as const };
            record(rec);
            // Measuring a big cache can take a while: do it off the build's critical path.
            const sized = deps.recordSize;
            const measured = dirSize(cacheMounts.dirOf(dirId))
              .then((size) => (sized === undefined ? record({ ...rec, size }) : sized({ snapshot: rec.snapshot, kind: rec.kind, size })))
              .catch(() => undefined);
            deps.background?.(measured);
          }
        });
        mounts.push({ kind: 'bind', target: dest, source: c.dir, readonly: m.readonly === true });
        kept.push({ kind: 'cache', dest, cacheId: dirId, sharing: SHARING[m.cacheOpt?.sharing ?? CacheSharingOpt.SHARED] ?? 'shared', readonly: m.readonly === true });
        prepared.push({ mount: m });
        continue;
      }
      if (type === MountType.TMPFS) {
        const size = m.tmpfsOpt?.size;
        const sized = size === undefined || size === 0n ? {} : { size: Number(size) };
        mounts.push({ kind: 'tmpfs', target: dest, ...sized });
        kept.push({ kind: 'tmpfs', dest, ...sized });
        prepared.push({ mount: m });
        continue;
      }
      if (type === MountType.SECRET) {
        const id = m.secretOpt?.id ?? '';
        const data = session.secret(id);
        if (data === undefined) {
          if (m.secretOpt?.optional === true) continue;
          throw new SolverError('SOLVER_INVALID_DEFINITION', `secret ${id} not found`, { hint: `pass --secret id=${id},src=FILE` });
        }
        const mode = m.secretOpt?.mode === undefined ? {} : { mode: m.secretOpt.mode };
        mounts.push({ kind: 'secret', target: dest, data, ...mode, ...(m.secretOpt?.uid === undefined ? {} : { uid: m.secretOpt.uid }), ...(m.secretOpt?.gid === undefined ? {} : { gid: m.secretOpt.gid }) });
        kept.push({ kind: 'secret', dest, secretId: id, ...mode });
        prepared.push({ mount: m });
        continue;
      }
      if (type === MountType.SSH) {
        const id = m.sshOpt?.id ?? 'default';
        if (session.sshSockets(id).length === 0) {
          if (m.sshOpt?.optional === true) continue;
          throw new SolverError('SOLVER_INVALID_DEFINITION', `no SSH key ${id} forwarded`, { hint: `pass --ssh ${id}` });
        }
        const mode = m.sshOpt?.mode === undefined ? {} : { mode: m.sshOpt.mode };
        // The agent is chosen per connection: the build that provided it may leave while the
        // step runs (for another build), or its agent die; the next attached build's is tried,
        // and a connection no attached build can serve is refused.
        const socket = (): readonly string[] => session.sshSockets(id);
        mounts.push({ kind: 'ssh', target: dest, socket, ...mode, ...(m.sshOpt?.uid === undefined ? {} : { uid: m.sshOpt.uid }), ...(m.sshOpt?.gid === undefined ? {} : { gid: m.sshOpt.gid }) });
        kept.push({ kind: 'ssh', dest, sshId: id, ...mode });
        prepared.push({ mount: m });
        continue;
      }
      // A bind of an input (or scratch).
      const parent = input >= 0 ? inputs[input]?.snapshot : await emptySnapshot(deps);
      if (parent === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', `mount ${dest} refers to missing input ${input}`);
      const writable = m.readonly !== true;
      if (dest === '/') rootInput = parent;
      const selector = cleanSelector(m.selector);
      if (selector !== '' && dest !== '/') {
        // A subpath of an input (RUN --mount=type=bind,source=…): mount the snapshot on the host
        // and bind the subdirectory; a writable one gets a throw-away snapshot (changes discarded).
        if (writable && (m.output ?? 0) >= 0) {
          throw new SolverError('SOLVER_UNSUPPORTED', `a writable mount of a subpath (${selector}) with an output is not supported`);
        }
        let host: string;
        if (writable) {
          const scratchpad = newSnapshotId('bind');
          await s.prepare(scratchpad, parent);
          actives.push(scratchpad);
          const mnt = await s.mount(scratchpad, ctx.signal);
          releases.push(() => mnt.release());
          host = mnt.path;
        } else {
          const mnt = await s.mount(parent, ctx.signal);
          releases.push(() => mnt.release());
          host = mnt.path;
        }
        // Symlinks in the selector resolve inside the snapshot, never to host paths.
        mounts.push({ kind: 'bind', target: dest, source: await rootPath(host, selector), readonly: !writable });
        // Its changes were thrown away with the scratch layer: a debugger sees the input again.
        kept.push({ kind: 'snapshot', dest, snapshot: parent, selector, readonly: !writable });
        prepared.push({ mount: { ...m, output: -1 } });
        continue;
      }
      if (writable) {
        const active = newSnapshotId('exec');
        await s.prepare(active, parent);
        actives.push(active);
        kept.push({ kind: 'active', dest, active });
        prepared.push({ mount: m, active });
        if (dest === '/') rootfs = await s.mounts(active);
        else mounts.push({ kind: 'snapshot', target: dest, mounts: await s.mounts(active), mode: (m.output ?? 0) >= 0 ? 'rw' : 'rw-discard' });
      } else {
        kept.push({ kind: 'snapshot', dest, snapshot: parent, selector: '', readonly: true });
        prepared.push({ mount: m });
        if (dest === '/') {
          rootfs = await s.mounts(parent);
          readonlyRoot = true;
        } else mounts.push({ kind: 'snapshot', target: dest, mounts: await s.mounts(parent), mode: 'ro' });
      }
    }
    if (rootfs === undefined) throw new SolverError('SOLVER_INVALID_DEFINITION', 'exec has no root mount');
    // The proxy build args (HTTP_PROXY…, kept out of the cache key and the image history) reach
    // the process in both cases, as BuildKit's exec op appends proxyEnvList(Meta.ProxyEnv).
    const processEnv = [...(meta.env ?? []), ...proxyEnvList(meta.proxyEnv)];
    // Secrets exposed as environment variables of this exec only (RUN --mount=type=secret,env=…).
    const env = [...processEnv];
    for (const se of op.secretenv ?? []) {
      const data = session.secret(se.id ?? '');
      if (data === undefined) {
        if (se.optional === true) continue;
        throw new SolverError('SOLVER_INVALID_DEFINITION', `secret ${se.id ?? ''} not found`, { hint: `pass --secret id=${se.id ?? ''},src=FILE` });
      }
      env.push(`${se.name ?? ''}=${Buffer.from(data).toString('utf8')}`);
    }
    const network: NetworkMode = op.network === NetMode.NONE ? 'none' : 'host';
    const security = op.security === SecurityMode.INSECURE ? 'insecure' : 'sandbox';
    const extraHosts = (meta.extraHosts ?? []).map((h) => ({ host: h.host ?? '', ip: h.ip ?? '' }));
    // Without a binfmt_misc handler, BuildKit's buildkit-qemu-<arch> from PATH runs the command.
    const emulated = emulatedCommand(emulation, args);
    // A program nothing here runs fails at exec (runc: exec format error): that is the error then.
    const foreign = async (cause: unknown): Promise<unknown> =>
      emulation.emulator === undefined ? ((await foreignProgramError(s, rootInput, { args, env: processEnv, cwd: meta.cwd, mounts: (op.mounts ?? []).map((m) => m.dest ?? '/') }, ctx.signal, cause)) ?? cause) : cause;
    const result = await deps.executor.run({
      rootfs,
      readonlyRootfs: readonlyRoot,
      process: { args: emulated.args, env, ...(meta.cwd === undefined ? {} : { cwd: meta.cwd }), ...(meta.user === undefined || meta.user === '' ? {} : { user: meta.user }) },
      mounts: [...mounts, ...emulated.mounts],
      network,
      security,
      ...(meta.hostname === undefined ? {} : { hostname: meta.hostname }),
      extraHosts,
      ...(meta.ulimit === undefined ? {} : { rlimits: meta.ulimit.map((u) => ({ name: u.name ?? '', soft: Number(u.soft ?? 0n), hard: Number(u.hard ?? 0n) })) }),
      ...(meta.cgroupParent === undefined || meta.cgroupParent === '' ? {} : { cgroupParent: meta.cgroupParent }),
      signal: ctx.signal,
      // The lines of each read at once: the step log cuts them apart only as far as it shows them.
      onOutputLines: (stream, data) => ctx.log(stream === 'stdout' ? 1 : 2, data),
      ...(ctx.prepared === undefined ? {} : { prepared: ctx.prepared }),
    }).catch(async (e: unknown) => {
      throw await foreign(e);
    });
    const valid = meta.validExitCodes ?? [0];
    if (!valid.includes(result.exitCode)) {
      // A shared step's state goes to a build still attached (the one whose worker made the op may
      // have left: its state would be released at once, and the build that stayed would get none).
      const onFailedExec = session.onFailedExec();
      if (onFailedExec === undefined) throw await foreign(new ExecFailedError(args.join(' '), result.exitCode));
      // Unmount before committing (the kept state must not hold this run's host mounts).
      for (const r of releases.splice(0).reverse()) await r().catch(() => undefined);
      const secretEnv = (op.secretenv ?? []).map((se) => ({ name: se.name ?? '', secretId: se.id ?? '', optional: se.optional === true }));
      const proc = { args, env: processEnv, secretEnv, cwd: meta.cwd ?? '/', user: meta.user ?? '' };
      const netMode = op.network === NetMode.NONE ? 'none' : op.network === NetMode.HOST ? 'host' : 'sandbox';
      const state = await keepFailedState(deps, kept, actives, { process: proc, ...(ctx.platform === undefined ? {} : { platform: ctx.platform }), network: netMode, security, ...(meta.hostname === undefined ? {} : { hostname: meta.hostname }), extraHosts });
      onFailedExec(state);
      // A foreign program's explanation keeps the state as its cause: a debug shell of the host's
      // programs (a host stage on a foreign image's files) still opens there.
      throw await foreign(new ExecFailedError(args.join(' '), result.exitCode, state));
    }
    const outputs: WorkerRef[] = [];
    for (const p of prepared) {
      const out = p.mount.output ?? 0;
      // Only bind mounts have outputs (BuildKit llbsolver PrepareMounts): secret and ssh mounts
      // are marshaled with output unset, which reads as 0 but means none.
      if (out < 0 || (p.mount.mountType ?? MountType.BIND) !== MountType.BIND) continue;
      if (p.active === undefined) {
        // A read-only mount with an output passes its input through.
        const inRef = inputs[p.mount.input ?? 0];
        if (inRef !== undefined) outputs[out] = inRef;
        continue;
      }
      const id = newSnapshotId('exec');
      await s.commit(id, p.active);
      actives.splice(actives.indexOf(p.active), 1);
      outputs[out] = { snapshot: id, size: await snapshotSize(s, id) };
    }
    return outputs;
  } finally {
    // Unmount first (host mounts of snapshots), then drop uncommitted snapshots.
    for (const r of releases.reverse()) await r().catch(() => undefined);
    for (const a of actives) await s.remove(a).catch(() => undefined);
  }
}

/**
 * Commits the writable mounts of a failed exec (taking them out of `actives`, which the caller
 * removes) and leases every snapshot its state names, for {@link FailedExecState}.
 */
async function keepFailedState(
  deps: RuntimeWorkerDeps,
  kept: readonly KeptMount[],
  actives: string[],
  run: Omit<FailedExecState, 'mounts' | 'release'>,
): Promise<FailedExecState> {
  const s = deps.snapshotter;
  const committed: string[] = [];
  const unlease: Array<() => void> = [];
  const mounts: FailedExecMount[] = [];
  const release = async (): Promise<void> => {
    for (const u of unlease.splice(0)) u();
    for (const id of committed.splice(0)) await s.remove(id).catch(() => undefined);
  };
  try {
    for (const k of kept) {
      let m: FailedExecMount;
      if (k.kind !== 'active') m = k;
      else {
        const id = newSnapshotId('failed');
        await s.commit(id, k.active);
        actives.splice(actives.indexOf(k.active), 1);
        committed.push(id);
        m = { kind: 'snapshot', dest: k.dest, snapshot: id, selector: '', readonly: false };
      }
      if (m.kind === 'snapshot' && deps.leaseSnapshot !== undefined) unlease.push(deps.leaseSnapshot(m.snapshot));
      mounts.push(m);
    }
  } catch (e) {
    await release();
    throw e;
  }
  let released: Promise<void> | undefined;
  return { ...run, mounts, release: () => (released ??= release()) };
}

/** BuildKit's proxyEnvList (solver/llbsolver/ops/exec.go): each set field as NAME=value and name=value. */
function proxyEnvList(p: ProxyEnv | undefined): string[] {
  if (p === undefined) return [];
  const out: string[] = [];
  const add = (name: string, v: string | undefined): void => {
    if (v !== undefined && v !== '') out.push(`${name}=${v}`, `${name.toLowerCase()}=${v}`);
  };
  add('HTTP_PROXY', p.httpProxy);
  add('HTTPS_PROXY', p.httpsProxy);
  add('FTP_PROXY', p.ftpProxy);
  add('NO_PROXY', p.noProxy);
  add('ALL_PROXY', p.allProxy);
  return out;
}
