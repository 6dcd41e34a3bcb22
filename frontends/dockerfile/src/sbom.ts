/**
 * SBOM attestations as BuildKit v0.11 makes them in its Dockerfile frontend: the `attest:sbom`
 * option names a generator image (frontend/attestations/parse.go), and the scan is LLB, that
 * image run with the result mounted read-only (frontend/attestations/sbom/sbom.go, the protocol
 * of docs/attestations/sbom-protocol.md). The scanner writes in-toto statements to its output
 * mount, which the frontend returns as a `bundle` attestation for the exporter to unbundle.
 */
import {
  AttestationMetadataKey,
  formatImageReference,
  image,
  parseImageConfig,
  parseImageReference,
  tagNameOnly,
  type FrontendAttestation,
  type ImageMetaResolver,
  type State,
} from '@kiln/llb-core';
import { KilnError } from './errors.js';
import { csvFields } from './instructions/mount.js';

/** Attestation types a frontend option can ask for (frontend/attestations `KeyType*`). */
export const ATTEST_SBOM = 'sbom';

/** The generator used when `attest:sbom` names none (BuildKit v0.11 `defaultSBOMGenerator`). */
export const DEFAULT_SBOM_GENERATOR = 'docker/buildkit-syft-scanner:stable-1';

/** The SPDX predicate type every statement of the scan bundle must have (`intoto.PredicateSPDX`). */
export const SPDX_PREDICATE_TYPE = 'https://spdx.dev/Document';

/** Name of the core scan target (`CoreSBOMName`): mounted at `/run/src/core/sbom`. */
export const CORE_SBOM_NAME = 'sbom';

// sbom.go: srcDir and outDir. outDir keeps its slash (it is used unjoined, as the mount
// target and BUILDKIT_SCAN_DESTINATION); the others go through path.Join, which drops it.
const SRC_DIR = '/run/src';
const OUT_DIR = '/run/out/';

/**
 * The `attest:` options (and `build-arg:BUILDKIT_ATTEST_*` build args) as BuildKit's
 * `attestations.Parse` reads them: type (lower case) → attributes from the CSV value; `sbom`
 * starts with the default generator.
 */
export function parseAttestOptions(opts: ReadonlyMap<string, string>): Map<string, Map<string, string>> {
  const raw = new Map<string, string>();
  for (const [k, v] of opts) {
    if (k.startsWith('attest:')) raw.set(k.slice('attest:'.length).toLowerCase(), v);
    else if (k.startsWith('build-arg:BUILDKIT_ATTEST_')) raw.set(k.slice('build-arg:BUILDKIT_ATTEST_'.length).toLowerCase(), v);
  }
  const out = new Map<string, Map<string, string>>();
  for (const [type, value] of raw) {
    const attrs = new Map<string, string>();
    if (type === ATTEST_SBOM) attrs.set('generator', DEFAULT_SBOM_GENERATOR);
    out.set(type, attrs);
    if (value === '') continue;
    for (const field of readCsvRecord(value, type)) {
      const i = field.indexOf('=');
      if (i < 0) attrs.set(field, '');
      else attrs.set(field.slice(0, i), field.slice(i + 1));
    }
  }
  return out;
}

/** One record of Go's encoding/csv ({@link csvFields}); a malformed one is KLN0511 naming the type. */
function readCsvRecord(value: string, type: string): string[] {
  try {
    return csvFields(value);
  } catch (cause) {
    throw new KilnError('KLN0511', `failed to parse ${type}: ${cause instanceof Error ? cause.message : String(cause)}`, { hint: 'quote a whole field: "generator=img"' });
  }
}

/** The states one scan covers (dockerfile2llb `SBOMTargets`). */
export interface SBOMTargets {
  /** The result: mounted at `/run/src/core/sbom`. */
  readonly core: State;
  /** Other filesystems by name (`context`, a stage name): `/run/src/extras/sbom-<name>`. */
  readonly extras?: ReadonlyMap<string, State>;
  /** Run the scan even when cached (the target stage is under `no-cache`). */
  readonly ignoreCache?: boolean;
}

/**
 * A scan of one result (BuildKit's `sbom.Scanner`): the LLB of the generator run, whose
 * `/run/out` mount holds the statements; `name` is the platform key, shown in its step name.
 */
export type SBOMScanner = (name: string, targets: SBOMTargets) => State;

/**
 * Resolves the generator image's config and returns its {@link SBOMScanner}, as BuildKit's
 * `CreateSBOMScanner`: the command is the image's entrypoint plus cmd (none: an error), the
 * working directory and environment the image's. The reference is normalized first
 * (`ParseNormalizedNamed` + `TagNameOnly`). An image that cannot be resolved (offline, the
 * default `docker/buildkit-syft-scanner`) fails with KLN0511 naming it.
 */
export async function createSBOMScanner(resolver: ImageMetaResolver, generator: string, signal?: AbortSignal): Promise<SBOMScanner> {
  let ref: string;
  try {
    ref = formatImageReference(tagNameOnly(parseImageReference(generator)));
  } catch (cause) {
    throw new KilnError('KLN0511', `failed to parse sbom scanner ${generator}`, { hint: 'give an image reference: --attest type=sbom,generator=<image>', cause });
  }
  let configBytes: Uint8Array;
  try {
    configBytes = (await resolver.resolveImageConfig(ref, signal === undefined ? {} : { signal })).config;
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new KilnError('KLN0511', `cannot resolve the SBOM generator image ${ref}: ${why}`, {
      hint:
        generator === DEFAULT_SBOM_GENERATOR
          ? `the default generator ${DEFAULT_SBOM_GENERATOR} must be pulled; offline, name a scanner image you have: --attest type=sbom,generator=<image>`
          : 'name a scanner image the build can resolve: --attest type=sbom,generator=<image>',
      cause,
    });
  }
  const config = parseImageConfig(configBytes).config ?? {};
  const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  if (args.length === 0) throw new KilnError('KLN0511', `scanner ${ref} does not have cmd`, { hint: 'the generator image needs an ENTRYPOINT or CMD that runs the scan' });
  const imageEnv = (config.Env ?? []).map((e): [string, string] => {
    const i = e.indexOf('=');
    return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
  });
  return (name, targets) => {
    const extras = [...(targets.extras ?? new Map<string, State>())];
    const env: [string, string][] = [
      ...imageEnv,
      ['BUILDKIT_SCAN_DESTINATION', OUT_DIR],
      ['BUILDKIT_SCAN_SOURCE', `${SRC_DIR}/core/${CORE_SBOM_NAME}`],
      ...(extras.length > 0 ? [['BUILDKIT_SCAN_SOURCE_EXTRAS', `${SRC_DIR}/extras`] as [string, string]] : []),
    ];
    // The scanner image without a platform: the marshal default (the build host), as BuildKit's
    // llb.Image(scanner) without llb.Platform.
    const run = image(ref).run({
      customName: `[${name}] generating sbom using ${ref}`,
      ...(targets.ignoreCache === true ? { ignoreCache: true } : {}),
      dir: config.WorkingDir ?? '',
      args,
      env,
      mounts: [
        { target: '/tmp', tmpfs: true },
        { target: `${SRC_DIR}/core/${CORE_SBOM_NAME}`, source: targets.core, readonly: true },
        ...extras.map(([k, st]) => ({ target: `${SRC_DIR}/extras/${CORE_SBOM_NAME}-${k}`, source: st, readonly: true })),
        { target: OUT_DIR },
      ],
    });
    return run.getMount(OUT_DIR);
  };
}

/**
 * The attestation of a solved scan (sbom.go's return value): a bundle of SPDX statements,
 * reason `sbom`, core scan `sbom`.
 */
export function sbomBundle<R = FrontendAttestation['ref']>(ref: R): Omit<FrontendAttestation, 'ref' | 'metadata'> & { readonly ref: R; readonly metadata: ReadonlyMap<string, Uint8Array> } {
  const enc = new TextEncoder();
  return {
    kind: 'bundle',
    ref,
    metadata: new Map([
      [AttestationMetadataKey.reason, enc.encode(AttestationMetadataKey.reasonSBOM)],
      [AttestationMetadataKey.sbomCore, enc.encode(CORE_SBOM_NAME)],
    ]),
    predicateType: SPDX_PREDICATE_TYPE,
  };
}
