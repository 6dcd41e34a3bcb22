import { FrontendRegistry, DOCKERFILE_FRONTEND } from '@kiln/gateway';
import { createDockerfileFrontend } from '@kiln/dockerfile';
import { createTsFrontend } from '@kiln/ts-dsl';
import { BUILDPACKS_FRONTEND, createBuildpacksFrontend } from '@kiln/buildpacks';

/** The TypeScript DSL frontend's name. */
export const TS_FRONTEND = 'kiln/ts';

/** What the in-process frontends need to know about this build beyond the client options. */
export interface FrontendDefaults {
  /** `.dockerignore` / `<Dockerfile>.dockerignore` patterns of the build context. */
  readonly excludePatterns?: readonly string[];
}

/**
 * The frontends this kiln serves in process: the Dockerfile frontend under BuildKit's name
 * `dockerfile.v0` and `kiln/dockerfile` (the registry aliases the `docker/dockerfile[:…]`
 * syntax images to it, so `# syntax=docker/dockerfile:1` works offline), and the TypeScript DSL
 * as `kiln/ts` (`// syntax=kiln/ts`, `--frontend kiln/ts`, or a `.ts` build file), and Cloud Native
 * Buildpacks as `kiln/buildpacks` (`# syntax=kiln/buildpacks` atop project.toml).
 */
export function createFrontendRegistry(defaults: FrontendDefaults = {}): FrontendRegistry {
  const dockerfile = createDockerfileFrontend({
    convert: { ...(defaults.excludePatterns === undefined || defaults.excludePatterns.length === 0 ? {} : { excludePatterns: defaults.excludePatterns }) },
  });
  return new FrontendRegistry().register([DOCKERFILE_FRONTEND, 'kiln/dockerfile'], dockerfile).register(TS_FRONTEND, createTsFrontend()).register(BUILDPACKS_FRONTEND, createBuildpacksFrontend());
}
