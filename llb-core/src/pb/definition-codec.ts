/**
 * Byte-exact codec for `pb.Definition`, `pb.OpMetadata` and the source map messages.
 * gogo quirks reproduced: `Definition.metadata` values and `Range.start/end` are
 * non-nullable (always written); map<string,bool> values are written even when false.
 */
import type { Digest } from '../digest.js';
import { unsafeDigest } from '../digest.js';
import { LlbError } from '../errors.js';
import type {
  Definition,
  Location,
  Locations,
  OpMetadata,
  Position,
  ProgressGroup,
  Range,
  Source,
  SourceInfo,
} from '../op.js';
import { PbWriter, sortedKeys } from './writer.js';
import {
  type Reader,
  newReader,
  readBool,
  readBytes,
  readBytesView,
  readInt32,
  readLength,
  readString,
  readTag,
  skipField,
  wrongWireType,
} from './reader.js';
import { guard, setDefinitionHooks } from './op-codec.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function endCheck(r: Reader, end: number, what: string): void {
  if (r.pos !== end) throw new LlbError('LLB_DECODE', `${what}: field overruns the message end`);
}
/** Skips an unknown field, which is dropped as BuildKit's gogo codec drops it (see common.ts `other`). */
function other(r: Reader, tag: number, known: readonly number[], what: string): void {
  if (known.includes(tag >>> 3)) wrongWireType(what, tag);
  skipField(r, tag & 7);
}

// ---------------------------------------------------------------------------
// OpMetadata

function decProgressGroup(r: Reader, end: number): ProgressGroup {
  const p: Mutable<ProgressGroup> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) p.id = readString(r);
    else if (tag === 18) p.name = readString(r);
    else if (tag === 24) p.weak = readBool(r);
    else other(r, tag, [1, 2, 3], 'ProgressGroup');
  }
  endCheck(r, end, 'ProgressGroup');
  return p;
}

/** Decodes an OpMetadata body occupying `[r.pos, end)`. */
export function decodeOpMetadataFrom(r: Reader, end: number): OpMetadata {
  const m: Mutable<OpMetadata> = {};
  let desc: Map<string, string> | undefined;
  let caps: Map<string, boolean> | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 8:
        m.ignoreCache = readBool(r);
        break;
      case 18: {
        const e = readLength(r);
        let k = '';
        let v = '';
        while (r.pos < e) {
          const t = readTag(r);
          if (t === 10) k = readString(r);
          else if (t === 18) v = readString(r);
          else other(r, t, [1, 2], 'description entry');
        }
        endCheck(r, e, 'description entry');
        (desc ??= new Map()).set(k, v);
        break;
      }
      case 34: {
        const e = readLength(r);
        let value = false;
        while (r.pos < e) {
          const t = readTag(r);
          if (t === 8) value = readBool(r);
          else other(r, t, [1], 'ExportCache');
        }
        endCheck(r, e, 'ExportCache');
        m.exportCache = value ? { value } : {};
        break;
      }
      case 42: {
        const e = readLength(r);
        let k = '';
        let v = false;
        while (r.pos < e) {
          const t = readTag(r);
          if (t === 10) k = readString(r);
          else if (t === 16) v = readBool(r);
          else other(r, t, [1, 2], 'caps entry');
        }
        endCheck(r, e, 'caps entry');
        (caps ??= new Map()).set(k, v);
        break;
      }
      case 50:
        m.progressGroup = decProgressGroup(r, readLength(r));
        break;
      default:
        other(r, tag, [1, 2, 4, 5, 6], 'OpMetadata');
    }
  }
  endCheck(r, end, 'OpMetadata');
  if (desc) m.description = desc;
  if (caps) m.caps = caps;
  return m;
}

/** Encodes an OpMetadata body. */
export function encodeOpMetadataTo(w: PbWriter, m: OpMetadata): void {
  if (m.ignoreCache) w.bool(1, true);
  if (m.description && m.description.size > 0) {
    for (const key of sortedKeys(m.description)) {
      const k = w.begin(2);
      w.string(1, key);
      w.string(2, m.description.get(key) as string);
      w.end(k);
    }
  }
  if (m.exportCache) {
    const k = w.begin(4);
    if (m.exportCache.value) w.bool(1, true);
    w.end(k);
  }
  if (m.caps && m.caps.size > 0) {
    for (const key of sortedKeys(m.caps)) {
      const k = w.begin(5);
      w.string(1, key);
      w.bool(2, m.caps.get(key) === true);
      w.end(k);
    }
  }
  if (m.progressGroup) {
    const k = w.begin(6);
    const p = m.progressGroup;
    if (p.id) w.string(1, p.id);
    if (p.name) w.string(2, p.name);
    if (p.weak) w.bool(3, true);
    w.end(k);
  }
}

// ---------------------------------------------------------------------------
// Source maps

function decPosition(r: Reader, end: number): Position {
  const p: Mutable<Position> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 8) p.line = readInt32(r);
    else if (tag === 16) p.character = readInt32(r);
    else other(r, tag, [1, 2], 'Position');
  }
  endCheck(r, end, 'Position');
  return p;
}
function encPosition(w: PbWriter, field: number, p: Position): void {
  const k = w.begin(field);
  if (p.line) w.int(1, p.line);
  if (p.character) w.int(2, p.character);
  w.end(k);
}
function decRange(r: Reader, end: number): Range {
  let start: Position = {};
  let stop: Position = {};
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) start = decPosition(r, readLength(r));
    else if (tag === 18) stop = decPosition(r, readLength(r));
    else other(r, tag, [1, 2], 'Range');
  }
  endCheck(r, end, 'Range');
  return { start, end: stop };
}
function decLocation(r: Reader, end: number): Location {
  const l: Mutable<Location> = {};
  let ranges: Range[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 8) l.sourceIndex = readInt32(r);
    else if (tag === 18) (ranges ??= []).push(decRange(r, readLength(r)));
    else other(r, tag, [1, 2], 'Location');
  }
  endCheck(r, end, 'Location');
  if (ranges) l.ranges = ranges;
  return l;
}
function decLocations(r: Reader, end: number): Locations {
  let locations: Location[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) (locations ??= []).push(decLocation(r, readLength(r)));
    else other(r, tag, [1], 'Locations');
  }
  endCheck(r, end, 'Locations');
  return locations ? { locations } : {};
}
function decSourceInfo(r: Reader, end: number): SourceInfo {
  const s: Mutable<SourceInfo> = {};
  while (r.pos < end) {
    const tag = readTag(r);
    switch (tag) {
      case 10: s.filename = readString(r); break;
      case 18: s.data = readBytes(r); break;
      case 26: s.definition = decodeDefinitionFrom(r, readLength(r)); break;
      case 34: s.language = readString(r); break;
      default: other(r, tag, [1, 2, 3, 4], 'SourceInfo');
    }
  }
  endCheck(r, end, 'SourceInfo');
  return s;
}
function decSource(r: Reader, end: number): Source {
  const s: Mutable<Source> = {};
  let locations: Map<string, Locations> | undefined;
  let infos: SourceInfo[] | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) {
      const e = readLength(r);
      let k = '';
      let v: Locations | undefined;
      while (r.pos < e) {
        const t = readTag(r);
        if (t === 10) k = readString(r);
        else if (t === 18) v = decLocations(r, readLength(r));
        else other(r, t, [1, 2], 'locations entry');
      }
      endCheck(r, e, 'locations entry');
      (locations ??= new Map()).set(k, v ?? {});
    } else if (tag === 18) (infos ??= []).push(decSourceInfo(r, readLength(r)));
    else other(r, tag, [1, 2], 'Source');
  }
  endCheck(r, end, 'Source');
  if (locations) s.locations = locations;
  if (infos) s.infos = infos;
  return s;
}
function encSource(w: PbWriter, s: Source): void {
  if (s.locations && s.locations.size > 0) {
    for (const key of sortedKeys(s.locations)) {
      const k = w.begin(1);
      w.string(1, key);
      const k2 = w.begin(2);
      const locs = s.locations.get(key) as Locations;
      if (locs.locations) {
        for (const l of locs.locations) {
          const k3 = w.begin(1);
          if (l.sourceIndex) w.int(1, l.sourceIndex);
          if (l.ranges) {
            for (const rg of l.ranges) {
              const k4 = w.begin(2);
              encPosition(w, 1, rg.start);
              encPosition(w, 2, rg.end);
              w.end(k4);
            }
          }
          w.end(k3);
        }
      }
      w.end(k2);
      w.end(k);
    }
  }
  if (s.infos) {
    for (const info of s.infos) {
      const k = w.begin(2);
      if (info.filename) w.string(1, info.filename);
      if (info.data && info.data.length > 0) w.bytes(2, info.data);
      if (info.definition) {
        const k2 = w.begin(3);
        encodeDefinitionTo(w, info.definition);
        w.end(k2);
      }
      if (info.language) w.string(4, info.language);
      w.end(k);
    }
  }
}

// ---------------------------------------------------------------------------
// Definition

/** Decodes a Definition body occupying `[r.pos, end)`. */
export function decodeDefinitionFrom(r: Reader, end: number, owned = false): Definition {
  const def: Uint8Array[] = [];
  const metadata = new Map<Digest, OpMetadata>();
  let source: Source | undefined;
  while (r.pos < end) {
    const tag = readTag(r);
    if (tag === 10) def.push(owned ? readBytesView(r) : readBytes(r));
    else if (tag === 18) {
      const e = readLength(r);
      let k = '';
      let v: OpMetadata = {};
      while (r.pos < e) {
        const t = readTag(r);
        if (t === 10) k = readString(r);
        else if (t === 18) v = decodeOpMetadataFrom(r, readLength(r));
        else other(r, t, [1, 2], 'metadata entry');
      }
      endCheck(r, e, 'metadata entry');
      metadata.set(unsafeDigest(k), v);
    } else if (tag === 26) source = decSource(r, readLength(r));
    else other(r, tag, [1, 2, 3], 'Definition');
  }
  endCheck(r, end, 'Definition');
  return source ? { def, metadata, source } : { def, metadata };
}

/** Encodes a Definition body. */
export function encodeDefinitionTo(w: PbWriter, d: Definition): void {
  for (const b of d.def) w.bytes(1, b);
  if (d.metadata.size > 0) {
    for (const key of sortedKeys(d.metadata)) {
      const k = w.begin(2);
      w.string(1, key);
      const k2 = w.begin(2);
      encodeOpMetadataTo(w, d.metadata.get(key as Digest) as OpMetadata);
      w.end(k2);
      w.end(k);
    }
  }
  if (d.source) {
    const k = w.begin(3);
    encSource(w, d.source);
    w.end(k);
  }
}

setDefinitionHooks({ encode: encodeDefinitionTo, decode: decodeDefinitionFrom });

/**
 * Decodes a marshaled `pb.Definition` (what `llb.WriteTo` writes and `buildctl build`
 * reads). Only the wire format is checked; use {@link validateDefinition} for the graph.
 * Throws {@link LlbError} on malformed bytes.
 */
export function decodeDefinition(bytes: Uint8Array): Definition {
  // One private copy of the input; the op byte strings in `def` are views into it.
  const own = new Uint8Array(bytes);
  return guard('decode definition', () => decodeDefinitionFrom(newReader(own), own.length, true));
}

/** Marshals a Definition exactly as BuildKit does (metadata sorted by digest). */
export function encodeDefinition(d: Definition): Uint8Array {
  // A reused scratch buffer (encoding is synchronous), then one exact-size copy.
  const w = defWriter;
  w.reset();
  encodeDefinitionTo(w, d);
  const out = w.finish();
  if (w.buf.length > 1 << 24) defWriter = new PbWriter(1 << 16);
  return out;
}

let defWriter = new PbWriter(1 << 16);

/** Decodes a marshaled `pb.OpMetadata`. */
export function decodeOpMetadata(bytes: Uint8Array): OpMetadata {
  return guard('decode op metadata', () => decodeOpMetadataFrom(newReader(bytes), bytes.length));
}

/** Marshals an OpMetadata. */
export function encodeOpMetadata(m: OpMetadata): Uint8Array {
  const w = new PbWriter(128);
  encodeOpMetadataTo(w, m);
  return w.finish();
}
