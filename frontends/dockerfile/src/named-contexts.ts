/**
 * Named build contexts (`context:NAME` frontend options) as BuildKit's dockerui reads them
 * (frontend/dockerui/namedcontext.go): images, local directories, git repositories, URLs and
 * Definitions the client passed as inputs.
 */
import { ResultMetadataKey, fromDefinition, http, image, local, parseDockerignore, scratch } from '@kiln/llb-core';
import type { FrontendClient } from '@kiln/llb-core';
import type { NamedContext } from './convert/options.js';
import { KilnError } from './errors.js';
import { gitContext, redactUrl } from './remote-context.js';

const CONTEXT = 'context:';

/**
 * `context:NAME` values, as BuildKit's dockerui accepts them: `docker-image://REF`, `local:NAME`,
 * `git://…`/`git@…` (a git repository), `http(s)://…` (a git repository when the URL ends in
 * `.git` or `.git#REF[:DIR]`, else a downloaded file),
 * or `input:INPUT` — a Definition the gateway client passed among its inputs (another build's
 * result, as buildx bake's `target:` contexts), with its image config from `input-metadata:INPUT`.
 */
export async function namedContexts(client: FrontendClient, sessionId: string | undefined): Promise<Map<string, NamedContext>> {
  const out = new Map<string, NamedContext>();
  for (const [k, v] of client.opts) {
    if (!k.startsWith(CONTEXT)) continue;
    const name = k.slice(CONTEXT.length);
    if (v.startsWith('docker-image://')) out.set(name, imageContext(v.slice('docker-image://'.length)));
    else if (v.startsWith('local:')) out.set(name, await localContext(client, name, v.slice('local:'.length), sessionId));
    else if (v.startsWith('input:')) out.set(name, inputContext(client, name, v.slice('input:'.length)));
    else if (v.startsWith('git://') || v.startsWith('git@')) {
      const st = gitContext(v, true);
      if (st === undefined) throw new KilnError('KLN0504', `invalid git context ${redactUrl(v)}`, { hint: 'use git://HOST/REPO.git[#REF[:DIR]] or git@HOST:REPO.git[#REF[:DIR]]' });
      out.set(name, { state: st });
    } else if (v.startsWith('http://') || v.startsWith('https://')) {
      // A URL that is a git repository (ending in .git or .git#REF[:DIR]) is cloned; any other is downloaded.
      // Named without the URL's credentials, as a git context is (progress and history show it).
      out.set(name, { state: gitContext(v, true) ?? http(v, { customName: `[context ${name}] ${redactUrl(v)}` }) });
    } else {
      throw new KilnError('KLN0504', `unsupported context source ${redactUrl(v)} for ${name}`, { hint: 'use docker-image://REF, local:NAME, input:NAME, git://… or https://…' });
    }
  }
  return out;
}

/**
 * `docker-image://REF`: as BuildKit's dockerui (namedcontext.go), `scratch` is an empty context,
 * and any other image brings its config (Env, WorkingDir, User, Cmd…), which the converter
 * resolves for the platform of the stage that uses it.
 */
function imageContext(ref: string): NamedContext {
  if (ref === 'scratch') return { state: scratch() };
  return { state: image(ref), imageRef: ref };
}

/**
 * `local:SOURCE`: as BuildKit's dockerui (namedcontext.go), the directory's own `.dockerignore`
 * is read first (a local source following only that file) and its patterns exclude files from
 * the context.
 */
async function localContext(client: FrontendClient, name: string, source: string, sessionId: string | undefined): Promise<NamedContext> {
  const session = sessionId === undefined ? {} : { sessionId };
  const ignoreDef = await local(source, {
    ...session,
    followPaths: ['.dockerignore'],
    sharedKeyHint: `context:${name}-.dockerignore`,
    customName: `[context ${name}] load .dockerignore`,
    differ: { type: 'none', required: false },
  }).marshal();
  const ref = await client.solve({ definition: ignoreDef });
  const dt = await ref.readFile('.dockerignore').catch(() => undefined);
  const excludePatterns = dt === undefined || dt.length === 0 ? [] : parseDockerignore(new TextDecoder().decode(dt));
  return {
    state: local(source, {
      ...session,
      sharedKeyHint: `context:${name}`,
      customName: `[context ${name}] load from client`,
      ...(excludePatterns.length > 0 ? { excludePatterns } : {}),
    }),
  };
}

function inputContext(client: FrontendClient, name: string, input: string): NamedContext {
  const def = client.inputs.get(input);
  if (def === undefined) throw new KilnError('KLN0504', `context ${name}: the client passed no input named ${input}`, { hint: `pass the Definition as input "${input}"` });
  const meta = client.opts.get(`input-metadata:${input}`);
  let imageConfig: string | undefined;
  if (meta !== undefined && meta !== '') {
    try {
      const cfg = (JSON.parse(meta) as Record<string, unknown>)[ResultMetadataKey.imageConfig];
      // BuildKit sends metadata values as base64 of the bytes (Go []byte in JSON).
      if (typeof cfg === 'string') imageConfig = Buffer.from(cfg, 'base64').toString('utf8');
    } catch {
      throw new KilnError('KLN0504', `context ${name}: input-metadata:${input} is not JSON`);
    }
  }
  return { state: fromDefinition(def), ...(imageConfig === undefined ? {} : { imageConfig }) };
}
