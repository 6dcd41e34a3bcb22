/**
 * `.dockerignore` for a kiln/ts build's local sources, read as BuildKit's dockerui reads it for a
 * Dockerfile build: through the gateway client (never the host's files), with the same local
 * sources, so a DSL build and a Dockerfile build of one context share those vertices and send
 * the same `local.excludepatterns`.
 */
import { local, parseDockerignore } from '@kiln/llb-core';
import type { FrontendClient, Ref } from '@kiln/llb-core';

/** The client directory that is the build context (BuildKit's DefaultLocalNameContext). */
const CONTEXT = 'context';

const patternsOf = (dt: Uint8Array | undefined): string[] => (dt === undefined || dt.length === 0 ? [] : parseDockerignore(new TextDecoder().decode(dt)));

/**
 * Answers "which patterns exclude files of client directory `name`": for the build context,
 * `<build file>.dockerignore` next to the build file (from `entry`, the build file's input) wins
 * over the context's `.dockerignore`; for the directory of a `--build-context NAME=DIR`
 * (`context:NAME` = `local:DIR`), `DIR/.dockerignore`, as dockerui's named contexts; nothing for
 * other directories (`dockerfile`). A missing file excludes nothing.
 */
export function clientDockerignore(client: Pick<FrontendClient, 'solve' | 'inputs' | 'opts'>, filename: string, entry: () => Promise<Ref>): (name: string) => Promise<string[]> {
  return async (name) => {
    if (name === CONTEXT) {
      const own = await (await entry()).readFile(`${filename}.dockerignore`).catch(() => undefined);
      if (own !== undefined) return patternsOf(own);
      // the very definition the Dockerfile frontend solves for it (readContextIgnore)
      const def =
        client.inputs.get(CONTEXT) ??
        (await local(CONTEXT, { followPaths: ['.dockerignore'], sharedKeyHint: 'context-.dockerignore', customName: '[internal] load .dockerignore' }).marshal());
      return patternsOf(await (await client.solve({ definition: def })).readFile('.dockerignore').catch(() => undefined));
    }
    const named = [...client.opts].find(([k, v]) => k.startsWith('context:') && v === `local:${name}`)?.[0].slice('context:'.length);
    if (named === undefined) return [];
    // as the Dockerfile frontend's localContext (named-contexts.ts)
    const def = await local(name, {
      followPaths: ['.dockerignore'],
      sharedKeyHint: `context:${named}-.dockerignore`,
      customName: `[context ${named}] load .dockerignore`,
      differ: { type: 'none', required: false },
    }).marshal();
    return patternsOf(await (await client.solve({ definition: def })).readFile('.dockerignore').catch(() => undefined));
  };
}
