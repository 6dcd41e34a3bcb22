import type { ResolveImageConfigOptions } from '@kiln/llb-core';
import { formatReference, parseReference } from '@kiln/runtime';
import { readSourcePolicyFile, redactIdentifier, SOURCE_POLICY_ENV, SourcePolicyEngine, SourcePolicyError, type SourcePolicy } from '@kiln/solver';
import { callerEnv, callerPath, type CliIo } from '../io.js';

const DOCKER_IMAGE = 'docker-image://';

/**
 * The build's source policy: `--source-policy-file FILE` (buildctl's flag), else the file
 * `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY` names (buildx's variable), relative to the caller's
 * directory. Undefined when neither is set (an empty variable counts as unset, as in buildx).
 * Throws SourcePolicyError KLN0950/KLN0951 for a file that cannot be read or parsed.
 */
export async function loadSourcePolicy(io: CliIo, flag: string | undefined): Promise<SourcePolicyEngine | undefined> {
  const file = flag ?? callerEnv(io)[SOURCE_POLICY_ENV];
  if (file === undefined || file === '') return undefined;
  const policy = await readSourcePolicyFile(callerPath(io, file), file);
  for (const w of unqualifiedImageSelectors(policy)) io.stderr.write(`WARNING: ${w}\n`);
  return new SourcePolicyEngine([policy]);
}

/**
 * Warnings for `docker-image://` selectors that can match no image: sources reach the policy
 * fully qualified (`docker.io/library/busybox:latest`), so a rule for `docker-image://busybox`
 * or `docker-image://alpine:*` is silently never applied, in BuildKit as in kiln: a DENY that
 * denies nothing. Regexps may match anywhere and are left alone.
 */
export function unqualifiedImageSelectors(policy: SourcePolicy): string[] {
  const out: string[] = [];
  for (const rule of policy.rules) {
    const { identifier, matchType } = rule.selector;
    if (matchType === 'REGEX' || !identifier.startsWith(DOCKER_IMAGE)) continue;
    const ref = identifier.slice(DOCKER_IMAGE.length);
    let want: string | undefined;
    if (!ref.includes('*')) {
      try {
        const full = formatReference(parseReference(ref));
        if (full !== ref) want = full;
      } catch {
        continue; // not a reference: nothing to suggest
      }
    } else {
      // a wildcard: only a missing registry is certain (its first component names no host)
      const slash = ref.indexOf('/');
      const first = slash < 0 ? undefined : ref.slice(0, slash);
      if (first === undefined) want = ref.startsWith('*') ? undefined : `docker.io/library/${ref}`;
      else if (!first.includes('*') && !first.includes('.') && !first.includes(':') && first !== 'localhost') want = `docker.io/${ref}`;
    }
    if (want !== undefined) {
      out.push(`${policy.file}: rules[${rule.index}].selector.identifier ${JSON.stringify(identifier)} matches no image: images are fully qualified, write ${JSON.stringify(DOCKER_IMAGE + want)}`);
    }
  }
  return out;
}

/**
 * The image a frontend's `resolveImageConfig(ref)` must look up under `policy`, as BuildKit's
 * bridge evaluates `docker-image://REF` before resolving: the converted reference (a pinned
 * digest, a mirror), or `ref` itself. A denied image throws KLN0952 before any registry is asked.
 */
export function policyImageRef(policy: SourcePolicyEngine, ref: string, options: Pick<ResolveImageConfigOptions, 'resolveMode'>): string {
  const attrs = new Map<string, string>();
  // The attribute the image's source op will carry (only a non-default mode is written).
  if (options.resolveMode !== undefined && options.resolveMode !== 'default') attrs.set('image.resolvemode', options.resolveMode);
  const d = policy.evaluate({ identifier: `${DOCKER_IMAGE}${ref}`, attrs });
  if (!d.mutated || d.identifier === `${DOCKER_IMAGE}${ref}`) return ref;
  if (!d.identifier.startsWith(DOCKER_IMAGE)) {
    throw new SourcePolicyError('KLN0954', `the source policy converts the image ${ref} to ${JSON.stringify(redactIdentifier(d.identifier))}, which is not an image whose config can be resolved`, {
      identifier: redactIdentifier(d.identifier),
      hint: 'convert docker-image:// sources to other docker-image:// references',
    });
  }
  return d.identifier.slice(DOCKER_IMAGE.length);
}
