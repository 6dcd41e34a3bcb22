/**
 * Small helpers over the FrontendClient: solving a State, reading optional files and
 * resolving image configs with kiln's reference normalization.
 */
import { formatImageReference, parseImageConfig, parseImageReference, tagNameOnly } from '@kiln/llb-core';
import type { FrontendClient, ImageConfig, Ref, State } from '@kiln/llb-core';
import { BuildpacksError } from './errors.js';

/**
 * Solves a State and returns its ref. Refs are lazy: a failing step surfaces on the first read,
 * which {@link readOptional} would take for a missing file; `evaluate` makes it fail here.
 */
export async function solveState(client: FrontendClient, state: State, opts: { readonly evaluate?: boolean } = {}): Promise<Ref> {
  return client.solve({ definition: await state.marshal(), ...(opts.evaluate === true ? { evaluate: true } : {}) });
}

/** A file's text, or undefined when it is missing. */
export async function readOptional(ref: Ref, path: string): Promise<string | undefined> {
  try {
    return new TextDecoder().decode(await ref.readFile(path));
  } catch {
    return undefined;
  }
}

/** Names in a directory, or [] when it is missing. */
export async function listOptional(ref: Ref, path: string): Promise<{ name: string; dir: boolean }[]> {
  try {
    // Go os.FileMode: directory bit 1 << 31
    return (await ref.readDir(path)).map((s) => ({ name: s.path.replace(/^.*\//, ''), dir: (s.mode & 0x80000000) !== 0 }));
  } catch {
    return [];
  }
}

/** An env directory's files (name → content); none when it is missing. */
export async function readEnvDir(ref: Ref, path: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const f of await listOptional(ref, path)) {
    if (f.dir) continue;
    const text = await readOptional(ref, `${path}/${f.name}`);
    if (text !== undefined) files.set(f.name, text);
  }
  return files;
}

/** `docker.io/library/x:latest` for `x`. */
export const normalizeRef = (ref: string): string => formatImageReference(tagNameOnly(parseImageReference(ref)));

/** Resolves an image's config; a failure is KLN0907 naming the option that chose the image. */
export async function resolveConfig(client: FrontendClient, ref: string, what: string): Promise<ImageConfig> {
  return (await resolveImage(client, ref, what)).config;
}

/**
 * Resolves an image's config and its digest reference (`docker.io/x/y@sha256:…`, the manifest
 * the tag resolved to); a failure is KLN0907 naming the option that chose the image.
 */
export async function resolveImage(client: FrontendClient, ref: string, what: string): Promise<{ config: ImageConfig; reference: string }> {
  try {
    const name = normalizeRef(ref);
    const r = await client.resolveImageConfig(name, client.signal === undefined ? {} : { signal: client.signal });
    // A source policy may have converted the image: the digest is that of the converted one.
    const { tag: _tag, digest: _digest, ...repo } = parseImageReference(r.ref === undefined ? name : normalizeRef(r.ref));
    return { config: parseImageConfig(r.config), reference: formatImageReference({ ...repo, digest: String(r.digest) }) };
  } catch (cause) {
    throw new BuildpacksError('KLN0907', `cannot resolve the ${what} image ${ref}`, { cause, hint: `check the ${what} reference: kiln images lists the kiln store, kiln pull IMAGE or kiln load adds an image to it` });
  }
}
