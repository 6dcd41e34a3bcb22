import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, readlink, rename, rm } from 'node:fs/promises';
import { Duplex, Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Pack } from 'tar-stream';

type Header = Parameters<Pack['entry']>[0];
import { WorkerError } from '../api/errors.js';
import type { DiffOptions, LayerDescriptor } from '../api/layer.js';
import { LAYER_MEDIA_TYPES } from './compression.js';
import type { Change } from './changes.js';
import { ParallelGzip } from './parallel-gzip.js';
import { withXattrs } from './xattrs.js';
import { encodeXattrs } from './xattr-pack.js';
import { devNumbers } from '../fileop/meta.js';

/** Options for {@link writeLayer}. */
export type WriteLayerOptions = DiffOptions;

const SMALL_FILE = 256 * 1024;

/**
 * Writes `entries` as an OCI layer: deterministic tar headers (uid/gid as stored, empty user and
 * group names, permission bits plus setuid/setgid/sticky, mtime in whole seconds clamped to
 * `sourceDateEpoch`, hardlinks within the layer as link entries), compressed in the same pass, with
 * the diffID and the blob digest both hashed on the fly. Nothing is buffered beyond one block.
 * Extended attributes (file capabilities, `user.*`, `trusted.*` …, but never overlayfs's own)
 * are written as PAX `SCHILY.xattr.<name>` records in name order; an entry without any gets no
 * PAX header, so a tree without xattrs gives the same bytes as before they were exported.
 */
export async function writeLayer(entries: AsyncIterable<Change>, opts: WriteLayerOptions): Promise<LayerDescriptor> {
  const compression = opts.compression ?? 'gzip';
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let uncompressedSize = 0;
  let size = 0;
  /** Counts the bytes passing, and hashes them with `h` when given. */
  const tap = (h: ReturnType<typeof createHash> | undefined, count: (n: number) => void): Transform =>
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        h?.update(chunk);
        count(chunk.length);
        cb(null, chunk);
      },
    });
  const tarball = pack();
  const compressor: Duplex | undefined =
    compression === 'gzip'
      ? new ParallelGzip({
          level: opts.level ?? 1,
          ...(opts.workers === undefined ? {} : { workers: opts.workers }),
          ...(opts.storeIncompressible === undefined ? {} : { storeIncompressible: opts.storeIncompressible }),
        })
      : compression === 'zstd'
        ? zstdEncoder(opts.level ?? 3, opts.signal)
        : undefined;
  const tmp = typeof opts.output === 'string' ? `${opts.output}.${randomBytes(4).toString('hex')}.tmp` : undefined;
  const sink = tmp !== undefined ? createWriteStream(tmp) : (opts.output as Writable);
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream | Duplex)[] = [
    Readable.from(tarball),
    tap(diffHash, (n) => (uncompressedSize += n)),
    // the blob is hashed here unless the caller's sink hashes it (outputDigest)
    ...(compressor ? [compressor, tap(opts.outputDigest === undefined ? blobHash : undefined, (n) => (size += n))] : []),
    sink,
  ];
  let stop: (e: unknown) => void = () => undefined;
  const stopped = new Promise<never>((_r, reject) => (stop = reject));
  stopped.catch(() => undefined);
  // The sink is ended on success (its 'finish' means every byte was taken) and destroyed on failure.
  const flowing = pipeline(stages, ...(opts.signal ? [{ signal: opts.signal }] : []));
  flowing.catch((e: unknown) => stop(e));
  // The producer stops at its next entry once the pipeline fails, which closes `entries` (and so
  // releases any mount the change walker holds) before writeLayer returns.
  const producing = produce(entries, tarball, opts, stopped).catch((e: unknown) => {
    tarball.destroy(e instanceof Error ? e : new Error(String(e)));
    throw e;
  });
  try {
    const [p, f] = await Promise.allSettled([producing, flowing]);
    if (p.status === 'rejected') throw p.reason;
    if (f.status === 'rejected') throw f.reason;
    if (tmp !== undefined) await rename(tmp, opts.output as string);
  } catch (e) {
    if (tmp !== undefined) await rm(tmp, { force: true });
    if (opts.signal?.aborted === true) throw new WorkerError('CANCELLED', 'layer export cancelled', { cause: e });
    throw e;
  }
  const diffID = `sha256:${diffHash.digest('hex')}`;
  return {
    mediaType: LAYER_MEDIA_TYPES[compression],
    digest: compressor ? (opts.outputDigest?.() ?? `sha256:${blobHash.digest('hex')}`) : diffID,
    size: compressor ? size : uncompressedSize,
    diffID,
    uncompressedSize,
  };
}

async function produce(entries: AsyncIterable<Change>, tarball: Pack, opts: WriteLayerOptions, stopped: Promise<never>): Promise<void> {
  const paxOf = encodeXattrs(tarball);
  let xattrs: ReadonlyMap<string, Buffer> | undefined;
  const entry = (h: Header, body?: Buffer): Promise<void> => {
    if (xattrs !== undefined) paxOf.set(h, xattrs);
    return Promise.race([addEntry(tarball, h, body), stopped]);
  };
  const links = new Map<string, string>();
  const clamp = opts.sourceDateEpoch;
  for await (const [c, attrs] of withXattrs(entries)) {
    xattrs = attrs;
    if (c.kind === 'whiteout' || c.kind === 'opaque') {
      const slash = c.path.lastIndexOf('/');
      const dir = slash < 0 ? '' : `${c.path.slice(0, slash)}/`;
      const name = c.kind === 'opaque' ? '.wh..wh..opq' : `.wh.${c.path.slice(slash + 1)}`;
      const path = c.kind === 'opaque' ? `${c.path}/${name}` : `${dir}${name}`;
      await entry({ name: path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: epochDate(clamp ?? 0) });
      continue;
    }
    const st = c.stat;
    let mtimeSec = Math.floor(st.mtimeMs / 1000);
    if (clamp !== undefined && mtimeSec > clamp) mtimeSec = clamp;
    const base: Header = {
      name: c.path,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      uname: '',
      gname: '',
      mtime: epochDate(mtimeSec),
    };
    if (st.isDirectory()) {
      await entry({ ...base, name: `${c.path}/`, type: 'directory' });
    } else if (st.isSymbolicLink()) {
      await entry({ ...base, type: 'symlink', linkname: await readlink(c.host) });
    } else if (st.isFile()) {
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          await entry({ ...base, type: 'link', linkname: first, size: 0 });
          continue;
        }
        links.set(key, c.path);
      }
      const header: Header = { ...base, type: 'file', size: st.size };
      if (st.size <= SMALL_FILE) await entry(header, await readFile(c.host));
      else {
        if (xattrs !== undefined) paxOf.set(header, xattrs);
        const sink = tarball.entry(header);
        // 1 MiB reads, as the compressor's blocks: a sixteenth of the reads and stream turns of 64 KiB.
        await Promise.race([pipeline(createReadStream(c.host, { highWaterMark: 1 << 20 }), sink as unknown as NodeJS.WritableStream), stopped]);
      }
    } else if (st.isFIFO()) {
      await entry({ ...base, type: 'fifo' });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      await entry({
        ...base,
        type: st.isCharacterDevice() ? 'character-device' : 'block-device',
        devmajor: devNumbers(st.rdev)[0],
        devminor: devNumbers(st.rdev)[1],
      });
    }
    // Sockets are not representable in tar; skipped like BuildKit does.
  }
  tarball.finalize();
}

function addEntry(tarball: Pack, header: Header, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    tarball.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
  });
}

function epochDate(sec: number): Date {
  return new Date(sec * 1000);
}

function zstdEncoder(level: number, signal: AbortSignal | undefined): Duplex {
  const child = spawn('zstd', [`-${level}`, '-T0', '-q', '-c'], { stdio: ['pipe', 'pipe', 'inherit'], ...(signal ? { signal } : {}) });
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (e: NodeJS.ErrnoException) => {
    duplex.destroy(
      e.code === 'ENOENT'
        ? new WorkerError('PREREQUISITE_MISSING', 'zstd layers need the zstd binary', { hint: 'apt-get install zstd' })
        : e,
    );
  });
  return duplex;
}
