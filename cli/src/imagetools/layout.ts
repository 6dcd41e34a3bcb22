import { createHash } from 'node:crypto';
import type { ReadStream } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AnnotationRefName, LAYOUT_INDEX_LOCK, MAX_MANIFEST_SIZE, MediaTypes, OciLayoutReader, resolveLayoutImage, siblingTempPath, withLayoutLock, writeFileAtomic, type Descriptor, type ImageIndex } from '@kiln/runtime';
import { makeDirs } from '../engine/make-dirs.js';
import { ImagetoolsError } from './errors.js';
import { goJson } from './go-json.js';
import type { LayoutLocation } from './location.js';

/** A blob opened for reading: its bytes, and a way to let go of them when they are not all read. */
export interface OpenedBlob {
  readonly stream: AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * A layout reader's error as imagetools reports it: no layout or a damaged one KLN0866, a missing
 * image or blob KLN0861, a blob too large to read KLN0865.
 */
function layoutError(e: unknown): never {
  const code = (e as { code?: unknown }).code;
  const to = code === 'LAYOUT_INVALID' || code === 'SIZE_MISMATCH' || code === 'DIGEST_MISMATCH' ? 'KLN0866' : code === 'IMAGE_NOT_FOUND' || code === 'BLOB_NOT_FOUND' ? 'KLN0861' : code === 'MANIFEST_INVALID' ? 'KLN0865' : undefined;
  if (to === undefined) throw e;
  throw new ImagetoolsError(to, (e as Error).message, { hint: (e as { hint?: string }).hint, cause: e });
}

/**
 * An OCI image layout directory as buildx's imagetools uses one: the runtime's reader (images
 * found by tag or digest, blobs read by digest and checked), its errors in imagetools' codes, and
 * the writes of `-t oci-layout://` (blobs by digest, BuildKit's `ociindex.Put` for `index.json`).
 */
export class OciLayoutDir extends OciLayoutReader {
  override readIndex(): Promise<ImageIndex> {
    return super.readIndex().catch(layoutError);
  }

  override fetch(desc: Descriptor, max = MAX_MANIFEST_SIZE): Promise<Buffer> {
    return super.fetch(desc, max).catch(layoutError);
  }

  override open(desc: Descriptor): Promise<ReadStream> {
    return super.open(desc).catch(layoutError);
  }

  /** The descriptor `loc` names (the runtime's resolveLayoutImage, without the build contexts' one-image fallback). */
  resolve(loc: LayoutLocation, detectMediaType: (bytes: Buffer) => string): Promise<Descriptor> {
    return resolveLayoutImage(this, loc, { name: this.name, detectMediaType }).catch(layoutError);
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
    await this.makeDir(join(this.dir, 'blobs', 'sha256'));
    const tmp = siblingTempPath(to);
    const hash = createHash('sha256');
    let n = 0;
    // Opened before the pipeline: a write stream opening on its own may create the file after a
    // failed pipeline's rm, leaving the temp file behind.
    const fh = await open(tmp, 'w', 0o644);
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
        fh.createWriteStream(),
        ...(signal === undefined ? [] : [{ signal }]),
      );
      const got = `sha256:${hash.digest('hex')}`;
      if (n !== desc.size || got !== desc.digest) throw new ImagetoolsError('KLN0862', `blob ${desc.digest}: got ${n} bytes with digest ${got}`);
      await rename(tmp, to);
    } catch (e) {
      await fh.close().catch(() => undefined);
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
      await this.makeDir(this.dir);
      await withLayoutLock(join(this.dir, LAYOUT_INDEX_LOCK), signal, () => this.tagLocked(desc, tag));
    });
  }

  /**
   * Makes `dir` one level at a time: a recursive mkdir never returns under /proc (an
   * `oci-layout:///proc/x` target hung at full CPU); what stops it is KLN0867 naming the layout.
   */
  private async makeDir(dir: string): Promise<void> {
    await makeDirs(dir, (why, cause) => new ImagetoolsError('KLN0867', `cannot write to ${this.name}: ${why}`, { hint: 'give a directory kiln can write to', ...(cause === undefined ? {} : { cause }) }));
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
