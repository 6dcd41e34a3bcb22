/**
 * Where `gateway.v0` gets a frontend image from (BuildKit frontend/gateway/gateway.go Solve): a
 * named context `context:<source>` wins, else the image `source` is resolved (kiln's local image
 * store, then its registries) and pinned by digest.
 */
import {
  defaultPlatform,
  formatImageReference,
  formatPlatform,
  ResultMetadataKey,
  image,
  parseImageConfig,
  parseImageReference,
  tagNameOnly,
  type Definition,
  type FrontendClient,
  type ImageConfig,
  type ImageReference,
  type ResolvedImageConfig,
} from '@kiln/llb-core';
import { GatewayError } from '../errors.js';

/**
 * KLN0607 for a frontend image that no registry or store has: its own class, so the gateway can
 * tell it from the other KLN0607 refusals and point at where the name came from.
 */
export class UnresolvableFrontendImage extends GatewayError {
  constructor(ref: string, cause: unknown) {
    super('KLN0607', `cannot resolve frontend image ${ref}`, {
      hint: 'push the frontend image to a registry kiln can reach, or load it into the kiln root; built-in frontends need no image',
      cause,
    });
  }
}

/** A frontend image ready to solve: its LLB and the config that says how to run it. */
export interface FrontendImage {
  /** The LLB of its filesystem (a `docker-image://…@digest` source, or a named context's). */
  readonly definition: Definition;
  readonly config: ImageConfig | undefined;
  /** The reference it was resolved to, pinned by digest when there is one (for messages). */
  readonly ref: string;
  /** The manifest digest, when resolved from an image. */
  readonly digest?: string;
}

const DOCKER_IMAGE = 'docker-image://';
const INPUT = 'input:';

/** Resolves `source` as buildkitd's gateway frontend does. */
export async function resolveFrontendImage(client: FrontendClient, source: string): Promise<FrontendImage> {
  const named = namedContext(client.opts, source);
  if (named !== undefined) {
    if (named.startsWith(DOCKER_IMAGE)) return resolveImage(client, named.slice(DOCKER_IMAGE.length), source);
    if (named.startsWith(INPUT)) return inputImage(client, named.slice(INPUT.length), source);
    throw new GatewayError('KLN0607', `frontend ${source}: named context ${named} is not an image`, {
      hint: 'give the frontend\'s named context as docker-image://REF or input:NAME',
    });
  }
  return resolveImage(client, source, source);
}

/**
 * The value of the named context for `source` (dockerui NamedContext: the familiar name without
 * `:latest`, the platform-specific `context:NAME::PLATFORM` first), or undefined.
 */
export function namedContext(opts: ReadonlyMap<string, string>, source: string): string | undefined {
  const names = new Set([source]);
  try {
    const r = parseImageReference(source);
    const path = r.domain === 'docker.io' && r.path.startsWith('library/') ? r.path.slice('library/'.length) : r.path;
    const familiar = `${r.domain === 'docker.io' ? '' : `${r.domain}/`}${path}${r.tag === undefined || r.tag === 'latest' ? '' : `:${r.tag}`}${r.digest === undefined ? '' : `@${r.digest}`}`;
    names.add(familiar);
  } catch {
    // not an image reference: only the name as written
  }
  const platform = formatPlatform(defaultPlatform());
  for (const name of names) {
    const v = opts.get(`context:${name}::${platform}`) ?? opts.get(`context:${name}`);
    if (v !== undefined) return v;
  }
  return undefined;
}

async function resolveImage(client: FrontendClient, ref: string, source: string): Promise<FrontendImage> {
  let parsed: ImageReference;
  try {
    parsed = tagNameOnly(parseImageReference(ref));
  } catch (cause) {
    throw new GatewayError('KLN0607', `frontend ${source}: ${ref} is not an image reference`, { hint: 'use # syntax=REGISTRY/REPO[:TAG][@DIGEST] or a built-in frontend name', cause });
  }
  const normalized = formatImageReference(parsed);
  let resolved: ResolvedImageConfig | undefined;
  try {
    resolved = await client.resolveImageConfig(normalized, {});
  } catch (cause) {
    if (client.signal?.aborted === true) throw cause;
    // A `name:tag@digest` reference (how `kiln build` passes an oci-layout build context it
    // imported into its image store) may be known by `name:tag` only: that record is the image
    // when it has exactly the pinned digest (as the Dockerfile frontend's named contexts).
    const { digest, ...tagged } = parsed;
    if (digest !== undefined && tagged.tag !== undefined) {
      const retry = await client.resolveImageConfig(formatImageReference(tagged), {}).catch(() => undefined);
      if (retry !== undefined && retry.digest === digest) resolved = { ...retry, ref: normalized };
    }
    if (resolved === undefined) {
      throw new UnresolvableFrontendImage(ref, cause);
    }
  }
  const base = parseImageReference(resolved.ref ?? normalized);
  const digest = resolved.digest === '' ? undefined : String(resolved.digest);
  const pinned = formatImageReference(digest === undefined ? base : { ...base, digest });
  // BuildKit marks the frontend's image record as `frontend` (markTypeFrontend).
  const definition = await image(pinned, { recordType: 'frontend' }).marshal();
  return { definition, config: parseImageConfig(resolved.config), ref: pinned, ...(digest === undefined ? {} : { digest }) };
}

function inputImage(client: FrontendClient, input: string, source: string): FrontendImage {
  const definition = client.inputs.get(input);
  if (definition === undefined) throw new GatewayError('KLN0607', `frontend ${source}: the client passed no input named ${input}`);
  let config: ImageConfig | undefined;
  const meta = client.opts.get(`input-metadata:${input}`);
  if (meta !== undefined && meta !== '') {
    const cfg = (JSON.parse(meta) as Record<string, unknown>)[ResultMetadataKey.imageConfig];
    // BuildKit sends metadata values as base64 of the bytes (Go []byte in JSON).
    if (typeof cfg === 'string') config = parseImageConfig(Buffer.from(cfg, 'base64'));
  }
  return { definition, config, ref: source };
}
