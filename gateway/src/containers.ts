import { posix } from 'node:path';
import type { Container, ContainerMount, ContainerProcess, ContainerProcessRequest, NewContainerRequest, Ref } from '@kiln/llb-core';
import type { BackendContainerMount, SolvedRef } from './backend.js';
import { GatewayError } from './errors.js';

/** An absolute destination in one spelling: `/a/./b/` and `/a/b` are one place. */
function cleanDest(dest: string): string {
  const n = posix.normalize(dest);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

const MOUNT_TYPES: ReadonlySet<string> = new Set(['bind', 'cache', 'tmpfs', 'secret', 'ssh']);

/**
 * Checks a frontend's {@link NewContainerRequest} as BuildKit's gateway does before it makes the
 * container: exactly one mount at `/`, every destination absolute and used once, what each mount
 * type needs, and only refs `isOwnRef` accepts (those of this build). Throws KLN0620 / KLN0621.
 */
export function validateContainerRequest(request: NewContainerRequest, isOwnRef: (ref: Ref) => boolean): void {
  const bad = (message: string, hint: string): GatewayError => new GatewayError('KLN0620', `newContainer: ${message}`, { hint });
  const seen = new Set<string>();
  for (const m of request.mounts) {
    if (!m.dest.startsWith('/')) throw bad(`mount destination ${JSON.stringify(m.dest)} is not absolute`, 'give every mount an absolute dest, e.g. /src');
    const dest = cleanDest(m.dest);
    if (seen.has(dest)) throw bad(`two mounts at ${dest}`, 'give each mount its own dest');
    seen.add(dest);
    const type = m.type ?? 'bind';
    if (!MOUNT_TYPES.has(type)) throw bad(`unknown mount type ${JSON.stringify(type)} at ${dest}`, 'use one of bind, cache, tmpfs, secret, ssh');
    if (m.ref !== undefined && type !== 'bind') throw bad(`a ${type} mount at ${dest} cannot take a ref`, 'mount refs with type bind');
    if (m.selector !== undefined && m.selector !== '' && m.ref === undefined) throw bad(`mount ${dest} has a selector but no ref`, 'a selector picks a directory of the ref');
    if (type === 'secret' && (m.secretId ?? '') === '') throw bad(`secret mount ${dest} has no secretId`, 'name the build secret to mount (--secret id=…)');
    if (dest === '/' && type !== 'bind') throw bad(`the root mount must be a bind mount, not ${type}`, 'mount a ref (or nothing: an empty root) at /');
    if (m.ref !== undefined && !isOwnRef(m.ref)) {
      throw new GatewayError('KLN0621', `newContainer: the ref mounted at ${dest} is not a ref of this build`, {
        hint: 'mount refs this frontend got from solve or solveFrontend in this build',
      });
    }
  }
  if (!seen.has('/')) throw bad('no mount at /', 'mount the container root filesystem (a solved ref) at /');
}

/** The mounts with their refs solved, for {@link SolveBackend.newContainer}. */
export async function solveContainerMounts(mounts: readonly ContainerMount[], solve: (ref: Ref) => Promise<SolvedRef>): Promise<BackendContainerMount[]> {
  return Promise.all(
    mounts.map(async ({ ref, ...rest }) => ({ ...rest, dest: cleanDest(rest.dest), ...(ref === undefined ? {} : { ref: await solve(ref) }) })),
  );
}

/**
 * The containers one build's frontends have open: each is released when its own request's signal
 * aborts, when the build's signal aborts, and at the end of the build ({@link releaseAll}), as
 * BuildKit's gateway releases a frontend's containers when its build ends.
 */
export class OpenContainers {
  readonly #open = new Set<TrackedContainer>();
  #closed = false;

  /** Whether the build has ended: no container may open any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Tracks `inner`; released on `signals` (the request's, the build's) or at {@link releaseAll}. */
  track(inner: Container, signals: readonly (AbortSignal | undefined)[]): Container {
    const c = new TrackedContainer(inner, () => this.#open.delete(c));
    this.#open.add(c);
    for (const s of signals) {
      if (s === undefined) continue;
      if (s.aborted) void c.release();
      else s.addEventListener('abort', () => void c.release(), { once: true, signal: c.done });
    }
    return c;
  }

  /** Releases every open container; later requests fail. */
  async releaseAll(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#open].map((c) => c.release().catch(() => undefined)));
  }
}

/** A backend's container as a frontend holds it: no start after release, released once, then forgotten. */
class TrackedContainer implements Container {
  readonly #inner: Container;
  readonly #forget: () => void;
  readonly #done = new AbortController();
  #released: Promise<void> | undefined;

  constructor(inner: Container, forget: () => void) {
    this.#inner = inner;
    this.#forget = forget;
  }

  /** Aborted at release: removes the abort listeners this container added. */
  get done(): AbortSignal {
    return this.#done.signal;
  }

  async start(request: ContainerProcessRequest): Promise<ContainerProcess> {
    if (this.#released !== undefined) {
      throw new GatewayError('KLN0623', 'the container was released', { hint: 'start processes before release() or before the build ends; make a new container' });
    }
    if (request.args.length === 0) throw new GatewayError('KLN0620', 'a container process needs args', { hint: 'give the command to run, e.g. ["sh", "-c", "…"]' });
    return this.#inner.start(request);
  }

  release(): Promise<void> {
    this.#released ??= (async () => {
      try {
        await this.#inner.release();
      } finally {
        this.#done.abort();
        this.#forget();
      }
    })();
    return this.#released;
  }
}
