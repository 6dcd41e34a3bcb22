import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AnnotationImageName, AnnotationRefName, MediaTypes, digestHex, digestOf, parseManifest, siblingTempPath, writeFileAtomic, type Descriptor, type ImageIndex } from '@kiln/runtime';
import { withFileLock } from '@kiln/solver';
import { ImagetoolsError } from './errors.js';
import { goJson } from './go-json.js';
import { LAYOUT_SCHEME, type LayoutLocation } from './location.js';

/** A blob opened for reading: its bytes, and a way to let go of them when they are not all read. */
export interface OpenedBlob {
  readonly stream: AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * The lock file of `index.json` updates, as kiln's remote cache layouts use (BuildKit's ociindex
 * flocks `index.json.lock` instead: an flock cannot be taken from Node).
 */
const INDEX_LOCK = '.index.json.lock';

/** Manifests and indexes are read into memory up to this size (as from a registry). */
const MAX_MANIFEST = 4 * 1024 * 1024;

/**
 * An OCI image layout directory as buildx's imagetools uses one (containerd's local content store
 * over `blobs/`, BuildKit's `ociindex` for `index.json`): images found by tag or digest, blobs
 * read and written by digest. Every blob read is checked against its descriptor's size and digest.
 */
export class OciLayoutDir {
  constructor(
    /** The directory. */
    readonly dir: string,
    /** How messages name it (`oci-layout://PATH`). */
    readonly name: string = `${LAYOUT_SCHEME}${dir}`,
  ) {}

  /** The path of a blob. */
  blobPath(desc: Pick<Descriptor, 'digest'>): string {
    return join(this.dir, 'blobs', 'sha256', digestHex(desc.digest));
  }

  /** `index.json`, parsed (KLN0866 when the directory is no OCI layout). */
  async readIndex(): Promise<ImageIndex> {
    let raw: Buffer;
    try {
      raw = await readFile(join(this.dir, 'index.json'));
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'has no index.json' : `cannot be read (${(e as Error).message})`;
      throw new ImagetoolsError('KLN0866', `${this.name} is not an OCI layout: ${this.dir} ${why}`, {
        hint: 'give a directory with oci-layout, index.json and blobs/ (kiln build --output type=oci,tar=false,dest=DIR, skopeo copy … oci:DIR:TAG); a tarball must be extracted first',
        cause: e,
      });
    }
    try {
      const p = parseManifest(raw, MediaTypes.ociIndex);
      if (p.kind !== 'index') throw new Error('not an image index');
      return p.index;
    } catch (e) {
      throw new ImagetoolsError('KLN0866', `${this.name}: index.json is not an image index (${(e as Error).message})`, { cause: e });
    }
  }

  /**
   * The descriptor `loc` names: by digest, the blob (its media type read from its body, as
   * buildx's detectMediaType); by tag, the index.json entry whose `io.containerd.image.name`, else
   * whose `org.opencontainers.image.ref.name`, is the tag (BuildKit's `ociindex.Get`).
   */
  async resolve(loc: LayoutLocation, detectMediaType: (bytes: Buffer) => string): Promise<Descriptor> {
    if (loc.digest !== undefined) {
      const size = await this.size(loc.digest);
      if (size === undefined) throw new ImagetoolsError('KLN0861', `${this.name} has no blob ${loc.digest}`);
      const bytes = await this.fetch({ mediaType: '', digest: loc.digest, size });
      return { mediaType: detectMediaType(bytes), digest: loc.digest, size };
    }
    const tag = loc.tag ?? 'latest';
    const index = await this.readIndex();
    const hit = index.manifests.find((m) => m.annotations?.[AnnotationImageName] === tag) ?? index.manifests.find((m) => m.annotations?.[AnnotationRefName] === tag);
    if (hit === undefined) {
      const tags = index.manifests.map((m) => m.annotations?.[AnnotationRefName]).filter((t): t is string => t !== undefined);
      const untagged = index.manifests.filter((m) => m.annotations?.[AnnotationRefName] === undefined).map((m) => m.digest);
      throw new ImagetoolsError('KLN0861', `${this.name} has no image tagged "${tag}" (tags: ${tags.length === 0 ? 'none' : tags.join(', ')})`, {
        hint: untagged.length === 0 ? 'name one of its tags: oci-layout://PATH:TAG' : `name an untagged image by digest: oci-layout://PATH@${untagged[0] ?? ''}`,
      });
    }
    return hit;
  }

  /** A blob's size on disk, undefined when it is not there. */
  async size(digest: Descriptor['digest']): Promise<number | undefined> {
    try {
      const st = await stat(this.blobPath({ digest }));
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  /** True when the layout has the blob (of the descriptor's size). */
  async has(desc: Descriptor): Promise<boolean> {
    return (await this.size(desc.digest)) === desc.size;
  }

  /** Reads a blob into memory (at most `max` bytes, the descriptor's size), digest checked. */
  async fetch(desc: Descriptor, max = MAX_MANIFEST): Promise<Buffer> {
    const what = `blob ${desc.digest} of ${this.name}`;
    if (desc.size > max) throw new ImagetoolsError('KLN0865', `${what} is too large to read (${desc.size} bytes; at most ${max})`);
    const size = await this.size(desc.digest);
    if (size === undefined) throw new ImagetoolsError('KLN0861', `${this.name} has no blob ${desc.digest}`, { hint: 'the layout is incomplete: write it again' });
    if (size !== desc.size) throw new ImagetoolsError('KLN0866', `${what} has ${size} bytes, its descriptor says ${desc.size}`);
    const bytes = await readFile(this.blobPath(desc));
    const got = digestOf(bytes);
    if (got !== desc.digest) throw new ImagetoolsError('KLN0866', `${what}: digest mismatch (got ${got})`, { hint: 'the layout is damaged: write it again' });
    return bytes;
  }

  /** Opens a blob for streaming (its size checked now, its digest by whoever writes it). */
  async open(desc: Descriptor): Promise<OpenedBlob> {
    const size = await this.size(desc.digest);
    if (size === undefined) throw new ImagetoolsError('KLN0861', `${this.name} has no blob ${desc.digest}`, { hint: 'the layout is incomplete: write it again' });
    if (size !== desc.size) throw new ImagetoolsError('KLN0866', `blob ${desc.digest} of ${this.name} has ${size} bytes, its descriptor says ${desc.size}`);
    const stream = createReadStream(this.blobPath(desc), { highWaterMark: 1 << 20 });
    return {
      stream,
      close: async () => {
        stream.destroy();
      },
    };
  }

  /**
   * Writes a blob from a stream: into a temp file beside it, renamed into place only when its
   * size and sha256 are the descriptor's (KLN0862 otherwise; nothing is left behind).
   */
  async writeBlob(desc: Descriptor, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, signal?: AbortSignal): Promise<void> {
    await this.writing(() => this.writeBlobIn(desc, source, signal));
  }

  private async writeBlobIn(desc: Descriptor, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, signal: AbortSignal | undefined): Promise<void> {
    const to = this.blobPath(desc);
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const tmp = siblingTempPath(to);
    const hash = createHash('sha256');
    let n = 0;
    try {
      await pipeline(
        Readable.from(source),
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const c of chunks) {
            n += c.length;
            if (n > desc.size) throw new ImagetoolsError('KLN0862', `blob ${desc.digest}: more than its ${desc.size} bytes`);
            hash.update(c);
            yield c;
          }
        },
        createWriteStream(tmp, { mode: 0o644 }),
        ...(signal === undefined ? [] : [{ signal }]),
      );
      const got = `sha256:${hash.digest('hex')}`;
      if (n !== desc.size || got !== desc.digest) throw new ImagetoolsError('KLN0862', `blob ${desc.digest}: got ${n} bytes with digest ${got}`);
      await rename(tmp, to);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Names `desc` in `index.json` as BuildKit's `ociindex.Put` does: with a tag, the entry gets
   * `org.opencontainers.image.ref.name` and replaces the entries of that tag; without one it is
   * added untagged (once). `oci-layout` is written too; `index.json` is replaced atomically, after
   * the blobs it names are in place. The read and the replacement of `index.json` hold the
   * layout's lock (as ociindex.Put), so writers at once, in several processes or one daemon,
   * each keep the others' tags.
   */
  async tag(desc: Descriptor, tag: string | undefined, signal?: AbortSignal): Promise<void> {
    await this.writing(async () => {
      await mkdir(this.dir, { recursive: true });
      await withFileLock(join(this.dir, INDEX_LOCK), signal, () => this.tagLocked(desc, tag));
    });
  }

  /**
   * Runs a write into the layout; a system error on a path in it (a file where the directory
   * should be, no permission, a full disk) is KLN0867 naming the layout, not a bare errno.
   */
  private async writing(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (e instanceof ImagetoolsError || typeof err.code !== 'string' || typeof err.path !== 'string' || !(err.path === this.dir || err.path.startsWith(`${this.dir}/`))) throw e;
      throw new ImagetoolsError('KLN0867', `cannot write to ${this.name}: ${err.message}`, {
        hint: err.code === 'ENOTDIR' || err.code === 'EEXIST' ? `${this.dir} (or a directory above it) is a file: give a directory for the layout` : 'give a directory kiln can write to',
        cause: e,
      });
    }
  }

  private async tagLocked(desc: Descriptor, tag: string | undefined): Promise<void> {
    let doc: Record<string, unknown> = {};
    try {
      const v: unknown = JSON.parse((await readFile(join(this.dir, 'index.json'))).toString('utf8'));
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) doc = v as Record<string, unknown>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ImagetoolsError('KLN0866', `${this.name}: index.json is not an image index (${(e as Error).message})`, { cause: e });
    }
    const old = Array.isArray(doc['manifests']) ? (doc['manifests'] as unknown[]) : [];
    const annotationsOf = (m: unknown): Record<string, unknown> => {
      const a = typeof m === 'object' && m !== null ? (m as Record<string, unknown>)['annotations'] : undefined;
      return typeof a === 'object' && a !== null ? (a as Record<string, unknown>) : {};
    };
    const entry: Record<string, unknown> = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    let manifests: unknown[];
    if (tag !== undefined) {
      entry['annotations'] = { [AnnotationRefName]: tag };
      manifests = [...old.filter((m) => annotationsOf(m)[AnnotationRefName] !== tag), entry];
    } else {
      const there = old.some((m) => typeof m === 'object' && m !== null && (m as Record<string, unknown>)['digest'] === desc.digest && annotationsOf(m)[AnnotationRefName] === undefined);
      manifests = there ? old : [...old, entry];
    }
    // ocispec.Index in Go order, as ociindex marshals it
    const out = { schemaVersion: typeof doc['schemaVersion'] === 'number' ? doc['schemaVersion'] : 2, mediaType: typeof doc['mediaType'] === 'string' ? doc['mediaType'] : MediaTypes.ociIndex, manifests, ...(doc['annotations'] === undefined ? {} : { annotations: doc['annotations'] }) };
    await writeFileAtomic(join(this.dir, 'oci-layout'), Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    await writeFileAtomic(join(this.dir, 'index.json'), Buffer.from(goJson(out)));
  }
}
