import type { Digest } from '../content/digest.js';
import type { ContentStore } from '../content/store.js';
import { goJsonBytes } from '../image/manifest.js';
import { MediaTypes } from '../image/media-types.js';
import { formatPlatform, normalizePlatform } from '../image/platform.js';
import type { Descriptor, Platform } from '../image/types.js';
import { parseReference } from '../registry/reference.js';

/**
 * One in-toto attestation of a platform's result, before it has a subject: the predicate type
 * and the predicate as compact Go-style JSON bytes (written into the statement as they are, like
 * BuildKit's `json.RawMessage` predicate).
 */
export interface InTotoAttestation {
  readonly predicateType: string;
  readonly predicate: Uint8Array;
  /**
   * File name for `type=local`/`type=tar` outputs (BuildKit's attestation `Path`: `provenance.json`).
   */
  readonly path: string;
  /**
   * The subjects the attestation names itself (BuildKit's `InTotoSubject`s: `raw` ones as given,
   * `'self'` for the exported image's default subjects). Absent or empty: the default subjects
   * (`InTotoSubjectKindSelf`), which is what provenance and a scanner's `"subject":[]` get.
   */
  readonly subjects?: ReadonlyArray<InTotoSubject | 'self'>;
}

/** A statement subject (`intoto.Subject`): a name and its digests by algorithm. */
export interface InTotoSubject {
  readonly name: string;
  readonly digest: Readonly<Record<string, string>>;
}

/** Wire strings of attestation storage (BuildKit docs/attestations/attestation-storage.md). */
export const Attestation = {
  statementType: 'https://in-toto.io/Statement/v0.1',
  /** Layer media type of a statement (`MediaTypeDockerSchema2AttestationType`). */
  layerMediaType: 'application/vnd.in-toto+json',
  predicateTypeAnnotation: 'in-toto.io/predicate-type',
  referenceDigestAnnotation: 'vnd.docker.reference.digest',
  referenceTypeAnnotation: 'vnd.docker.reference.type',
  referenceTypeAttestation: 'attestation-manifest',
  /** The platform of an attestation manifest in the index (`intotoPlatform`). */
  platform: { architecture: 'unknown', os: 'unknown' } as Platform,
} as const;

/** The image writer's `json.MarshalIndent(…, "", "   ")` of manifests (as image-writer.ts writes them). */
const MANIFEST_INDENT = '   ';

/** True for the index entry of an attestation manifest (by its reference-type annotation). */
export function isAttestationManifest(d: Descriptor): boolean {
  return d.annotations?.[Attestation.referenceTypeAnnotation] === Attestation.referenceTypeAttestation;
}

/** `sha256:abc` → `{ sha256: 'abc' }` (`result.ToDigestMap`). */
export function digestSet(d: Digest | string): Record<string, string> {
  const i = d.indexOf(':');
  return { [d.slice(0, i)]: d.slice(i + 1) };
}

/**
 * The in-toto statement bytes as BuildKit's exporters marshal `intoto.Statement` (json.Marshal:
 * compact, `_type`, `predicateType`, `subject`, `predicate`; HTML characters escaped, also in the
 * raw predicate). With `indent`, as `json.MarshalIndent(stmt, "", indent)` (local/tar outputs).
 */
export function statementBytes(att: InTotoAttestation, subjects: ReadonlyArray<InTotoSubject>, indent?: string): Buffer {
  // exporter/attestation makeInTotoStatement: no subjects means Self; Self expands to the defaults.
  const own = att.subjects === undefined || att.subjects.length === 0 ? ['self' as const] : att.subjects;
  const all = own.flatMap((s) => (s === 'self' ? subjects : [s]));
  const head = goJsonBytes({ _type: Attestation.statementType, predicateType: att.predicateType, subject: all.map((s) => ({ name: s.name, digest: s.digest })) }).toString('utf8');
  const compact = `${head.slice(0, -1)},"predicate":${compactRaw(att.predicate)}}`;
  return Buffer.from(indent === undefined ? compact : goIndent(compact, indent), 'utf8');
}

/** The raw predicate text with Go's HTML escaping (it is already compact JSON). */
function compactRaw(raw: Uint8Array): string {
  return Buffer.from(raw)
    .toString('utf8')
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Go's `json.Indent(dst, src, "", indent)` of compact JSON text: one value per line, `": "` after
 * keys, empty objects and arrays kept as `{}` and `[]`.
 */
export function goIndent(src: string, indent: string): string {
  let out = '';
  let depth = 0;
  let inString = false;
  let needIndent = false;
  const nl = (): string => `\n${indent.repeat(depth)}`;
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (inString) {
      out += c;
      if (c === '\\') out += src[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (needIndent && c !== ']' && c !== '}') {
      needIndent = false;
      depth++;
      out += nl();
    }
    switch (c) {
      case '"':
        inString = true;
        out += c;
        break;
      case '{':
      case '[':
        out += c;
        needIndent = true;
        break;
      case '}':
      case ']':
        if (needIndent) needIndent = false; // empty: `{}` / `[]`
        else {
          depth--;
          out += nl();
        }
        out += c;
        break;
      case ',':
        out += `,${nl()}`;
        break;
      case ':':
        out += ': ';
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Go's net/url escaping, used by packageurl-go (the version BuildKit v0.11 vendors).
const UNRESERVED = /[A-Za-z0-9\-_.~]/;
function escapeBytes(s: string, keep: (c: string) => boolean, space?: string): string {
  let out = '';
  for (const ch of s) {
    if (ch.length === 1 && UNRESERVED.test(ch)) out += ch;
    else if (ch === ' ' && space !== undefined) out += space;
    else if (ch.length === 1 && keep(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
/** Go `url.PathEscape`. */
const pathEscape = (s: string): string => escapeBytes(s, (c) => '$&+:=@'.includes(c));
/** Go `url.QueryEscape`. */
const queryEscape = (s: string): string => escapeBytes(s, () => false, '+');

/**
 * An image reference and platform as a package URL, as BuildKit's `purl.RefToPURL` writes it:
 * `pkg:docker/NAMESPACE/NAME@TAG?digest=…&platform=…` with the familiar name (`busybox`,
 * `127.0.0.1%3A5000/app`), `latest` for a name without tag or digest, the digest as a qualifier,
 * the normalized platform last (`linux%2Famd64`).
 */
export function imagePurl(ref: string, platform?: Platform): string {
  const r = parseReference(ref);
  const tag = r.tag ?? (r.digest === undefined ? 'latest' : undefined);
  // reference.FamiliarName: docker.io and its library/ prefix are dropped.
  const familiar = r.domain === 'docker.io' ? (r.path.startsWith('library/') && !r.path.slice(8).includes('/') ? r.path.slice(8) : r.path) : `${r.domain}/${r.path}`;
  const parts = familiar.split('/');
  const name = parts.pop() ?? '';
  let purl = `pkg:docker/${parts.map(queryEscape).join('/')}${parts.length > 0 ? '/' : ''}${queryEscape(name)}`;
  if (tag !== undefined) purl += `@${pathEscape(tag)}`;
  const q: string[] = [];
  if (r.digest !== undefined) q.push(`digest=${pathEscape(r.digest)}`);
  if (platform !== undefined) q.push(`platform=${pathEscape(formatPlatform(normalizePlatform(platform)))}`);
  return q.length > 0 ? `${purl}?${q.join('&')}` : purl;
}

/**
 * The default subjects of a platform's image (BuildKit's image writer): each name as a purl with
 * the platform, digest the image manifest's. No names, no subjects (BuildKit v0.11 writes `[]`).
 */
export function imageSubjects(names: ReadonlyArray<string>, platform: Platform, manifest: Digest): InTotoSubject[] {
  return names.filter((n) => n !== '').map((n) => ({ name: imagePurl(n, platform), digest: digestSet(manifest) }));
}

/**
 * Writes one attestation manifest for an image manifest (BuildKit's commitAttestationsManifest):
 * each statement a layer (`application/vnd.in-toto+json`, annotated with its predicate type),
 * a config `{"architecture":"unknown","os":"unknown","config":{},"rootfs":{…}}` whose diff_ids
 * are the statements' digests, OCI media types. Returns the index entry: annotated with the
 * image manifest digest and `attestation-manifest`, platform `unknown/unknown`.
 */
export async function writeAttestationManifest(
  store: ContentStore,
  target: Digest,
  statements: ReadonlyArray<{ readonly predicateType: string; readonly bytes: Uint8Array }>,
): Promise<Descriptor> {
  const layers: Descriptor[] = [];
  for (const s of statements) {
    const info = await store.writeBlob(s.bytes);
    layers.push({ mediaType: Attestation.layerMediaType, digest: info.digest, size: info.size, annotations: { [Attestation.predicateTypeAnnotation]: s.predicateType } });
  }
  // ocispecs.Image (image-spec v1.1.0-rc2) marshaled: Platform inline, `config` always there
  // (a struct with omitempty), rootfs type and diff_ids.
  const config = goJsonBytes({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } });
  const c = await store.writeBlob(config);
  const manifest = {
    mediaType: MediaTypes.ociManifest,
    schemaVersion: 2,
    config: { mediaType: MediaTypes.ociConfig, digest: c.digest, size: c.size },
    layers,
  };
  const m = await store.writeBlob(goJsonBytes(manifest, MANIFEST_INDENT));
  return {
    mediaType: MediaTypes.ociManifest,
    digest: m.digest,
    size: m.size,
    annotations: { [Attestation.referenceDigestAnnotation]: target, [Attestation.referenceTypeAnnotation]: Attestation.referenceTypeAttestation },
    platform: Attestation.platform,
  };
}
