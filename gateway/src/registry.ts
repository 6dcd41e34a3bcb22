import type { Frontend } from '@kiln/llb-core';
import { GatewayError } from './errors.js';

/** The name BuildKit gives its built-in Dockerfile frontend. */
export const DOCKERFILE_FRONTEND = 'dockerfile.v0';

/**
 * Frontends by name, with BuildKit's aliases. Offline, the Dockerfile images
 * (`docker/dockerfile`, `docker/dockerfile:1.x`, `docker.io/docker/dockerfile:…`) map to the
 * built-in frontend instead of being pulled: kiln speaks today's syntax natively.
 */
export class FrontendRegistry {
  readonly #frontends = new Map<string, Frontend>();

  /** Registers a frontend under one or more names; later registrations win. */
  register(names: string | readonly string[], frontend: Frontend): this {
    for (const name of typeof names === 'string' ? [names] : names) this.#frontends.set(name, frontend);
    return this;
  }

  /** The names registered, sorted (for help texts and errors). */
  names(): readonly string[] {
    return [...this.#frontends.keys()].sort();
  }

  /** The frontend registered for a `--frontend` value or a `# syntax=` reference, if any. */
  get(ref: string): Frontend | undefined {
    return this.#frontends.get(canonicalFrontendName(ref)) ?? this.#frontends.get(ref);
  }

  /**
   * Finds the frontend for a `--frontend` value or a `# syntax=` reference; throws KLN0601 when
   * none is registered (the {@link Gateway} runs other names as frontend images when its backend
   * can, see `gateway.v0`).
   */
  resolve(ref: string): Frontend {
    const frontend = this.get(ref);
    if (frontend === undefined) {
      throw new GatewayError('KLN0601', `unknown frontend "${ref}"`, {
        hint: `this build runs built-in frontends only (its backend cannot run frontend images); use one of: ${this.names().join(', ')}`,
      });
    }
    return frontend;
  }
}

/**
 * Reduces a frontend reference to the name it is registered under: strips a
 * `docker.io/` registry, a digest and the tag of the `docker/dockerfile` family.
 */
export function canonicalFrontendName(ref: string): string {
  let name = ref.trim();
  const at = name.indexOf('@');
  if (at >= 0) name = name.slice(0, at);
  for (const prefix of ['docker.io/', 'index.docker.io/', 'registry-1.docker.io/']) {
    if (name.startsWith(prefix)) name = name.slice(prefix.length);
  }
  const colon = name.lastIndexOf(':');
  const repo = colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
  if (repo === 'docker/dockerfile' || repo === 'docker/dockerfile-upstream') return DOCKERFILE_FRONTEND;
  return name;
}
