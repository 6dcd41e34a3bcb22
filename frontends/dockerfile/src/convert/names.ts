/** Progress names and description keys the converter writes (BuildKit's wording, in one place). */

/** Op description key holding the instruction as written (BuildKit's dfCmd). */
export const DOCKERFILE_COMMAND = 'com.docker.dockerfile.v1.command';

/** BuildKit's `[internal] …` progress names. */
export const InternalName = {
  loadBuildContext: '[internal] load build context',
  inlineDocument: '[internal] preparing inline document',
  cacheMountPermissions: '[internal] settings cache mount permissions',
} as const;

/**
 * Build args that only switch SBOM scanning (BuildKit dockerfile2llb nonEnvArgs): an ARG of
 * these names never reaches the stage's environment.
 */
export const NON_ENV_ARGS: ReadonlySet<string> = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);
