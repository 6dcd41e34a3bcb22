import { FrontendRegistry, DOCKERFILE_FRONTEND } from '@kiln/gateway';
import { convertDockerfile, parseDockerfile, type NamedContext } from '@kiln/dockerfile';
import { image, local, parsePlatform, type Frontend, type FrontendClient } from '@kiln/llb-core';
import { parseDockerignore } from '@kiln/solver';

/**
 * Interim Dockerfile frontend over `convertDockerfile` (helper-7's frontend replaces it): reads
 * the Dockerfile and ignore file through the client, converts, solves, returns the image config.
 */
const dockerfileFrontend: Frontend = async (client: FrontendClient) => {
  const filename = client.opts.get('filename') ?? 'Dockerfile';
  const dfDef = client.inputs.get('dockerfile') ?? (await local('dockerfile', { includePatterns: [filename, `${filename}.dockerignore`], sharedKeyHint: 'dockerfile' }).marshal());
  const dfRef = await client.solve({ definition: dfDef });
  const text = new TextDecoder().decode(await dfRef.readFile(filename));
  let ignore: string | undefined;
  try {
    ignore = new TextDecoder().decode(await dfRef.readFile(`${filename}.dockerignore`));
  } catch {
    const ctx = await client.solve({ definition: await local('context', { includePatterns: ['.dockerignore'], sharedKeyHint: 'context-dockerignore' }).marshal() });
    ignore = await ctx.readFile('.dockerignore').then((b) => new TextDecoder().decode(b), () => undefined);
  }
  const buildArgs = new Map<string, string>();
  const named = new Map<string, NamedContext>();
  for (const [k, v] of client.opts) {
    if (k.startsWith('build-arg:')) buildArgs.set(k.slice('build-arg:'.length), v);
    if (k.startsWith('context:')) {
      const name = k.slice('context:'.length);
      if (v.startsWith('docker-image://')) {
        const ref = v.slice('docker-image://'.length);
        const cfg = await client.resolveImageConfig(ref, {});
        named.set(name, { state: image(ref), imageConfig: cfg.config });
      } else if (v.startsWith('local:')) {
        named.set(name, { state: local(v.slice('local:'.length)) });
      }
    }
  }
  parseDockerfile(text, { file: filename });
  const platform = client.opts.get('platform');
  const target = client.opts.get('target');
  const result = await convertDockerfile(text, {
    file: filename,
    buildArgs,
    ...(target === undefined ? {} : { target }),
    ...(platform === undefined ? {} : { targetPlatform: parsePlatform(platform) }),
    metaResolver: client,
    namedContexts: named,
    ...(ignore === undefined ? {} : { excludePatterns: parseDockerignore(ignore) }),
    ...(client.signal === undefined ? {} : { signal: client.signal }),
  });
  const ref = await client.solve({ definition: result.definition, evaluate: true });
  return { ref, metadata: new Map([['containerimage.config', new TextEncoder().encode(result.imageConfigJson)]]) };
};

/**
 * The frontends this kiln serves in process: the Dockerfile frontend under BuildKit's name
 * `dockerfile.v0` and `kiln/dockerfile` (the `docker/dockerfile[:…]` syntax images are aliased
 * to it by the registry).
 */
export function createFrontendRegistry(): FrontendRegistry {
  return new FrontendRegistry().register([DOCKERFILE_FRONTEND, 'kiln/dockerfile'], dockerfileFrontend);
}
