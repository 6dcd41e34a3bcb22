import { ImageStoreError, type RuntimeErrorCode } from '../content/errors.js';
import { readLimited } from './body.js';

/** Turns a failed registry response into an {@link ImageStoreError} with a stable code. */
export async function registryError(res: Response, what: string, notFound: RuntimeErrorCode = 'REGISTRY_ERROR'): Promise<ImageStoreError> {
  let detail = '';
  let regCode = '';
  try {
    // An error body is a short JSON document; a longer one is not read.
    const text = (await readLimited(res, 64 * 1024))?.toString('utf8') ?? '';
    const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = body.errors?.[0];
    if (first !== undefined) {
      regCode = typeof first.code === 'string' ? first.code : '';
      detail = typeof first.message === 'string' ? first.message : '';
    }
  } catch {
    // not a distribution error body
  }
  const suffix = `${res.status}${regCode !== '' ? ` ${regCode}` : ''}${detail !== '' ? `: ${detail}` : ''}`;
  const status = res.status;
  if (status === 401) {
    return new ImageStoreError('UNAUTHORIZED', `${what}: authentication required (${suffix})`, {
      // Basic-auth registries answer 401 both without credentials and to wrong ones.
      hint: 'log in (docker login, or an auths entry in ~/.docker/config.json) if kiln has no credentials for this registry; if it has, check them',
      status,
    });
  }
  if (status === 403) return new ImageStoreError('DENIED', `${what}: access denied (${suffix})`, { hint: 'the credentials lack permission for this repository', status });
  if (regCode === 'DIGEST_INVALID') return new ImageStoreError('DIGEST_MISMATCH', `${what}: the registry rejected the content digest (${suffix})`, { status });
  if (status === 404 || regCode === 'MANIFEST_UNKNOWN' || regCode === 'BLOB_UNKNOWN' || regCode === 'NAME_UNKNOWN') {
    return new ImageStoreError(notFound, `${what}: not found (${suffix})`, { status });
  }
  return new ImageStoreError('REGISTRY_ERROR', `${what}: registry error (${suffix})`, { status });
}
