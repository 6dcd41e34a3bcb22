import { EngineError } from './errors.js';
import { CsvError, readCsvRecord } from './csv-record.js';

/** A provenance attestation request (BuildKit's `attest:provenance` attributes). */
export interface ProvenanceOptions {
  /** `min`: the request without build args, labels, secrets and SSH; `max`: everything plus the LLB steps. */
  readonly mode: 'min' | 'max';
  /** `builder-id=`: `builder.id` of the predicate (BuildKit leaves it empty otherwise). */
  readonly builderId?: string;
  /** `reproducible=true`: `metadata.reproducible`. */
  readonly reproducible?: boolean;
}

/**
 * An SBOM attestation request (BuildKit's `attest:sbom`): the scanner image run on the result
 * (docs/attestations/sbom-protocol.md). Without `generator` the frontend uses BuildKit's default,
 * `docker/buildkit-syft-scanner:stable-1`.
 */
export interface SbomOptions {
  readonly generator?: string;
}

/** The attestations a build asked for. */
export interface AttestationRequest {
  readonly provenance?: ProvenanceOptions;
  readonly sbom?: SbomOptions;
}

const KEYS = new Set(['type', 'disabled', 'mode', 'builder-id', 'reproducible', 'inline-only']);
const SBOM_KEYS = new Set(['type', 'disabled', 'generator']);

/**
 * buildx `CanonicalizeAttest` of a `--provenance`/`--sbom` value: a boolean turns the type on or
 * off, anything else is its attributes. A value without `=` that is no boolean is the context
 * commander gave the optional value (`--sbom .`): refused with a hint.
 */
function shorthand(type: 'provenance' | 'sbom', value: string | boolean): { flag: string; value: string } {
  const v = value === true ? 'true' : String(value).trim();
  const b = goParseBool(v);
  if (!v.includes('=') && b === undefined) {
    throw new EngineError('KLN0702', `invalid --${type} value "${v}"`, {
      hint: type === 'provenance' ? 'use --provenance=true|false|mode=min|mode=max (with "="), or put the context before --provenance' : 'use --sbom=true|false|generator=<image> (with "="), or put the context before --sbom',
    });
  }
  return { flag: `--${type}=${v}`, value: b === undefined ? `type=${type},${v}` : `type=${type},disabled=${String(!b)}` };
}

/**
 * The attributes of one attestation value as buildx's Attest.UnmarshalText reads them: fields as
 * Go's encoding/csv splits a line ({@link readCsvRecord}: quotes only around a whole field, nothing
 * trimmed, an empty field is one), each KEY=VALUE ("invalid value true": the output-spec splitter
 * glued a loose field to the previous value, --provenance=true,mode=max read as the type
 * "provenance,true"). Keys are lower-cased; `type` and `disabled` trimmed, as buildx trims them.
 * Another key is kept as written: buildx would pass " mode" on as an attribute nothing reads, so
 * it is refused as unknown below.
 */
function attestFields(flag: string, value: string): Map<string, string> {
  let fields: string[];
  try {
    fields = readCsvRecord(value);
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    throw new EngineError('KLN0702', `invalid ${flag}: ${e.message}`, { hint: 'quote a whole field from its first character, a quote in it doubled: "builder-id=https://ci.example/a,b"' });
  }
  const attrs = new Map<string, string>();
  for (const f of fields) {
    const eq = f.indexOf('=');
    if (eq < 0) {
      const shorthandBool = /^(true|false|1|0)$/.test(f) && !flag.startsWith('--attest');
      throw new EngineError('KLN0702', `invalid ${flag}: invalid value "${f}": every field is KEY=VALUE`, {
        hint: shorthandBool
          ? `a true/false value stands alone: ${flag.split('=')[0] ?? flag}=mode=max turns it on with attributes`
          : /^(min|max)$/.test(f)
            ? `write mode=${f}`
            : f === ''
              ? 'remove the extra comma'
              : 'e.g. --attest type=provenance,mode=max or --attest type=sbom,generator=IMAGE',
      });
    }
    const key = f.slice(0, eq).toLowerCase();
    const trimmed = key.trim();
    attrs.set(trimmed === 'type' || trimmed === 'disabled' ? trimmed : key, f.slice(eq + 1));
  }
  return attrs;
}

/** The hint for an unknown attribute `k`: one with spaces around it is a known one written with them. */
const spaced = (k: string, hint: string): string => (k.trim() === k ? hint : 'write the fields without spaces around the commas: type=provenance,mode=max');

/**
 * Go's strconv.ParseBool: how buildx reads a `--provenance`/`--sbom` value (CanonicalizeAttest)
 * and `disabled=`, and BuildKit `reproducible=` (`True`, `t`, `0` are booleans; an empty value is not).
 */
function goParseBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

function parseBool(flag: string, key: string, v: string): boolean {
  const b = goParseBool(v);
  if (b === undefined) throw new EngineError('KLN0702', `invalid ${flag}: ${key} must be true or false, not "${v}"`);
  return b;
}

/**
 * Parses `--provenance`, `--sbom` and `--attest` as buildx does: `--provenance` (or `=true`) is
 * `--attest type=provenance`, `=false` turns it off, anything else is its attributes
 * (`mode=max,builder-id=…`); `--sbom` likewise for `type=sbom` (`generator=IMAGE`); each type is
 * given once, whichever flag names it. Without `mode`, kiln writes mode=min, the mode buildx asks for (BuildKit's own default,
 * for a bare `attest:provenance`, is max). Nothing asked, nothing made: unlike buildx, kiln adds
 * no provenance to image outputs by default.
 */
export function parseAttestations(provenance: string | boolean | undefined, attest: readonly string[], sbom?: string | boolean): AttestationRequest {
  const entries: { flag: string; value: string }[] = [];
  // buildx: an empty --provenance= / --sbom= asks for nothing (`if provenance != ""`)
  if (provenance !== undefined && provenance !== false && provenance !== '') entries.push(shorthand('provenance', provenance));
  for (const a of attest) entries.push({ flag: `--attest ${a}`, value: a });
  if (sbom !== undefined && sbom !== false && sbom !== '') entries.push(shorthand('sbom', sbom));
  const seen = new Set<string>();
  let result: AttestationRequest = {};
  for (const { flag, value } of entries) {
    const attrs = attestFields(flag, value);
    const type = attrs.get('type');
    if (type === undefined || type === '') throw new EngineError('KLN0702', `invalid ${flag}: missing attestation type`, { hint: 'use --attest type=provenance[,mode=min|max]' });
    if (seen.has(type)) throw new EngineError('KLN0702', `duplicate attestation field ${type}`, { hint: 'give each attestation type once (--provenance is --attest type=provenance)' });
    seen.add(type);
    const disabled = attrs.has('disabled') && parseBool(flag, 'disabled', attrs.get('disabled') ?? '');
    if (disabled) continue;
    if (type === 'sbom') {
      for (const k of attrs.keys()) {
        if (!SBOM_KEYS.has(k)) throw new EngineError('KLN0702', `invalid ${flag}: unknown sbom attribute "${k}"`, { hint: spaced(k, 'use generator=<scanner image>') });
      }
      const generator = attrs.get('generator');
      if (generator === '') throw new EngineError('KLN0702', `invalid ${flag}: sbom scanner cannot be empty`, { hint: 'use generator=<scanner image>, or leave it out for docker/buildkit-syft-scanner:stable-1' });
      result = { ...result, sbom: generator === undefined ? {} : { generator } };
      continue;
    }
    if (type !== 'provenance') throw new EngineError('KLN0702', `invalid ${flag}: unknown attestation type "${type}"`, { hint: 'use --attest type=provenance or type=sbom' });
    for (const k of attrs.keys()) {
      if (!KEYS.has(k)) throw new EngineError('KLN0702', `invalid ${flag}: unknown provenance attribute "${k}"`, { hint: spaced(k, 'use mode=min|max, builder-id=URL, reproducible=true') });
    }
    const mode = attrs.get('mode') ?? 'min';
    if (mode !== 'min' && mode !== 'max' && mode !== 'full') throw new EngineError('KLN0702', `invalid ${flag}: invalid mode "${mode}"`, { hint: 'use mode=min or mode=max' });
    const builderId = attrs.get('builder-id');
    const reproducible = attrs.has('reproducible') ? parseBool(flag, 'reproducible', attrs.get('reproducible') ?? '') : undefined;
    result = {
      ...result,
      provenance: {
        mode: mode === 'min' ? 'min' : 'max',
        ...(builderId === undefined ? {} : { builderId }),
        ...(reproducible === undefined ? {} : { reproducible }),
      },
    };
  }
  return result;
}
