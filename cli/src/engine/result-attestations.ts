import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import { AttestationMetadataKey, type AttestationKind, type AttestationSubject } from '@kiln/llb-core';
import type { GatewayResult } from '@kiln/gateway';
import { digestSet, type InTotoAttestation, type InTotoSubject } from '@kiln/runtime';
import { EngineError } from './errors.js';
import { goQuote } from './provenance-json.js';
import { SnapshotRef } from './snapshot-ref.js';

/** A frontend attestation whose ref is solved (BuildKit's exporter.Attestation with its ref). */
export interface SolvedAttestation {
  readonly kind: AttestationKind;
  readonly metadata: ReadonlyMap<string, Uint8Array>;
  readonly ref: SnapshotRef;
  /** Path in `ref` (`''` is its root). */
  readonly path: string;
  readonly predicateType?: string;
  readonly subjects: readonly AttestationSubject[];
}

/**
 * The gateway result's attestations with their refs as snapshots (BuildKit's exporter gets them
 * solved with the result): from an in-process frontend and from a frontend image alike.
 */
export function solveAttestations(attestations: GatewayResult['attestations']): Map<string, SolvedAttestation[]> {
  const out = new Map<string, SolvedAttestation[]>();
  for (const [key, list] of attestations) {
    const solved: SolvedAttestation[] = [];
    for (const a of list) {
      if (!(a.ref instanceof SnapshotRef)) throw new EngineError('KLN0704', `attestation of ${key}: its ref is not a snapshot of this build`);
      solved.push({
        kind: a.kind,
        metadata: a.metadata ?? new Map(),
        ref: a.ref,
        path: a.path ?? '',
        ...(a.predicateType === undefined ? {} : { predicateType: a.predicateType }),
        subjects: a.subjects ?? [],
      });
    }
    out.set(key, solved);
  }
  return out;
}

const SLSA_PREFIX = 'https://slsa.dev/provenance/';

/**
 * BuildKit's exporter `attestation.Unbundle` (v0.11): `in-toto` attestations pass through (read
 * from their path), each `bundle` becomes one attestation per entry of its directory (sorted by
 * name): an in-toto statement whose predicate type must equal the bundle's when it names one, whose
 * subjects become raw subjects, whose predicate is written again as Go's `json.Marshal` of the
 * decoded value (keys sorted, compact), path `<bundle path>/<file>`, the bundle's metadata. A
 * frontend may not set or bundle provenance. Then the core SBOM (`sbom-core` metadata naming
 * the file's stem) goes first, the rest keeping their order.
 */
export async function unbundleAttestations(attestations: readonly SolvedAttestation[]): Promise<InTotoAttestation[]> {
  const out: { att: InTotoAttestation; core: boolean }[] = [];
  for (const a of attestations) {
    if (a.kind === 'in-toto') {
      if (a.predicateType?.startsWith(SLSA_PREFIX) === true) throw new EngineError('KLN0704', 'frontend may not set provenance attestations');
      if (a.path === '') throw new EngineError('KLN0704', 'attestation does not have set path');
      const file = await scopedPath(await a.ref.path(), a.path);
      if (!(await stat(file)).isFile()) throw new EngineError('KLN0704', `attestation ${a.path} is not a regular file`);
      const predicate = Buffer.from(goCompact(await readFile(file, 'utf8'), a.path), 'utf8');
      out.push({ att: { predicateType: a.predicateType ?? '', predicate, path: a.path, subjects: a.subjects.map(subjectOf) }, core: isCore(a.metadata, a.path) });
      continue;
    }
    const root = await a.ref.path();
    const dir = await scopedPath(root, a.path);
    // os.ReadDir: sorted by file name (bytes).
    const names = (await readdir(dir)).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    for (const name of names) {
      const file = await scopedPath(root, posix.join(a.path, name));
      // Only regular files are statements: a named pipe the scanner left would block the read.
      if (!(await stat(file)).isFile()) throw new EngineError('KLN0704', `attestation bundle entry ${posix.join(a.path, name)} is not a regular file`, { hint: 'the SBOM generator must write one in-toto statement (JSON) per file to $BUILDKIT_SCAN_DESTINATION' });
      let stmt: unknown;
      try {
        stmt = JSON.parse(await readFile(file, 'utf8'));
      } catch (cause) {
        throw new EngineError('KLN0704', `cannot decode in-toto statement ${posix.join(a.path, name)} of the attestation bundle`, { cause, hint: 'the SBOM generator must write one in-toto statement (JSON) per file to $BUILDKIT_SCAN_DESTINATION' });
      }
      const s = statementOf(stmt, name);
      if (a.predicateType !== undefined && a.predicateType !== '' && s.predicateType !== a.predicateType) {
        throw new EngineError('KLN0704', `bundle entry ${s.predicateType} does not match required predicate type ${a.predicateType}`, { hint: `the scanner wrote ${name}` });
      }
      if (s.predicateType.startsWith(SLSA_PREFIX)) throw new EngineError('KLN0704', 'frontend may not bundle provenance attestations');
      const path = posix.join(a.path, name);
      out.push({
        att: { predicateType: s.predicateType, predicate: Buffer.from(goMarshal(s.predicate), 'utf8'), path, subjects: s.subjects },
        core: isCore(a.metadata, path),
      });
    }
  }
  return [...out.filter((x) => x.core), ...out.filter((x) => !x.core)].map((x) => x.att);
}

/** unbundle.go `sort`: the attestation's path up to its first `.` is the `sbom-core` name. */
function isCore(metadata: ReadonlyMap<string, Uint8Array>, path: string): boolean {
  const core = metadata.get(AttestationMetadataKey.sbomCore);
  if (core === undefined) return false;
  const dot = path.indexOf('.');
  return (dot < 0 ? path : path.slice(0, dot)) === new TextDecoder().decode(core);
}

function subjectOf(s: AttestationSubject): InTotoSubject | 'self' {
  if (s.kind === 'self') return 'self';
  return { name: s.name === undefined || s.name === '' ? '_' : s.name, digest: digestMap(s.digest ?? []) };
}

/** `result.ToDigestMap`: algorithm → encoded, keys sorted as Go marshals a map. */
function digestMap(digests: readonly string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (const d of [...digests].sort()) Object.assign(m, digestSet(d));
  return m;
}

/** The fields of `intoto.Statement` the exporter reads from a bundle file. */
function statementOf(v: unknown, name: string): { predicateType: string; subjects: InTotoSubject[]; predicate: unknown } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EngineError('KLN0704', `cannot decode in-toto statement ${name}: not a JSON object`);
  const o = v as Record<string, unknown>;
  const predicateType = typeof o['predicateType'] === 'string' ? o['predicateType'] : '';
  const subjects: InTotoSubject[] = [];
  for (const s of Array.isArray(o['subject']) ? (o['subject'] as unknown[]) : []) {
    const so = typeof s === 'object' && s !== null ? (s as Record<string, unknown>) : {};
    const d = typeof so['digest'] === 'object' && so['digest'] !== null ? (so['digest'] as Record<string, unknown>) : {};
    const digests = Object.entries(d)
      .filter((e): e is [string, string] => typeof e[1] === 'string')
      .map(([alg, enc]) => `${alg}:${enc}`);
    subjects.push({ name: typeof so['name'] === 'string' && so['name'] !== '' ? so['name'] : '_', digest: digestMap(digests) });
  }
  return { predicateType, subjects, predicate: o['predicate'] ?? null };
}

/**
 * Go's `json.Marshal` of a value decoded into `interface{}`: object keys sorted (byte order),
 * strings escaped as encoding/json does, numbers as float64 (`strconv` shortest form, exponent
 * below 1e-6 and from 1e21).
 */
export function goMarshal(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'string') return goQuote(v);
  if (Array.isArray(v)) return `[${v.map(goMarshal).join(',')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${goQuote(k)}:${goMarshal((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return 'null';
}

/**
 * What Go's `json.Marshal` makes of a `json.RawMessage` predicate (the exporter's statement):
 * one JSON value, whitespace outside strings removed, key order and number text kept. Anything
 * else fails, as the marshal does; written as it is, a file like `{},"subject":[…]` would add
 * keys to the statement.
 */
function goCompact(text: string, path: string): string {
  try {
    JSON.parse(text);
  } catch (cause) {
    throw new EngineError('KLN0704', `attestation ${path}: the predicate is not one JSON value`, { cause, hint: 'an in-toto attestation file holds the predicate as JSON' });
  }
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c !== ' ' && c !== '\t' && c !== '\n' && c !== '\r') out += c;
  }
  return out;
}

/**
 * `fs.RootPath(root, p)`: `p` inside `root`, symlinks followed but never out of it.
 */
async function scopedPath(root: string, p: string): Promise<string> {
  const clean = posix.normalize(`/${p}`).slice(1);
  const full = clean === '' ? root : join(root, ...clean.split('/'));
  const rootReal = await realpath(root);
  let real: string;
  try {
    real = await realpath(full);
  } catch (cause) {
    throw new EngineError('KLN0704', `attestation path ${p === '' ? '/' : p} not found in its result`, { cause });
  }
  if (real !== rootReal && !real.startsWith(rootReal + sep)) throw new EngineError('KLN0704', `attestation path ${p} leaves its result`);
  return real;
}
