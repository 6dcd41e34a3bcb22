import { FrontendRegistry, DOCKERFILE_FRONTEND } from '@kiln/gateway';
import { createDockerfileFrontend } from '@kiln/dockerfile';

/** What the in-process frontends need to know about this build beyond the client options. */
export interface FrontendDefaults {
  /** `.dockerignore` / `<Dockerfile>.dockerignore` patterns of the build context. */
  readonly excludePatterns?: readonly string[];
}

/**
 * The frontends this kiln serves in process: the Dockerfile frontend under BuildKit's name
 * `dockerfile.v0` and `kiln/dockerfile` (the registry aliases the `docker/dockerfile[:…]`
 * syntax images to it, so `# syntax=docker/dockerfile:1` works offline).
 */
export function createFrontendRegistry(defaults: FrontendDefaults = {}): FrontendRegistry {
  const dockerfile = createDockerfileFrontend({
    convert: { ...(defaults.excludePatterns === undefined || defaults.excludePatterns.length === 0 ? {} : { excludePatterns: defaults.excludePatterns }) },
  });
  return new FrontendRegistry().register([DOCKERFILE_FRONTEND, 'kiln/dockerfile'], dockerfile);
}
