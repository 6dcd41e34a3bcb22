/**
 * `RUN --mount` → exec mounts, secrets and SSH sockets (BuildKit's dispatchRunMounts,
 * dispatchSecret, dispatchSSH, setCacheUIDGID).
 */
import { Caps, mkdir, scratch } from '@kiln/llb-core';
import type { MountSpec as LlbMount, SecretSpec, SSHSpec, State } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import { cleanPath } from '../instructions/mount.js';
import type { MountSpec } from '../instructions/mount.js';
import type { RunCommand } from '../instructions/commands.js';
import type { DispatchOptions, DispatchState } from './dispatch-state.js';
import { InternalName } from './names.js';

/** The run options contributed by `--mount`s. */
export interface RunMounts {
  readonly mounts: LlbMount[];
  readonly secrets: SecretSpec[];
  readonly ssh: SSHSpec[];
}

/** Go `path.Join("/", p)`. */
export function rootJoin(p: string): string {
  return cleanPath(`/${p}`);
}

function basename(p: string): string {
  const c = cleanPath(p);
  if (c === '/') return '/';
  const i = c.lastIndexOf('/');
  return i < 0 ? c : c.slice(i + 1);
}

function dispatchSecret(m: MountSpec): SecretSpec {
  let id = m.cacheId;
  if (m.source !== '') id = m.source;
  if (id === '') {
    if (m.target === '' && m.env === undefined) {
      throw new KilnError('KLN0414', 'one of source, target required', { hint: 'add id=NAME (the secret is then at /run/secrets/NAME)' });
    }
    id = m.target !== '' ? basename(m.target) : (m.env ?? '');
  }
  // A secret with only env= is not mounted as a file (today's BuildKit).
  const target = m.target !== '' ? m.target : m.env !== undefined ? undefined : `/run/secrets/${basename(id)}`;
  const fileOpt = m.uid !== undefined || m.gid !== undefined || m.mode !== undefined;
  return {
    id,
    ...(target === undefined ? {} : { target }),
    ...(m.env !== undefined ? { env: m.env } : {}),
    ...(m.required ? {} : { optional: true }),
    ...(fileOpt ? { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o400 } : {}),
  };
}

function dispatchSSH(m: MountSpec): SSHSpec {
  if (m.source !== '') throw new KilnError('KLN0413', 'ssh does not support source', { hint: 'use id=NAME to pick the agent socket' });
  const fileOpt = m.uid !== undefined || m.gid !== undefined || m.mode !== undefined;
  return {
    id: m.cacheId,
    ...(m.target !== '' ? { target: m.target } : {}),
    ...(m.required ? {} : { optional: true }),
    ...(fileOpt ? { uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 } : {}),
  };
}

function setCacheUIDGID(m: MountSpec, st: State): State {
  return st.file(mkdir('/cache', m.mode ?? 0o755, { chown: { user: m.uid ?? 0, group: m.gid ?? 0 } }), {
    customName: InternalName.cacheMountPermissions,
  });
}

/**
 * The mounts of a RUN whose `--mount`s are already expanded. `sources[i]` is the stage the i-th
 * mount reads from (undefined: the build context). Records context paths read by bind mounts.
 */
export function dispatchRunMounts(d: DispatchState, c: RunCommand, sources: readonly (DispatchState | undefined)[], opt: DispatchOptions): RunMounts {
  const out: RunMounts = { mounts: [], secrets: [], ssh: [] };
  c.mounts.forEach((mount, i) => {
    const from = mount.from === '' && mount.type === 'cache' ? 'scratch' : mount.from;
    let st = opt.buildContext;
    if (from !== '') {
      const src = sources[i];
      if (src === undefined || !src.dispatched) {
        throw new KilnError('KLN0501', `cannot mount from stage ${JSON.stringify(from)} to ${JSON.stringify(mount.target)}, stage needs to be defined before current command`);
      }
      st = src.state;
    }
    if (mount.type === 'secret') {
      out.secrets.push(dispatchSecret(mount));
      return;
    }
    if (mount.type === 'ssh') {
      out.ssh.push(dispatchSSH(mount));
      return;
    }
    let tmpfs: LlbMount['tmpfs'];
    let cache: LlbMount['cache'];
    if (mount.type === 'tmpfs') {
      st = scratch();
      tmpfs = mount.sizeLimit > 0 ? { size: mount.sizeLimit } : true;
    }
    if (mount.type === 'cache') {
      const id = mount.cacheId !== '' ? mount.cacheId : cleanPath(mount.target);
      cache = { id: `${opt.cacheIdNamespace}/${id}`, sharing: mount.cacheSharing === '' ? 'shared' : mount.cacheSharing };
    }
    let target = mount.target;
    if (!cleanPath(target).startsWith('/')) target = cleanPath(`/${d.state.getDir()}/${target}`);
    if (target === '/') {
      // BuildKit's message; without target= the "/" is the WORKDIR the empty target was joined to.
      throw new KilnError('KLN0414', `invalid mount target ${JSON.stringify(target)}`, {
        hint: mount.target === '' ? `this ${mount.type} mount has no target=: add target=/PATH (where the RUN sees it)` : 'mount somewhere other than /',
      });
    }
    let sourcePath: string | undefined;
    const src = rootJoin(mount.source);
    if (src !== '/') sourcePath = src;
    else if (mount.type === 'cache' && (mount.uid !== undefined || mount.gid !== undefined || mount.mode !== undefined)) {
      st = setCacheUIDGID(mount, st);
      sourcePath = '/cache';
    }
    const spec: LlbMount = {
      target,
      source: st,
      ...(sourcePath === undefined ? {} : { sourcePath }),
      ...(mount.readOnly ? { readonly: true } : mount.type === 'bind' && opt.caps.has(Caps.execMountBindReadWriteNoOutput) ? { forceNoOutput: true } : {}),
      ...(cache === undefined ? {} : { cache }),
      ...(tmpfs === undefined ? {} : { tmpfs }),
    };
    out.mounts.push(spec);
    if (from === '') d.ctxPaths.add(rootJoin(mount.source));
  });
  return out;
}
