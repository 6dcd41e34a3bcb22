import { usernsState, type UsernsState } from './state.js';

/** Rootless kiln's codes: KLN0890 what its namespace cannot do; KLN0891 a `kiln daemon` socket directory it cannot vouch for. */
export type RootlessErrorCode = 'KLN0890' | 'KLN0891';

/** What rootless kiln cannot do, and what to change (KLN0890, KLN0891). */
export class RootlessError extends Error {
  override readonly name = 'RootlessError';
  readonly code: RootlessErrorCode;
  readonly hint: string | undefined;

  constructor(message: string, opts: { hint?: string; cause?: unknown; code?: RootlessErrorCode } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.hint = opts.hint;
    this.code = opts.code ?? 'KLN0890';
  }
}

/** How a user gets subordinate ids (shadow's usermod) and the tools that map them (Debian's uidmap). */
export function subidHint(user: string): string {
  return `give ${user} subordinate ids and install newuidmap/newgidmap, then run kiln again: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user} && sudo apt-get install uidmap`;
}

/**
 * The path inside the container's filesystem (`/home/app`) of a path under a snapshot
 * (`<root>/snapshots/<id>/fs/…`) or a file op's mount (`<root>/mounts/<id>/…`), else the path.
 */
export function imagePath(path: string): string {
  return /\/(?:snapshots\/[^/]+\/fs|mounts\/[^/]+)(\/.*)$/.exec(path)?.[1] ?? path;
}

/**
 * A chown that failed in kiln's user namespace because the owner has no id there (the kernel's
 * EINVAL for an unmapped uid/gid): the file, why and what to do. Undefined for any other error.
 * `state` defaults to this process's namespace.
 */
export function unmappedOwnerError(err: unknown, state: UsernsState | undefined = usernsState()): RootlessError | undefined {
  if (state === undefined) return undefined;
  // The chown's own error, or the one a file op wrapped ("copy to /x: EINVAL").
  let e: NodeJS.ErrnoException | undefined;
  for (let c: unknown = err, depth = 0; c instanceof Error && depth < 4; c = c.cause, depth++) {
    const errno = c as NodeJS.ErrnoException;
    if (errno.code === 'EINVAL' && /chown$/.test(errno.syscall ?? '')) e = errno;
  }
  if (e === undefined) return undefined;
  const file = e.path === undefined ? 'a file' : imagePath(e.path);
  if (state.mode === 'single') {
    return new RootlessError(`cannot make ${file} owned by a user other than root: rootless kiln has only uid/gid 0 (${state.user}) in its user namespace`, {
      hint: subidHint(state.user),
      cause: err,
    });
  }
  return new RootlessError(`cannot set the owner of ${file}: it is outside the ${state.ids - 1} subordinate ids of ${state.user} that kiln's user namespace maps (from /etc/subuid and /etc/subgid)`, {
    hint: `give ${state.user} a larger range (65536 ids cover the usual images): sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${state.user}`,
    cause: err,
  });
}

/** Runs `fn`, turning an unmapped owner's chown failure into its {@link RootlessError}. */
export async function explainUnmappedOwner<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw unmappedOwnerError(e) ?? e;
  }
}
