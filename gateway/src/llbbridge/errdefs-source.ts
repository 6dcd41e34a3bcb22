/**
 * BuildKit's source-location error detail, `errdefs.Source` (solver/errdefs/errdefs.proto:
 * `Source { pb.SourceInfo info = 1; repeated pb.Range ranges = 2; }`), both ways.
 *
 * BuildKit registers it with containerd's typeurl as `errdefs.Source+json` under
 * `github.com/moby/buildkit` (solver/errdefs/vertex.go), and grpcerrors.ToGRPC packs every typed
 * error detail as `Any{type_url: <that URL>, value: json.Marshal(detail)}`: the value is Go's
 * encoding/json of the generated struct (field names from its json tags, `omitempty`, bytes as
 * base64), not protobuf. FromGRPC unpacks it the same way and wraps the error, so buildctl and
 * buildx print the lines around the range from `info.data` (errdefs.Source.Print). kiln sends that
 * JSON form and reads it back; it also reads the protobuf form (a type URL naming the message, as
 * typeurl's protobuf fallback does) from peers that send one.
 */
import type { LLBBridgeCodec, WireAny, WireErrdefsSource } from './messages.js';

/** The Any type URL BuildKit gives errdefs.Source: typeurl's path.Join("github.com/moby/buildkit", "errdefs.Source+json"). */
export const ERRDEFS_SOURCE_TYPE_URL = 'github.com/moby/buildkit/errdefs.Source+json';

/** Proto message names whose type URLs carry the protobuf form of errdefs.Source (older and newer proto packages). */
const PROTO_NAMES: ReadonlySet<string> = new Set(['errdefs.Source', 'moby.buildkit.v1.errdefs.Source']);

/** A point in a source file: 1-based line and column. */
export interface SourcePoint {
  readonly line: number;
  readonly column: number;
}

/** A range of a source file (start and end inclusive). */
export interface SourceRange {
  readonly start: SourcePoint;
  readonly end: SourcePoint;
}

/** What an errdefs.Source says: the file (its name and, when known, its bytes) and the ranges. */
export interface ErrorSource {
  readonly file: string;
  /** The whole file: BuildKit's clients print the lines around the ranges from it. */
  readonly data?: Uint8Array;
  /** `SourceInfo.language` (BuildKit's Dockerfile frontend says `Dockerfile`). */
  readonly language?: string;
  readonly ranges: readonly SourceRange[];
}

/**
 * A pb.Position as Go's encoding/json writes it: BuildKit v0.11's gogo struct tags are `Line` and
 * `Character` (newer protoc-gen-go ones `line`, `character`; Go decodes keys case-insensitively),
 * zero values left out. Character is 0-based: kiln's column 1 is character 0.
 */
function positionJson(p: SourcePoint): Record<string, number> {
  const out: Record<string, number> = {};
  if (p.line !== 0) out['Line'] = p.line;
  if (p.column > 1) out['Character'] = p.column - 1;
  return out;
}

/** The errdefs.Source detail for `source`, in the form BuildKit sends and reads (JSON, {@link ERRDEFS_SOURCE_TYPE_URL}). */
export function errdefsSourceDetail(source: ErrorSource): WireAny {
  // Field order of the Go structs: Source{info, ranges}, SourceInfo{filename, data, definition, language}.
  const info: Record<string, string> = {};
  if (source.file !== '') info['filename'] = source.file;
  if (source.data !== undefined && source.data.byteLength > 0) info['data'] = Buffer.from(source.data).toString('base64');
  if (source.language !== undefined && source.language !== '') info['language'] = source.language;
  const json: Record<string, unknown> = { info };
  if (source.ranges.length > 0) json['ranges'] = source.ranges.map((r) => ({ start: positionJson(r.start), end: positionJson(r.end) }));
  return { type_url: ERRDEFS_SOURCE_TYPE_URL, value: new TextEncoder().encode(JSON.stringify(json)) };
}

/** `obj[name]`, else the first key equal to it ignoring case (Go's encoding/json matches keys so). */
function field(obj: unknown, name: string): unknown {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return undefined;
  const rec = obj as Record<string, unknown>;
  if (name in rec) return rec[name];
  const lower = name.toLowerCase();
  const key = Object.keys(rec).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : rec[key];
}

function int(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : v === undefined || v === null ? 0 : undefined;
}

/** A pb.Position (JSON or protobuf object) as a 1-based point; undefined without a valid line. */
function pointFrom(p: unknown): SourcePoint | undefined {
  const line = int(field(p, 'Line'));
  const character = int(field(p, 'Character'));
  if (line === undefined || line < 1 || character === undefined || character < 0) return undefined;
  return { line, column: character + 1 };
}

function rangesFrom(ranges: unknown): SourceRange[] {
  if (!Array.isArray(ranges)) return [];
  const out: SourceRange[] = [];
  for (const r of ranges) {
    const start = pointFrom(field(r, 'start'));
    if (start === undefined) continue;
    // BuildKit treats an end before the start as the start's line (errdefs/source.go containsLine).
    const end = pointFrom(field(r, 'end'));
    out.push({ start, end: end === undefined || end.line < start.line ? start : end });
  }
  return out;
}

function fromJson(value: Uint8Array): ErrorSource | undefined {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(value));
  } catch {
    return undefined;
  }
  const info = field(json, 'info');
  const filename = field(info, 'filename');
  const data = field(info, 'data');
  const language = field(info, 'language');
  return {
    file: typeof filename === 'string' ? filename : '',
    ...(typeof data === 'string' && data !== '' ? { data: new Uint8Array(Buffer.from(data, 'base64')) } : {}),
    ...(typeof language === 'string' && language !== '' ? { language } : {}),
    ranges: rangesFrom(field(json, 'ranges')),
  };
}

function fromProto(codec: LLBBridgeCodec, value: Uint8Array): ErrorSource | undefined {
  let m: WireErrdefsSource;
  try {
    m = codec.decode('ErrdefsSource', value);
  } catch {
    return undefined;
  }
  const data = m.info?.data;
  return {
    file: m.info?.filename ?? '',
    ...(data !== undefined && data.byteLength > 0 ? { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) } : {}),
    ...(m.info?.language ? { language: m.info.language } : {}),
    ranges: rangesFrom(m.ranges),
  };
}

/** The errdefs.Source a status detail carries (JSON or protobuf form), else undefined. */
export function errdefsSourceFromDetail(codec: LLBBridgeCodec, detail: { readonly typeUrl: string; readonly value: Uint8Array }): ErrorSource | undefined {
  if (detail.typeUrl === ERRDEFS_SOURCE_TYPE_URL) return fromJson(detail.value);
  const name = detail.typeUrl.slice(detail.typeUrl.lastIndexOf('/') + 1);
  return PROTO_NAMES.has(name) ? fromProto(codec, detail.value) : undefined;
}

/** Line `line` (1-based) of `data` without its line break, when the file has it. */
export function sourceLine(data: Uint8Array, line: number): string | undefined {
  const text = new TextDecoder().decode(data).split('\n')[line - 1];
  return text?.replace(/\r$/, '');
}
