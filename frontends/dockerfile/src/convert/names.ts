/** Progress names and description keys the converter writes (BuildKit's wording, in one place). */

/** Op description key holding the instruction as written (BuildKit's dfCmd). */
export const DOCKERFILE_COMMAND = 'com.docker.dockerfile.v1.command';

/** BuildKit's `[internal] …` progress names. */
export const InternalName = {
  loadBuildContext: '[internal] load build context',
  inlineDocument: '[internal] preparing inline document',
  cacheMountPermissions: '[internal] settings cache mount permissions',
} as const;
