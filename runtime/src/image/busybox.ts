import { execFile } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createGzip, constants as zc } from 'node:zlib';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, type Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import type { ContentStore } from '../content/store.js';
import type { ImageStore } from './image-store.js';
import { writeImage, type WrittenImage } from './image-writer.js';
import { layerMediaType, type ImageFormat } from './media-types.js';
import { writeOciLayoutDir } from './oci-layout.js';
import { formatPlatform, hostPlatform, platformEquals } from './platform.js';
import { elfPlatform, qemuArch } from '../executor/emulation.js';
import type { PackEntry } from './tar-pack.js';
import { packUstar } from './ustar.js';
import type { Descriptor, Platform } from './types.js';

/** Options for {@link createBusyboxImage}. */
export interface BusyboxImageOptions {
  /** The static busybox binary (Debian `busybox-static`, of any architecture). Default `/bin/busybox`. */
  readonly busybox?: string | undefined;
  /** Record the image under these names in the image store (needs `images`). */
  readonly names?: ReadonlyArray<string> | undefined;
  readonly images?: ImageStore | undefined;
  /** Also write an OCI layout directory here (tagged with `names`' tags or `latest`). */
  readonly layoutDir?: string | undefined;
  readonly format?: ImageFormat | undefined;
  /** gzip (default) or an uncompressed layer. */
  readonly compression?: 'gzip' | 'uncompressed' | undefined;
}

/** The busybox base image that was written. */
export interface BusyboxImage extends WrittenImage {
  readonly layer: Descriptor;
  readonly diffID: Digest;
  /** The applet symlinks in the layer (e.g. `bin/sh`). */
  readonly applets: ReadonlyArray<string>;
}

/** Every entry's mtime: 2024-01-01T00:00:00Z, as the conformance fixtures. */
const EPOCH = new Date('2024-01-01T00:00:00Z');
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n';

/**
 * Builds a deterministic busybox base image from the host's static busybox: `/bin/busybox`, one
 * symlink to it per applet of `busybox --list-full` (without `linuxrc`), `/etc/passwd` and
 * `/etc/group` (root, app 1000, nobody/nogroup), `/root` 0700, `/tmp` 1777, `/home/app` owned by
 * 1000. Same binary in → same digests out. The image's platform is the binary's (its ELF
 * header), so another architecture's busybox-static makes that platform's base. Fails with
 * `PREREQUISITE_MISSING` without busybox-static.
 */
export async function createBusyboxImage(store: ContentStore, opts: BusyboxImageOptions = {}): Promise<BusyboxImage> {
  const bin = opts.busybox ?? '/bin/busybox';
  let platform: Platform;
  try {
    const st = await stat(bin);
    if (!st.isFile()) throw new Error('not a file');
    platform = await binaryPlatform(bin);
  } catch (e) {
    throw new ImageStoreError('PREREQUISITE_MISSING', `static busybox not found at ${bin}`, { cause: e, hint: 'apt-get install -y busybox-static' });
  }
  const list = await appletList(bin, platform);
  const applets = list
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'linuxrc' && s !== 'bin/busybox')
    .sort();
  const size = (await stat(bin)).size;
  const dir = (name: string, mode = 0o755, uid = 0): PackEntry => ({ header: { name: `${name}/`, type: 'directory', mode, uid, gid: uid, mtime: EPOCH, uname: '', gname: '' } });
  const file = (name: string, data: string): PackEntry => ({
    header: { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: EPOCH, size: Buffer.byteLength(data), uname: '', gname: '' },
    data: Buffer.from(data),
  });
  const entries: PackEntry[] = [
    dir('bin'),
    dir('etc'),
    dir('home'),
    dir('home/app', 0o755, 1000),
    dir('root', 0o700),
    dir('sbin'),
    dir('tmp', 0o1777),
    dir('usr'),
    dir('usr/bin'),
    dir('usr/sbin'),
    { header: { name: 'bin/busybox', type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: EPOCH, size, uname: '', gname: '' }, file: bin },
    file('etc/group', GROUP),
    file('etc/passwd', PASSWD),
    ...applets.map((a): PackEntry => ({ header: { name: a, type: 'symlink', linkname: '/bin/busybox', mode: 0o777, uid: 0, gid: 0, mtime: EPOCH, uname: '', gname: '' } })),
  ];
  // Sorted by path with each directory before its contents.
  entries.sort((a, b) => cmpPath(a.header.name, b.header.name));

  const compression = opts.compression ?? 'gzip';
  const diff = new Digester();
  const w = await store.openWriter();
  let layerInfo;
  try {
    const tap = new Writable({
      write(chunk: Buffer, _e, cb) {
        w.write(chunk).then(() => cb(), cb);
      },
    });
    const hashUncompressed = async function* (src: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
      for await (const c of src) {
        diff.update(c);
        yield c;
      }
    };
    if (compression === 'gzip') await pipeline(packUstar(entries), hashUncompressed, createGzip({ level: zc.Z_BEST_COMPRESSION }), tap);
    else await pipeline(packUstar(entries), hashUncompressed, tap);
    layerInfo = await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
  const format = opts.format ?? 'oci';
  const layer: Descriptor = { mediaType: layerMediaType(format, compression), digest: layerInfo.digest, size: layerInfo.size };
  const diffID = diff.digest();
  const created = EPOCH.toISOString().replace('.000Z', 'Z');
  const img = await writeImage(
    store,
    [{ descriptor: layer, diffID }],
    {
      architecture: platform.architecture,
      ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
      os: 'linux',
      created,
      config: { Env: [PATH_ENV], Cmd: ['sh'] },
      history: [{ created, created_by: 'kiln: busybox base image from busybox-static' }],
    },
    { format },
  );
  for (const n of opts.names ?? []) await opts.images?.put(n, img.manifest);
  if (opts.layoutDir !== undefined) {
    const names = opts.names !== undefined && opts.names.length > 0 ? opts.names : ['latest'];
    await writeOciLayoutDir(store, opts.layoutDir, [{ descriptor: img.manifest, names }]);
  }
  return { ...img, layer, diffID, applets };
}

/** The platform of the busybox binary (another architecture's, e.g. Debian's `busybox-static:arm64`, makes that platform's image). */
async function binaryPlatform(bin: string): Promise<Platform> {
  const fh = await open(bin, 'r');
  try {
    const head = Buffer.alloc(20);
    await fh.read(head, 0, 20, 0);
    return elfPlatform(head) ?? hostPlatform();
  } finally {
    await fh.close();
  }
}

/**
 * `busybox --list-full`: run directly (the host's binary, or another platform's through a
 * binfmt_misc emulator), else through `qemu-<arch>-static` from PATH.
 */
async function appletList(bin: string, platform: Platform): Promise<string> {
  const run = promisify(execFile);
  try {
    return (await run(bin, ['--list-full'])).stdout;
  } catch (e) {
    if (platformEquals(platform, hostPlatform())) throw new ImageStoreError('PREREQUISITE_MISSING', `${bin} --list-full failed`, { cause: e, hint: 'apt-get install -y busybox-static' });
    const qemu = `qemu-${qemuArch(platform.architecture)}-static`;
    try {
      return (await run(qemu, [bin, '--list-full'])).stdout;
    } catch (e2) {
      throw new ImageStoreError('PREREQUISITE_MISSING', `${bin} is a ${formatPlatform(platform)} program, which this machine runs only through an emulator`, {
        cause: e2,
        hint: `apt-get install -y qemu-user-static (kiln runs ${qemu} itself; see docs/multi-platform.md)`,
      });
    }
  }
}

function cmpPath(a: string, b: string): number {
  const pa = a.replace(/\/$/, '').split('/');
  const pb = b.replace(/\/$/, '').split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}
