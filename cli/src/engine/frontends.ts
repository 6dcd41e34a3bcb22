import { FrontendRegistry, DOCKERFILE_FRONTEND } from '@kiln/gateway';
import { createDockerfileFrontend, isRemoteContext, redactUrl } from '@kiln/dockerfile';
import type { Frontend } from '@kiln/llb-core';
import { EngineError } from './errors.js';
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
  return new FrontendRegistry()
    .register([DOCKERFILE_FRONTEND, 'kiln/dockerfile'], dockerfile)
    .register(TS_FRONTEND, localContextOnly(TS_FRONTEND, createTsFrontend()))
    .register(BUILDPACKS_FRONTEND, localContextOnly(BUILDPACKS_FRONTEND, createBuildpacksFrontend()));
}

/**
 * kiln/ts and kiln/buildpacks read their build files and sources from the local context: a git
 * or http(s) URL as the `context` option (a remote Dockerfile's `# syntax=` forwarding to them)
 * is refused with the reason instead of failing later on a missing local source.
 */
function localContextOnly(name: string, frontend: Frontend): Frontend {
  return (client) => {
    const context = client.opts.get('context');
    if (context !== undefined && isRemoteContext(context)) {
      throw new EngineError('KLN0702', `${name} cannot build the remote context ${redactUrl(context)}: it reads its files from a local directory`, { hint: 'clone or download it first and pass the directory' });
    }
    return frontend(client);
  };
}
