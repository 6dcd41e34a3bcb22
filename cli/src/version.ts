/** kiln's version: cli/package.json's (a test keeps the two equal; the one-file bundle has no package.json beside it). */
const KILN_VERSION = '0.1.0';

/** The BuildKit release whose LLB, cache keys and gateway API kiln matches byte for byte. */
const BUILDKIT_VERSION = 'v0.11.6';

/** What `kiln --version` prints. */
export function versionLine(): string {
  return `kiln ${KILN_VERSION} (BuildKit ${BUILDKIT_VERSION} LLB and gateway API; node ${process.version})`;
}
