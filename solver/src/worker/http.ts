import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, copyFile, lchown, mkdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform } from 'node:stream';
import type { SourceOp } from '@kiln/llb-core';
import { digestFromBytes } from '../cache/cache-key.js';
import { SolverError } from '../errors.js';
import { tlsProblem } from '@kiln/runtime';
import { basePath } from '../local/clean-path.js';
import type { WorkerOpContext } from '../llb/worker.js';
import type { WorkerRef } from '../scheduler/types.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { commitNew, hasSnapshot, withLeases } from './snapshots.js';

interface Download {
  readonly file: string;
  readonly digest: string;
  readonly size: number;
  readonly lastModified: string;
  readonly filename: string;
}

interface HttpAttrs {
  readonly url: string;
  readonly checksum: string | undefined;
  readonly filename: string | undefined;
  readonly perm: number;
  readonly uid: number;
  readonly gid: number;
}

function attrsOf(op: SourceOp): HttpAttrs {
  const a = op.attrs;
  const int = (k: string): number => {
    const v = a?.get(k);
    if (v === undefined || v === '') return 0;
    // Go strconv.ParseInt(v, 0, 64): a leading 0 means octal.
    return /^0[0-7]+$/.test(v) ? parseInt(v, 8) : Number(v);
  };
  return {
    url: op.identifier ?? '',
    checksum: a?.get('http.checksum'),
    filename: a?.get('http.filename'),
    perm: int('http.perm'),
    uid: int('http.uid'),
    gid: int('http.gid'),
  };
}

/** BuildKit getFileName: the `http.filename` attr, else Content-Disposition, else the URL path's base ("index" for none). */
function fileName(a: HttpAttrs, disposition: string | null): string {
  if (a.filename !== undefined && a.filename !== '') return a.filename;
  const m = disposition === null ? null : /filename="?([^";]+)"?/i.exec(disposition);
  if (m?.[1] !== undefined) return basePath(m[1]);
  const base = basePath(new URL(a.url).pathname);
  return base === '/' || base === '.' || base === '' ? 'index' : base;
}

/**
 * BuildKit's http source cache key (source/http/httpsource.go formatCacheKey): sha256 of Go's JSON
 * `{"Filename":…,"Perm":…,"UID":…,"GID":…,"Checksum":…,"LastModTime":…}` (LastModTime omitted when empty).
 */
export function httpCacheKey(filename: string, a: Pick<HttpAttrs, 'perm' | 'uid' | 'gid'>, checksum: string, lastModTime: string): string {
  const lm = lastModTime === '' ? '' : `,"LastModTime":${JSON.stringify(lastModTime)}`;
  return digestFromBytes(`{"Filename":${JSON.stringify(filename)},"Perm":${a.perm},"UID":${a.uid},"GID":${a.gid},"Checksum":${JSON.stringify(checksum)}${lm}}`);
}

/**
 * `http://` / `https://` sources (ADD <url>): the file is downloaded once per build (hashed while
 * streaming to disk), keyed as BuildKit keys it, and snapshotted as `/<filename>` with the
 * requested permissions and owner, its mtime from Last-Modified.
 */
export class HttpSources {
  readonly #deps: RuntimeWorkerDeps;
  readonly #downloads = new Map<string, Promise<Download>>();

  constructor(deps: RuntimeWorkerDeps) {
    this.#deps = deps;
  }

  #download(op: SourceOp, ctx: WorkerOpContext): Promise<Download> {
    const a = attrsOf(op);
    let p = this.#downloads.get(a.url);
    if (p === undefined) {
      p = this.#fetch(a, ctx);
      p.catch(() => this.#downloads.delete(a.url));
      this.#downloads.set(a.url, p);
    }
    return p;
  }

  async #fetch(a: HttpAttrs, ctx: WorkerOpContext): Promise<Download> {
    const dir = join(this.#deps.root, 'solver', 'http');
    await mkdir(dir, { recursive: true });
    const { url, shown, headers } = withoutUserInfo(a.url);
    let res: Response;
    try {
      res = await (this.#deps.fetch ?? fetch)(url, { signal: ctx.signal, redirect: 'follow', headers });
    } catch (err) {
      // fetch says only "fetch failed"; what failed (ECONNREFUSED, ENOTFOUND, a TLS error) is its cause.
      const cause = (err as { cause?: unknown }).cause;
      // (A proxy's error, KLN0880, says what failed itself: its cause is fetch's "fetch failed".)
      const why = err instanceof Error ? (cause instanceof Error && cause.message !== 'fetch failed' ? `${err.message} (${cause.message})` : err.message) : String(err);
      // A failure at a proxy (KLN0880) says what to change in its hint.
      const hint = (err as { hint?: unknown }).hint ?? tlsHint(err);
      throw new SolverError('SOLVER_NOT_FOUND', `failed to fetch ${shown}: ${why.split(a.url).join(shown)}`, { cause: err, ...(typeof hint === 'string' ? { hint } : {}) });
    }
    if (!res.ok || res.body === null) throw new SolverError('SOLVER_NOT_FOUND', `failed to fetch ${shown}: HTTP ${res.status}`);
    const total = Number(res.headers.get('content-length') ?? '0') || undefined;
    const tmp = join(dir, `dl-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const h = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        size += chunk.length;
        ctx.status(shown, size, total);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), meter, createWriteStream(tmp), { signal: ctx.signal });
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    ctx.status(shown, size, total ?? size, true);
    const digest = `sha256:${h.digest('hex')}`;
    if (a.checksum !== undefined && a.checksum !== '' && a.checksum !== digest) {
      await rm(tmp, { force: true });
      throw new SolverError('SOLVER_NOT_FOUND', `digest mismatch for ${shown}: ${digest} != ${a.checksum}`);
    }
    const file = join(dir, digest.replace('sha256:', ''));
    await rename(tmp, file);
    return { file, digest, size, lastModified: res.headers.get('last-modified') ?? '', filename: fileName(a, res.headers.get('content-disposition')) };
  }

  async cacheKey(op: SourceOp, ctx: WorkerOpContext): Promise<string> {
    const a = attrsOf(op);
    if (a.checksum !== undefined && a.checksum !== '') {
      const name = a.filename !== undefined && a.filename !== '' ? a.filename : fileName(a, null);
      return httpCacheKey(name, a, a.checksum, '');
    }
    const d = await this.#download(op, ctx);
    return httpCacheKey(d.filename, a, d.digest, d.lastModified);
  }

  async snapshot(op: SourceOp, ctx: WorkerOpContext): Promise<WorkerRef> {
    const a = attrsOf(op);
    const d = await this.#download(op, ctx);
    const key = httpCacheKey(d.filename, a, d.digest, d.lastModified);
    const id = `http-${key.replace('sha256:', '').slice(0, 48)}`;
    const s = this.#deps.snapshotter;
    return withLeases(this.#deps, ctx.signal, async (leases) => {
      leases.hold(id); // before the lookup: a prune meanwhile keeps it
      if (!(await hasSnapshot(s, id))) {
        await commitNew(s, id, ctx.signal, async (root) => {
          const target = join(root, d.filename);
          await copyFile(d.file, target);
          await chmod(target, a.perm === 0 ? 0o600 : a.perm);
          await lchown(target, a.uid, a.gid);
          const lm = d.lastModified === '' ? undefined : new Date(d.lastModified);
          if (lm !== undefined && !Number.isNaN(lm.getTime())) await utimes(target, lm, lm);
        });
      }
      const size = (await stat(d.file)).size;
      return { snapshot: id, size };
    });
  }
}

/**
 * A URL's user info as Basic authorization, as Go's http.Client sends it (BuildKit's http
 * source): fetch refuses a URL that carries credentials. `shown` is the URL without them, for
 * progress and errors.
 */
function withoutUserInfo(raw: string): { url: string; shown: string; headers: Record<string, string> } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { url: raw, shown: raw, headers: {} };
  }
  if (u.username === '' && u.password === '') return { url: raw, shown: raw, headers: {} };
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  return { url: u.href, shown: u.href, headers: { authorization: `Basic ${auth}` } };
}

/**
 * What to do about a TLS failure of an `ADD https://` download. There is no per-URL setting (as in
 * BuildKit, whose HTTP source trusts the system's store): the CA goes in the system's store.
 */
function tlsHint(err: unknown): string | undefined {
  const p = tlsProblem(err);
  if (p === undefined) return undefined;
  if (p.kind === 'plain-http') return `the server does not speak TLS (${p.detail}): use an http:// URL if it serves plain http`;
  if (p.kind === 'handshake') return `the TLS handshake with the server failed (${p.detail}): check the URL's host and port`;
  return `the server's certificate is not trusted (${p.detail}): add its certificate authority to the system's CA store (update-ca-certificates), or name a PEM file of it with SSL_CERT_FILE=FILE in kiln's environment (docs/config.md)`;
}
