import { formatPlatform, fromDefinition } from '@kiln/llb-core';
import { createSBOMScanner, DEFAULT_SBOM_GENERATOR, sbomBundle, SPDX_PREDICATE_TYPE } from '@kiln/dockerfile';
import type { BuildOutput } from './export.js';
import type { RecordingBackend } from './provenance-capture.js';
import type { SolvedAttestation } from './result-attestations.js';

/**
 * BuildKit v0.11's `SBOMProcessor` (solver/llbsolver/proc/sbom.go), run after the frontend when
 * `--sbom` was asked: a frontend that made no SBOM itself (the TypeScript DSL, buildpacks, raw
 * LLB) gets each result scanned here with the same generator protocol, the result's own LLB
 * mounted at `/run/src/core/sbom` and no extras; `--no-cache` scans uncached. A result that
 * already has an SPDX attestation (the Dockerfile frontend's, in process or from a frontend image:
 * the gateway result carries both) is left as it is (`HasSBOM`).
 */
export async function sbomProcessor(
  recorder: RecordingBackend,
  outputs: BuildOutput | BuildOutput[],
  opts: { readonly generator?: string; readonly noCache: boolean; readonly signal?: AbortSignal },
): Promise<BuildOutput | BuildOutput[]> {
  const list = Array.isArray(outputs) ? outputs : [outputs];
  if (list.some((o) => o.attestations?.some((a) => a.predicateType === SPDX_PREDICATE_TYPE) === true)) return outputs;
  const scanner = await createSBOMScanner(recorder, opts.generator ?? DEFAULT_SBOM_GENERATOR, opts.signal);
  const scanned: BuildOutput[] = [];
  for (const o of list) {
    const definition = recorder.definitionOf(o.ref);
    if (definition === undefined) {
      scanned.push(o);
      continue;
    }
    const scan = await scanner(formatPlatform(o.platform), { core: fromDefinition(definition), ignoreCache: opts.noCache }).marshal();
    const ref = await recorder.solve(scan, opts.signal === undefined ? {} : { signal: opts.signal });
    const att: SolvedAttestation = { ...sbomBundle(ref), path: '', subjects: [] };
    scanned.push({ ...o, attestations: [...(o.attestations ?? []), att] });
  }
  return Array.isArray(outputs) ? scanned : (scanned[0] as BuildOutput);
}
