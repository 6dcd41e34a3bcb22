import { splitCsvFields } from '@kiln/runtime';
import { EngineError } from './errors.js';

/** A provenance attestation request (BuildKit's `attest:provenance` attributes). */
export interface ProvenanceOptions {
  /** `min`: the request without build args, labels, secrets and SSH; `max`: everything plus the LLB steps. */
  readonly mode: 'min' | 'max';
  /** `builder-id=`: `builder.id` of the predicate (BuildKit leaves it empty otherwise). */
  readonly builderId?: string;
  /** `reproducible=true`: `metadata.reproducible`. */
  readonly reproducible?: boolean;
}

/** The attestations a build asked for. */
export interface AttestationRequest {
  readonly provenance?: ProvenanceOptions;
}

const KEYS = new Set(['type', 'disabled', 'mode', 'builder-id', 'reproducible', 'inline-only']);

function parseBool(flag: string, key: string, v: string): boolean {
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new EngineError('KLN0702', `invalid ${flag}: ${key} must be true or false, not "${v}"`);
}

/**
 * Parses `--provenance` and `--attest` as buildx does: `--provenance` (or `=true`) is
 * `--attest type=provenance`, `=false` turns it off, anything else is its attributes
 * (`mode=max,builder-id=…`); each `--attest` names its `type` once. Without `mode`, kiln writes
 * mode=min, the mode buildx asks for (BuildKit's own default, for a bare `attest:provenance`, is
 * max). `type=sbom` needs a scanner image and is refused. Nothing asked, nothing made: unlike
 * buildx, kiln adds no provenance to image outputs by default.
 */
export function parseAttestations(provenance: string | boolean | undefined, attest: readonly string[]): AttestationRequest {
  const entries: { flag: string; value: string }[] = [];
  if (provenance !== undefined && provenance !== false) {
    const v = provenance === true ? 'true' : provenance.trim();
    if (!v.includes('=') && !/^(true|false|1|0)$/.test(v)) {
      // commander gives an optional value the next word: `--provenance .` took the context.
      throw new EngineError('KLN0702', `invalid --provenance value "${v}"`, {
        hint: 'use --provenance=true|false|mode=min|mode=max (with "="), or put the context before --provenance',
      });
    }
    const b = v === 'true' || v === 'false' || v === '1' || v === '0' ? parseBool('--provenance', 'the value', v) : undefined;
    entries.push({ flag: `--provenance=${v}`, value: b === undefined ? `type=provenance,${v}` : `type=provenance,disabled=${String(!b)}` });
  }
  for (const a of attest) entries.push({ flag: `--attest ${a}`, value: a });
  const seen = new Set<string>();
  let result: AttestationRequest = {};
  for (const { flag, value } of entries) {
    const attrs = new Map(splitCsvFields(value));
    const type = attrs.get('type');
    if (type === undefined || type === '') throw new EngineError('KLN0702', `invalid ${flag}: missing attestation type`, { hint: 'use --attest type=provenance[,mode=min|max]' });
    if (seen.has(type)) throw new EngineError('KLN0702', `duplicate attestation field ${type}`, { hint: 'give each attestation type once (--provenance is --attest type=provenance)' });
    seen.add(type);
    const disabled = attrs.has('disabled') && parseBool(flag, 'disabled', attrs.get('disabled') ?? '');
    if (disabled) continue;
    if (type === 'sbom') {
      throw new EngineError('KLN0702', `${flag}: SBOM attestations are not supported yet: they need a scanner image (BuildKit runs docker/buildkit-syft-scanner)`, {
        hint: 'drop --attest type=sbom (or --sbom); --provenance works',
      });
    }
    if (type !== 'provenance') throw new EngineError('KLN0702', `invalid ${flag}: unknown attestation type "${type}"`, { hint: 'use --attest type=provenance' });
    for (const k of attrs.keys()) {
      if (!KEYS.has(k)) throw new EngineError('KLN0702', `invalid ${flag}: unknown provenance attribute "${k}"`, { hint: 'use mode=min|max, builder-id=URL, reproducible=true' });
    }
    const mode = attrs.get('mode') ?? 'min';
    if (mode !== 'min' && mode !== 'max' && mode !== 'full') throw new EngineError('KLN0702', `invalid ${flag}: invalid mode "${mode}"`, { hint: 'use mode=min or mode=max' });
    const builderId = attrs.get('builder-id');
    const reproducible = attrs.has('reproducible') ? parseBool(flag, 'reproducible', attrs.get('reproducible') ?? '') : undefined;
    result = {
      provenance: {
        mode: mode === 'min' ? 'min' : 'max',
        ...(builderId === undefined ? {} : { builderId }),
        ...(reproducible === undefined ? {} : { reproducible }),
      },
    };
  }
  return result;
}
