import { randomBytes } from 'node:crypto';
import { CacheSharingOpt, type Container, type ContainerProcess, type ContainerProcessRequest } from '@kiln/llb-core';
import { GatewayError, type BackendContainerMount, type BackendContainerRequest } from '@kiln/gateway';
import { CacheMounts, checkExecPlatform, emulatedCommand, foreignProgramError, type ExecEmulation } from '@kiln/solver';
import { resolveInRoot, type ExecContainer, type ExecMount, type Mount, type Snapshotter } from '@kiln/runtime';
import type { KilnEngine } from './engine.js';
import { SnapshotRef } from './snapshot-ref.js';

/** What a build grants its frontend's containers: the session's secrets and agents, and `--allow`. */
export interface ContainerSession {
  readonly secrets?: Readonly<Record<string, Uint8Array>>;
  readonly ssh?: Readonly<Record<string, string>>;
  readonly allowInsecure?: boolean;
  readonly allowNetworkHost?: boolean;
  /** The empty committed snapshot (a root without a ref, a bind of nothing). */
  readonly emptySnapshot: () => Promise<string>;
}

type Undo = () => Promise<void>;

const SHARING = { shared: CacheSharingOpt.SHARED, private: CacheSharingOpt.PRIVATE, locked: CacheSharingOpt.LOCKED } as const;

function refused(message: string, hint: string): GatewayError {
  return new GatewayError('KLN0620', `newContainer: ${message}`, { hint });
}

/**
 * Makes a frontend's container (BuildKit's gateway NewContainer) on the engine's runtime. Mounts
 * as {@link ContainerMount} says: a ref read-only, or writable on an active snapshot that is
 * removed at release (the ref's snapshot never changes); a `selector` binds a directory of the
 * ref (resolved inside it); `bind` without a ref is an empty snapshot; `cache` is the cache
 * mount `RUN --mount=type=cache,id=…` of this root uses (same directory, same sharing modes);
 * `tmpfs`; `secret` and `ssh` from the session. The refs' snapshots stay leased by their
 * SnapshotRefs (the build's) while the container lives; everything made here goes at release.
 */
export async function newEngineContainer(engine: KilnEngine, session: ContainerSession, request: BackendContainerRequest): Promise<Container> {
  if (request.network === 'host' && session.allowNetworkHost !== true) {
    throw refused('network host is not allowed', 'pass --allow network.host');
  }
  const makeContainer = engine.executor.newContainer;
  if (makeContainer === undefined) throw refused('the executor cannot make containers', 'use the runc executor');
  // Its processes are the platform's programs: run through an emulator as a RUN's (or refused, see start).
  const emulation = checkExecPlatform(request.platform, { subject: 'this container' });
  const undo: Undo[] = [];
  const s = engine.snapshotter;
  const cacheMounts = new CacheMounts(engine.root);
  const signal = request.signal;
  const active = async (parent: string): Promise<string> => {
    const id = `container-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    await s.prepare(id, parent);
    undo.push(() => s.remove(id));
    return id;
  };
  const snapshotOf = async (m: BackendContainerMount): Promise<string> => {
    if (m.ref === undefined) return session.emptySnapshot();
    if (!(m.ref instanceof SnapshotRef)) throw refused(`the ref at ${m.dest} is not a result of this build`, 'mount refs from solve');
    return m.ref.snapshot;
  };
  try {
    let rootfs: readonly Mount[] | undefined;
    let readonlyRootfs = false;
    let root: string | undefined;
    const mounts: ExecMount[] = [];
    for (const m of request.mounts) {
      const type = m.type ?? 'bind';
      const target = m.dest;
      switch (type) {
        case 'bind': {
          const writable = m.readonly !== true;
          const parent = await snapshotOf(m);
          const selector = m.selector ?? '';
          if (target === '/') {
            if (selector !== '' && selector !== '/') throw refused('the root mount cannot have a selector', 'mount the ref itself at /, its sub-directory elsewhere');
            root = parent;
            rootfs = await s.mounts(writable ? await active(parent) : parent);
            readonlyRootfs = !writable;
          } else if (selector !== '' && selector !== '/') {
            // A directory of the ref: the snapshot mounted on the host, its sub-path bound.
            const mounted = await s.mount(writable ? await active(parent) : parent, signal);
            undo.push(() => mounted.release());
            mounts.push({ kind: 'bind', target, source: await resolveInRoot(mounted.path, selector), readonly: !writable });
          } else {
            mounts.push({ kind: 'snapshot', target, mounts: await s.mounts(parent), mode: writable ? 'rw-discard' : 'ro' });
          }
          break;
        }
        case 'cache': {
          const id = m.cacheId ?? target;
          const c = await cacheMounts.acquire(id, SHARING[m.cacheSharing ?? 'shared'], signal);
          undo.push(() => c.release());
          // `kiln du` lists it and `kiln prune` may drop it, as a RUN's cache mount.
          engine.cache.upsertRecord({ snapshot: `cachemount:${id}`, description: `cache mount ${id}`, kind: 'exec.cachemount' });
          mounts.push({ kind: 'bind', target, source: c.dir, readonly: m.readonly === true });
          break;
        }
        case 'tmpfs':
          mounts.push({ kind: 'tmpfs', target });
          break;
        case 'secret': {
          const id = m.secretId ?? '';
          const data = session.secrets?.[id];
          if (data === undefined) throw refused(`secret ${id} not found`, `pass --secret id=${id},src=FILE`);
          mounts.push({ kind: 'secret', target, data, ...(m.mode === undefined ? {} : { mode: m.mode }) });
          break;
        }
        case 'ssh': {
          const id = m.sshId ?? 'default';
          const socket = session.ssh?.[id];
          if (socket === undefined) throw refused(`no SSH agent ${id} forwarded`, `pass --ssh ${id}`);
          mounts.push({ kind: 'ssh', target, socket, ...(m.mode === undefined ? {} : { mode: m.mode }) });
          break;
        }
      }
    }
    if (rootfs === undefined) throw refused('no mount at /', 'mount a ref at /');
    signal?.throwIfAborted();
    const inner = await makeContainer.call(engine.executor, {
      rootfs,
      readonlyRootfs,
      mounts: [...mounts, ...emulatedCommand(emulation, []).mounts],
      // sandbox: RUN's default, the host's namespace here (see the solver's exec).
      network: request.network === 'none' ? 'none' : 'host',
      ...(request.hostname === undefined ? {} : { hostname: request.hostname }),
      ...(request.extraHosts === undefined ? {} : { extraHosts: request.extraHosts }),
    });
    const rootOf = { snapshotter: s, snapshot: root, mounts: request.mounts.map((m) => m.dest) };
    return new EngineContainer(inner, undo, session, emulation, rootOf);
  } catch (e) {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw e;
  }
}

/** The runtime's container plus the snapshots, host mounts and cache mounts it uses. */
class EngineContainer implements Container {
  readonly #inner: ExecContainer;
  readonly #undo: Undo[];
  readonly #session: ContainerSession;
  readonly #emulation: ExecEmulation;
  readonly #root: { readonly snapshotter: Snapshotter; readonly snapshot: string | undefined; readonly mounts: readonly string[] };
  #released: Promise<void> | undefined;

  constructor(inner: ExecContainer, undo: Undo[], session: ContainerSession, emulation: ExecEmulation, root: { readonly snapshotter: Snapshotter; readonly snapshot: string | undefined; readonly mounts: readonly string[] }) {
    this.#inner = inner;
    this.#undo = undo;
    this.#session = session;
    this.#emulation = emulation;
    this.#root = root;
  }

  async start(r: ContainerProcessRequest): Promise<ContainerProcess> {
    if (r.security === 'insecure' && this.#session.allowInsecure !== true) {
      throw refused('security insecure is not allowed', 'pass --allow security.insecure');
    }
    // Secret env values come from the session here, as a secret mount's do (never from the caller).
    const env = [...(r.env ?? [])];
    for (const se of r.secretEnv ?? []) {
      const data = this.#session.secrets?.[se.id];
      if (data === undefined) {
        if (se.optional === true) continue;
        throw refused(`secret ${se.id} (environment variable ${se.name}) not found`, `pass --secret id=${se.id},src=FILE`);
      }
      env.push(`${se.name}=${Buffer.from(data).toString('utf8')}`);
    }
    // A program nothing here runs is refused before it starts (runc would say exec format error);
    // one the root's own image holds for the host runs, whatever the container's platform says.
    if (this.#emulation.emulator === undefined) {
      const foreign = await foreignProgramError(this.#root.snapshotter, this.#root.snapshot, { args: r.args, env, cwd: r.cwd, mounts: this.#root.mounts }, undefined, undefined, { subject: 'this container' });
      if (foreign !== undefined) throw foreign;
    }
    // The runtime's process spec is the request's shape (args, env, cwd, user, streams, tty, security).
    const { secretEnv: _resolved, ...rest } = r;
    const p = await this.#inner.start({ ...rest, args: emulatedCommand(this.#emulation, r.args).args, env });
    return {
      wait: () => p.wait(),
      signal: (name) => p.signal(name),
      resize: (size) => p.resize(size),
    };
  }

  release(): Promise<void> {
    this.#released ??= (async () => {
      try {
        await this.#inner.release();
      } finally {
        // In reverse order of making: a host mount before the active snapshot under it.
        for (const u of this.#undo.splice(0).reverse()) await u().catch(() => undefined);
      }
    })();
    return this.#released;
  }
}
