import { readFile } from 'node:fs/promises';
import { SourcePolicyError } from './errors.js';
import { parseSourcePolicy, type SourcePolicy } from './policy.js';

/** The environment variable buildx reads a source policy file from. */
export const SOURCE_POLICY_ENV = 'EXPERIMENTAL_BUILDKIT_SOURCE_POLICY';

/**
 * Reads and parses a source policy file. `display` is the name messages use (as the user wrote
 * it); `path` is where it is. Throws KLN0950 when it cannot be read, KLN0951 when it is not a
 * valid policy.
 */
export async function readSourcePolicyFile(path: string, display = path): Promise<SourcePolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : String(code ?? e);
    throw new SourcePolicyError('KLN0950', `cannot read source policy file ${display}: ${why}`, { cause: e, hint: 'name a JSON policy file with --source-policy-file FILE or EXPERIMENTAL_BUILDKIT_SOURCE_POLICY=FILE' });
  }
  return parseSourcePolicy(text, display);
}
