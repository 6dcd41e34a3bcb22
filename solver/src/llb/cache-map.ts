import { opJson, type ChownOpt, type ExecOp, type FileOp, type FileOpAction, type Op, type PbPlatform } from '@kiln/llb-core';
import { digestFromBytes } from '../cache/cache-key.js';
import type { ChecksumOptions } from '../contenthash/tree.js';
import { basePath, cleanPath, containsWildcards } from '../local/clean-path.js';
import type { CacheMap, CacheMapDep, WorkerRef } from '../scheduler/types.js';

/** A path selection of one input (BuildKit's opsutils.Selector). */
export interface Selector {
  readonly path: string;
  readonly wildcard?: boolean;
  readonly followLinks?: boolean;
  readonly includePatterns?: readonly string[];
  readonly excludePatterns?: readonly string[];
}

/** Computes a content checksum of a path in a result (the worker's contenthash). */
export type ChecksumFn = (ref: WorkerRef, path: string, opts: ChecksumOptions, signal: AbortSignal) => Promise<string>;

/**
 * BuildKit's NewContentHashFunc: the checksum of every selector (`/` when none), joined by NUL
 * and hashed again.
 */
export function contentHashFunc(selectors: readonly Selector[], checksum: ChecksumFn): (ref: WorkerRef, signal: AbortSignal) => Promise<string> {
  const sels = selectors.length === 0 ? [{ path: '' }] : selectors;
  return async (ref, signal) => {
    const dgsts = await Promise.all(
      sels.map((s) =>
        checksum(ref, cleanPath(`/${s.path}`), {
          ...(s.wildcard === true ? { wildcard: true } : {}),
          ...(s.followLinks === true ? { followLinks: true } : {}),
          ...(s.includePatterns === undefined ? {} : { includePatterns: s.includePatterns }),
          ...(s.excludePatterns === undefined ? {} : { excludePatterns: s.excludePatterns }),
        }, signal),
      ),
    );
    return digestFromBytes(dgsts.join('\0'));
  };
}

/** The JSON text inside `{"<kind>":…}` of an op's Op field, from llb-core's Go encoding/json view. */
function innerJson(op: Op, kind: string): string {
  const { platform: _platform, constraints: _constraints, ...rest } = op;
  const text = opJson({ ...rest, inputs: [] } as Op);
  const prefix = `{"Op":{"${kind}":`;
  if (!text.startsWith(prefix) || !text.endsWith('}}')) throw new Error(`unexpected op JSON for ${kind}`);
  return text.slice(prefix.length, -2);
}

/** Default platform of the host in BuildKit terms (platforms.DefaultSpec). */
export function defaultPlatform(): PbPlatform {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  return { os: 'linux', architecture: arch, ...(arch === 'arm' ? { variant: 'v7' } : {}) };
}

/**
 * BuildKit v0.11 ops/exec.go CacheMap: sha256 of Go's JSON of
 * `{Type:"buildkit.exec.v0", Exec:<ExecOp without mount selectors, extra-host IPs, proxy env, and without
 * its mounts when the only one is a writable bind of `/`>, OS, Arch, Variant?}`;
 * per input the digest of its mount selectors, and a content hash (of the selected paths, links
 * followed) unless a writable or root mount with an output uses it (NoContentBasedHash).
 */
export function execCacheMap(op: Op & { kind: 'exec' }, checksum: ChecksumFn): CacheMap {
  const e = op.exec;
  const stripped: ExecOp = {
    ...e,
    ...(e.meta === undefined
      ? {}
      : {
          meta: {
            ...e.meta,
            proxyEnv: undefined,
            ...(e.meta.extraHosts === undefined ? {} : { extraHosts: e.meta.extraHosts.map((h) => ({ ...h, ip: undefined })) }),
          },
        }),
    ...(e.mounts === undefined ? {} : { mounts: loneRootBind(e.mounts) ? undefined : e.mounts.map((m) => ({ ...m, selector: undefined })) }),
  } as ExecOp;
  const execJson = innerJson({ ...op, exec: stripped }, 'exec');
  const p = op.platform ?? defaultPlatform();
  const variant = p.variant !== undefined && p.variant !== '' ? `,"Variant":${JSON.stringify(p.variant)}` : '';
  const json = `{"Type":"buildkit.exec.v0","Exec":${execJson},"OS":${JSON.stringify(p.os ?? '')},"Arch":${JSON.stringify(p.architecture ?? '')}${variant}}`;
  const n = op.inputs.length;
  const selectors: string[][] = Array.from({ length: n }, () => []);
  const noContent: boolean[] = new Array<boolean>(n).fill(false);
  for (const m of e.mounts ?? []) {
    const i = m.input ?? 0;
    if (i < 0 || i >= n) continue;
    if (m.selector !== undefined && m.selector !== '') selectors[i]?.push(cleanPath(`/${m.selector}`));
    if ((m.readonly !== true || m.dest === '/') && (m.output ?? 0) !== -1) noContent[i] = true;
  }
  const deps: CacheMapDep[] = selectors.map((sels, i) => ({
    ...(sels.length > 0 ? { selector: digestFromBytes(sels.join('\0')) } : {}),
    ...(noContent[i] === true ? {} : { computeDigest: contentHashFunc(dedupePathList(sels).map((path) => ({ path, followLinks: true })), checksum) }),
  }));
  return { digest: digestFromBytes(json), deps };
}

/**
 * ops/exec.go keeps the key of the common case (one writable bind mount on `/`, a Dockerfile RUN)
 * as versions that dropped every mount from it computed it (moby/buildkit#2076): its mounts are
 * left out. Selectors are cleared before that check, so a selector does not matter.
 */
function loneRootBind(mounts: NonNullable<ExecOp['mounts']>): boolean {
  const m = mounts[0];
  return (
    mounts.length === 1 &&
    m !== undefined &&
    m.dest === '/' &&
    m.readonly !== true &&
    (m.mountType ?? 0) === 0 &&
    m.cacheOpt === undefined &&
    m.sshOpt === undefined &&
    m.secretOpt === undefined &&
    (m.resultId ?? '') === ''
  );
}

function actionJson(a: FileOpAction): string {
  const op = { kind: 'file', inputs: [], file: { actions: [{ ...a, input: 0, secondaryInput: 0, output: 0 }] } } as unknown as Op;
  const text = opJson(op);
  const kind = a.action.kind;
  const marker = `"Action":{"${kind}":`;
  const at = text.indexOf(marker);
  if (at < 0) return 'null';
  return text.slice(at + marker.length, -'}}]}}}'.length);
}

/**
 * BuildKit's isDefaultIndexes (ops/file.go), kept bug-for-bug: the common chain keeps the old
 * checksum without indexes. Note it compares later inputs with `len(actions) + i - 1`.
 */
function isDefaultIndexes(idxs: ReadonlyArray<readonly [number, number, number]>): boolean {
  if (idxs.length === 0) return false;
  return idxs.every(([input, secondary, output], i) => {
    if (i === 0 && input !== 0) return false;
    if (i !== 0 && input !== idxs.length + (i - 1)) return false;
    if (secondary !== -1 && secondary !== 1) return false;
    if (i === idxs.length - 1 && output !== 0) return false;
    if (i !== idxs.length - 1 && output !== -1) return false;
    return true;
  });
}


const hasWildcardOrFilters = (s: Selector): boolean =>
  s.wildcard === true || (s.includePatterns?.length ?? 0) > 0 || (s.excludePatterns?.length ?? 0) > 0;

/** llbsolver dedupePaths: drops paths under another path of the list; sorted. */
function dedupePathList(inp: readonly string[]): string[] {
  const set = [...new Set(inp)];
  return set.filter((p1) => !set.some((p2) => p1 !== p2 && p1.startsWith(`${p2}/`))).sort(goLess);
}

function goLess(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * BuildKit v0.11 ops/file.go CacheMap: sha256 of `{"Type":"buildkit.file.v0","Actions":[<base64 of
 * each action's JSON, copy sources reduced to their base name>],"indexes":…}`; each copy source
 * input gets a selector (digest of its source paths) and a content hash of those paths.
 */
export function fileCacheMap(op: Op & { kind: 'file' }, checksum: ChecksumFn): CacheMap {
  const f: FileOp = op.file;
  const n = op.inputs.length;
  const selectors = new Map<number, Selector[]>();
  const invalid = new Set<number>();
  const add = (i: number, s: Selector): void => {
    const list = selectors.get(i) ?? [];
    list.push(s);
    selectors.set(i, list);
  };
  const owner = (o: ChownOpt | undefined): void => {
    for (const [u, file] of [
      [o?.user, '/etc/passwd'],
      [o?.group, '/etc/group'],
    ] as const) {
      if (u?.kind === 'byName' && (u.byName.input ?? 0) >= 0 && (u.byName.input ?? 0) < n) add(u.byName.input ?? 0, { path: file, followLinks: true });
    }
  };
  const actions: string[] = [];
  const indexes: Array<[number, number, number]> = [];
  for (const a of f.actions ?? []) {
    const input = a.input ?? 0;
    const secondary = a.secondaryInput ?? 0;
    if (input !== -1) invalid.add(input);
    let body = a;
    switch (a.action.kind) {
      case 'mkdir':
        owner(a.action.mkdir.owner);
        break;
      case 'mkfile':
        owner(a.action.mkfile.owner);
        break;
      case 'symlink':
        owner(a.action.symlink.owner);
        break;
      case 'copy': {
        const c = a.action.copy;
        owner(c.owner);
        if (secondary !== -1 && secondary < n) {
          add(secondary, {
            path: c.src ?? '',
            ...(c.allowWildcard === true && containsWildcards(c.src ?? '') ? { wildcard: true } : {}),
            ...(c.followSymlink === true ? { followLinks: true } : {}),
            ...(c.includePatterns === undefined ? {} : { includePatterns: c.includePatterns }),
            ...(c.excludePatterns === undefined ? {} : { excludePatterns: c.excludePatterns }),
          });
          body = { ...a, action: { kind: 'copy', copy: { ...c, src: basePath(c.src ?? '') } } };
        }
        break;
      }
      default:
    }
    actions.push(Buffer.from(actionJson(body), 'utf8').toString('base64'));
    indexes.push([input, secondary, a.output ?? 0]);
  }
  const idx = isDefaultIndexes(indexes) ? '' : `,"indexes":[${indexes.map((t) => `[${t.join(',')}]`).join(',')}]`;
  const json = `{"Type":"buildkit.file.v0","Actions":[${actions.map((s) => JSON.stringify(s)).join(',')}]${idx}}`;
  const deps: CacheMapDep[] = Array.from({ length: n }, (_, i) => {
    const sels = selectors.get(i);
    if (sels === undefined || invalid.has(i)) return {};
    // Selector digest: the paths in descending byte order, NUL-joined (ops/file.go sorts with `> 0`).
    const paths = sels.map((s) => s.path).sort((a, b) => goLess(b, a));
    return { selector: digestFromBytes(paths.join('\0')), computeDigest: contentHashFunc(dedupeSelectors(sels), checksum) };
  });
  return { digest: digestFromBytes(json), deps };
}

/** ops/file.go dedupeSelectors: plain paths deduped (followLinks ones separately), then the filtered ones; by path. */
function dedupeSelectors(sels: readonly Selector[]): Selector[] {
  const plain = dedupePathList(sels.filter((s) => !hasWildcardOrFilters(s) && s.followLinks !== true).map((s) => s.path));
  const follow = dedupePathList(sels.filter((s) => !hasWildcardOrFilters(s) && s.followLinks === true).map((s) => s.path));
  const out: Selector[] = [...plain.map((path) => ({ path })), ...follow.map((path) => ({ path, followLinks: true }))];
  out.push(...sels.filter(hasWildcardOrFilters));
  return out.sort((a, b) => goLess(a.path, b.path));
}

/** BuildKit source CacheMap: sha256("buildkit.source.v0:" + key); `session:` keys become `random:` (never cached). */
export function sourceCacheMap(key: string): CacheMap {
  const d = digestFromBytes(`buildkit.source.v0:${key}`);
  return { digest: key.startsWith('session:') ? `random:${d.slice('sha256:'.length)}` : d, deps: [] };
}

/**
 * merge/diff/build cache maps (BuildKit v0.11 ops/merge.go, diff.go, build.go): Go's JSON of
 * `{Type, Merge|Diff|Exec: <op body>}`. merge and diff use that JSON text itself as the digest
 * (`digest.Digest(dt)`, not hashed); build hashes it. Inputs are keyed by definition only.
 */
export function plainCacheMap(op: Op, type: string): CacheMap {
  const body = op.kind === 'none' ? 'null' : innerJson(op, op.kind);
  const field = op.kind === 'merge' ? 'Merge' : op.kind === 'diff' ? 'Diff' : 'Exec';
  const json = `{"Type":${JSON.stringify(type)},"${field}":${body}}`;
  const raw = op.kind === 'merge' || op.kind === 'diff';
  return { digest: raw ? json : digestFromBytes(json), deps: op.inputs.map(() => ({})) };
}
