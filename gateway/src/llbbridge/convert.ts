/**
 * Between LLBBridge's wire messages and llb-core's frontend types: fsutil Stat and FileStat,
 * pb.Platform and Platform, WarnRequest and FrontendWarning, and the capabilities kiln serves.
 */
import { normalizePlatform, type FileStat, type FrontendResult, type FrontendWarning, type Platform, type Ref } from '@kiln/llb-core';
import { attestationsFromWire, metadataFromWire } from './attestations.js';
import type { WireAPICap, WirePlatform, WireRef, WireResult, WireStat, WireWarnRequest } from './messages.js';

/**
 * The frontend API caps kiln's LLBBridge serves (frontend/gateway/pb/caps.go IDs), all enabled.
 * Left out, so a frontend that checks them fails early: `solve.inlinereturn` (Final),
 * `importcaches`, `frontend.caps`, `source.metaresolver`. `gateway.evaluate` (the Evaluate RPC, a
 * v0.12 ID) is served too. The container caps (`EXEC_CAPS`) are added when the client has
 * `newContainer`.
 */
export const KILN_FRONTEND_CAPS: readonly string[] = [
  'solve.base',
  'resolveimage',
  'resolveimage.resolvemode',
  'readfile',
  'return',
  'returnmap',
  'readdir',
  'statfile',
  'proto.refarray',
  'reference.output',
  'frontend.inputs',
  'gateway.solve.metadata',
  'gateway.solve.evaluate',
  'gateway.evaluate',
  'gateway.warnings',
];

/** Caps as `APICap` messages, enabled. */
export function capsToWire(ids: readonly string[]): WireAPICap[] {
  return ids.map((ID) => ({ ID, Enabled: true }));
}

/** The IDs of the enabled caps of a Pong. */
export function enabledCaps(caps: readonly WireAPICap[] | undefined): Set<string> {
  return new Set((caps ?? []).filter((c) => c.Enabled === true && c.ID !== undefined).map((c) => c.ID ?? ''));
}

/** A FileStat as fsutil's `types.Stat`. Both carry Go `os.FileMode` bits in `mode`. */
export function statToWire(s: FileStat): WireStat {
  const out: WireStat = { path: s.path, mode: s.mode >>> 0, uid: s.uid, gid: s.gid, size: s.size, modTime: s.modTime.toString() };
  if (s.linkname !== undefined && s.linkname !== '') out.linkname = s.linkname;
  return out;
}

/** fsutil's `types.Stat` as a FileStat (devmajor/devminor and xattrs have no place in it). */
export function statFromWire(s: WireStat): FileStat {
  const out = {
    path: s.path ?? '',
    mode: s.mode ?? 0,
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    size: Number(s.size ?? 0),
    modTime: BigInt(s.modTime ?? 0),
  };
  return s.linkname !== undefined && s.linkname !== '' ? { ...out, linkname: s.linkname } : out;
}

/** A Platform as `pb.Platform`. */
export function platformToWire(p: Platform): WirePlatform {
  const out: WirePlatform = { Architecture: p.architecture, OS: p.os };
  if (p.variant) out.Variant = p.variant;
  if (p.osVersion) out.OSVersion = p.osVersion;
  if (p.osFeatures && p.osFeatures.length > 0) out.OSFeatures = [...p.osFeatures];
  return out;
}

/** `pb.Platform` as a (normalized) Platform. */
export function platformFromWire(p: WirePlatform): Platform {
  return normalizePlatform({
    os: p.OS ?? '',
    architecture: p.Architecture ?? '',
    ...(p.Variant ? { variant: p.Variant } : {}),
    ...(p.OSVersion ? { osVersion: p.OSVersion } : {}),
    ...(p.OSFeatures && p.OSFeatures.length > 0 ? { osFeatures: p.OSFeatures } : {}),
  });
}

/**
 * BuildKit's warning level for lint-style warnings (the Dockerfile linter's `Warn` calls pass 1).
 */
const WARNING_LEVEL = 1;

/**
 * A FrontendWarning as a WarnRequest: the message as `short`, the file as the source info's
 * filename, the line and column as a one-point range (pb.Position: 1-based line, 0-based character).
 */
export function warningToWire(w: FrontendWarning): WireWarnRequest {
  const out: WireWarnRequest = { level: WARNING_LEVEL, short: new TextEncoder().encode(w.message) };
  if (w.file !== undefined) out.info = { filename: w.file };
  if (w.line !== undefined) {
    const at = w.column === undefined ? { Line: w.line } : { Line: w.line, Character: w.column - 1 };
    out.ranges = [{ start: at, end: at }];
  }
  return out;
}

/** A WarnRequest as a FrontendWarning (the first range's start; detail lines appended to the message). */
export function warningFromWire(w: WireWarnRequest): FrontendWarning {
  const decoder = new TextDecoder();
  const detail = (w.detail ?? []).map((d) => decoder.decode(d)).filter((d) => d !== '');
  const message = [decoder.decode(w.short ?? new Uint8Array()), ...detail].join('\n');
  const start = w.ranges?.[0]?.start;
  return {
    message,
    ...(w.info?.filename ? { file: w.info.filename } : {}),
    ...(start?.Line ? { line: start.Line } : {}),
    ...(start?.Line && start.Character !== undefined ? { column: start.Character + 1 } : {}),
  };
}

/**
 * A wire `Result` as a FrontendResult: its metadata, attestations and refs (`refs`/`refsDeprecated`,
 * else `ref`/`refDeprecated`), each ref through `toRef` (undefined: no ref, e.g. id ""; it may throw).
 * Both sides read one: the gateway a Return's result, a frontend a frontend Solve's answer.
 */
export function resultFromWire(r: WireResult, toRef: (wire: WireRef) => Ref | undefined): FrontendResult {
  const metadata = metadataFromWire(r.metadata);
  const attestations = attestationsFromWire(r.attestations, toRef);
  const extra = attestations === undefined ? { metadata } : { metadata, attestations };
  const wireRefs = r.refs?.refs ?? r.refsDeprecated?.refs;
  if (wireRefs !== undefined) {
    const refs = new Map<string, Ref>();
    for (const [k, v] of Object.entries(wireRefs)) {
      const ref = toRef(typeof v === 'string' ? { id: v } : v);
      if (ref !== undefined) refs.set(k, ref);
    }
    return { refs, ...extra };
  }
  const ref = toRef(r.ref ?? { id: r.refDeprecated ?? '' });
  return ref === undefined ? extra : { ref, ...extra };
}
