import { join } from 'node:path';
import { matchUnder, splitWildcards } from './match.js';
import { cleanInRoot, inRootPath, resolveInRoot } from './resolve.js';

/** Resolves a source path: parents always followed, the last component only with `followLinks`. */
export async function sourcePath(root: string, p: string, followLinks: boolean): Promise<string> {
  return resolveInRoot(root, cleanInRoot(p), { followFinal: followLinks });
}

/**
 * fsutil ResolveWildcards: the in-root paths (`/…`) of the entries matching `src` in lexical order,
 * or `[src]` when it holds no wildcard.
 */
export async function resolveWildcards(root: string, src: string, followLinks: boolean): Promise<string[]> {
  const [d1, d2] = splitWildcards(src);
  if (d2 === '') return [d1];
  const base = await sourcePath(root, d1, followLinks);
  const rels = await matchUnder(base, d2);
  return rels.map((r) => inRootPath(root, join(base, r)));
}
