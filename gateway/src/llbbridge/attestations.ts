/**
 * `Result.attestations` (gateway.proto field 12) and llb-core's `FrontendResult.attestations`,
 * both ways. BuildKit v0.11.6 copies the enum values as they are (gateway client
 * `AttestationToPB`/`AttestationFromPB`) and gives each attestation's ref an id like a result
 * ref (`llbBridgeForwarder.Solve` registers it, `Return` looks it up).
 */
import type { AttestationKind, AttestationSubject, FrontendAttestation, FrontendResult, Ref } from '@kiln/llb-core';
import { GatewayError } from '../errors.js';
import type { WireAttestation, WireAttestations, WireInTotoSubject, WireRef } from './messages.js';

/** gateway.proto `AttestationKind`. */
const ATTESTATION_KIND = { InToto: 0, Bundle: 1 } as const;
/** gateway.proto `InTotoSubjectKind`. */
const SUBJECT_KIND = { Self: 0, Raw: 1 } as const;

type Attestations = NonNullable<FrontendResult['attestations']>;

/**
 * A result's attestations as the wire map, each ref through `wireRef` (which registers or checks
 * it). Proto3 zero values (kind InToto, subject kind Self, empty strings) are left unset, as Go
 * marshals them. Undefined when there are none.
 */
export function attestationsToWire(attestations: Attestations | undefined, wireRef: (ref: Ref) => WireRef): Record<string, WireAttestations> | undefined {
  if (attestations === undefined || attestations.size === 0) return undefined;
  const out: Record<string, WireAttestations> = {};
  for (const [key, list] of attestations) out[key] = { attestation: list.map((a) => attestationToWire(a, wireRef)) };
  return out;
}

function attestationToWire(a: FrontendAttestation, wireRef: (ref: Ref) => WireRef): WireAttestation {
  const out: WireAttestation = { ref: wireRef(a.ref) };
  if (a.kind === 'bundle') out.kind = ATTESTATION_KIND.Bundle;
  if (a.metadata !== undefined && a.metadata.size > 0) out.metadata = Object.fromEntries(a.metadata);
  if (a.path !== undefined && a.path !== '') out.path = a.path;
  if (a.predicateType !== undefined && a.predicateType !== '') out.inTotoPredicateType = a.predicateType;
  if (a.subjects !== undefined && a.subjects.length > 0) out.inTotoSubjects = a.subjects.map(subjectToWire);
  return out;
}

function subjectToWire(s: AttestationSubject): WireInTotoSubject {
  const out: WireInTotoSubject = {};
  if (s.kind === 'raw') out.kind = SUBJECT_KIND.Raw;
  if (s.digest !== undefined && s.digest.length > 0) out.digest = [...s.digest];
  if (s.name !== undefined && s.name !== '') out.name = s.name;
  return out;
}

/**
 * The wire map as a result's attestations, each ref through `ref` (an id of this connection; it
 * throws for an unknown one). An attestation without a ref, or with a kind or subject kind
 * v0.11 does not define, is KLN0614. Undefined when there are none.
 */
export function attestationsFromWire(wire: Record<string, WireAttestations> | undefined, ref: (wire: WireRef) => Ref | undefined): Attestations | undefined {
  const out = new Map<string, FrontendAttestation[]>();
  for (const [key, list] of Object.entries(wire ?? {})) {
    const atts = (list.attestation ?? []).map((a) => attestationFromWire(key, a, ref));
    if (atts.length > 0) out.set(key, atts);
  }
  return out.size === 0 ? undefined : out;
}

function attestationFromWire(key: string, a: WireAttestation, resolve: (wire: WireRef) => Ref | undefined): FrontendAttestation {
  const ref = a.ref === undefined ? undefined : resolve(a.ref);
  if (ref === undefined) throw new GatewayError('KLN0614', `attestation of ${key} comes without a ref`);
  const kind = attestationKind(a.kind ?? ATTESTATION_KIND.InToto);
  const metadata = metadataFromWire(a.metadata);
  const subjects = (a.inTotoSubjects ?? []).map(subjectFromWire);
  return {
    kind,
    ref,
    ...(metadata.size === 0 ? {} : { metadata }),
    ...(a.path ? { path: a.path } : {}),
    ...(a.inTotoPredicateType ? { predicateType: a.inTotoPredicateType } : {}),
    ...(subjects.length === 0 ? {} : { subjects }),
  };
}

/** A wire `map<string, bytes>` (a result's or an attestation's metadata) as a Map of plain Uint8Array views (no copy). */
export function metadataFromWire(wire: Record<string, Uint8Array> | undefined): Map<string, Uint8Array> {
  return new Map(Object.entries(wire ?? {}).map(([k, v]) => [k, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)] as const));
}

function attestationKind(kind: number): AttestationKind {
  if (kind === ATTESTATION_KIND.InToto) return 'in-toto';
  if (kind === ATTESTATION_KIND.Bundle) return 'bundle';
  throw new GatewayError('KLN0614', `unknown attestation kind ${kind}`);
}

function subjectFromWire(s: WireInTotoSubject): AttestationSubject {
  const kind = s.kind ?? SUBJECT_KIND.Self;
  if (kind !== SUBJECT_KIND.Self && kind !== SUBJECT_KIND.Raw) throw new GatewayError('KLN0614', `unknown in-toto subject kind ${kind}`);
  return {
    kind: kind === SUBJECT_KIND.Raw ? 'raw' : 'self',
    ...(s.name ? { name: s.name } : {}),
    ...(s.digest !== undefined && s.digest.length > 0 ? { digest: s.digest } : {}),
  };
}
