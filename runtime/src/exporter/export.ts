import type { Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import { writeDirAtomic, writeFileAtomic } from '../content/atomic-file.js';
import type { ContentStore } from '../content/store.js';
import type { ImageStore } from '../image/image-store.js';
import { AnnotationCreated } from '../image/media-types.js';
import type { Descriptor } from '../image/types.js';
import { RegistryClient } from '../registry/client.js';
import { pushImage } from '../registry/push.js';
import { parseReference } from '../registry/reference.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { packDirectories, packDirectory, type SubDirectory } from './fs-tar.js';
import { abortable } from '../image/tar-pack.js';
import { copyTree } from './fs-tree.js';
import { annotationsFor, exportDockerArchive, exportOciLayout, materializeImage, normalizeNames, type ExportImage } from './image-exporters.js';
import type { ExportSpec } from './spec.js';

/** What an exporter gets: an image (oci/docker/image) or a root filesystem directory (local/tar). */
export interface ExportInput {
  readonly image?: ExportImage | undefined;
  /** A snapshot's directory; copied (local) or packed (tar) as is. */
  readonly rootfs?: string | undefined;
  /**
   * A multi-platform result for local/tar: one tree per platform, written under `path`
   * (`linux_amd64`, BuildKit's `platforms.Format` with `/` → `_`): `dest/<path>/` for local, a
   * top directory per platform in one tarball for tar.
   */
  readonly platforms?: ReadonlyArray<SubDirectory> | undefined;
}

/** Services an exporter may use; passed explicitly. */
export interface ExportContext {
  readonly store: ContentStore;
  /** Image records to update for `type=image` (and every exporter that has names). */
  readonly images?: ImageStore | undefined;
  /** Registry client for `push=true` (a fresh one is made when absent). */
  readonly registry?: RegistryClient | undefined;
  /** SOURCE_DATE_EPOCH (seconds): `created` annotations, and every file time of type=local/tar output. */
  readonly sourceDateEpoch?: number | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** What was exported. */
export interface ExportResult {
  readonly type: ExportSpec['type'];
  readonly dest?: string | undefined;
  /** Root manifest / index digest (image exporters), like BuildKit's `containerimage.digest`. */
  readonly digest?: Digest | undefined;
  readonly descriptor?: Descriptor | undefined;
  readonly names: ReadonlyArray<string>;
  readonly pushed: ReadonlyArray<string>;
}

/**
 * Runs one exporter. Outputs appear atomically: files and directories are written to a temp path
 * and renamed, so a failure leaves nothing half-written. `type=local` into an existing directory
 * merges into it (like BuildKit), each file replaced atomically.
 */
export async function runExport(spec: ExportSpec, input: ExportInput, ctx: ExportContext): Promise<ExportResult> {
  ctx.signal?.throwIfAborted();
  switch (spec.type) {
    case 'local':
    case 'tar': {
      const copy = { mtime: ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : undefined, signal: ctx.signal };
      const pack = { sourceDateEpoch: ctx.sourceDateEpoch };
      if (input.platforms !== undefined && input.platforms.length > 0) {
        const platforms = input.platforms;
        // fsutil.SubDirFS rejects paths that are not one name, and duplicates.
        const seen = new Set<string>();
        for (const p of platforms) {
          if (p.path === '' || p.path.includes('/') || p.path === '.' || p.path === '..') throw new ImageStoreError('EXPORT_FAILED', `invalid platform directory "${p.path}"`);
          if (seen.has(p.path)) throw new ImageStoreError('EXPORT_FAILED', `duplicate platform directory "${p.path}"`);
          seen.add(p.path);
        }
        if (spec.type === 'tar') await writeFileAtomic(spec.dest, abortable(packDirectories(platforms, pack), ctx.signal));
        else if (await exists(spec.dest)) for (const p of platforms) await copyTree(p.rootfs, join(spec.dest, p.path), copy);
        else {
          await writeDirAtomic(spec.dest, async (tmp) => {
            for (const p of platforms) await copyTree(p.rootfs, join(tmp, p.path), copy);
          });
        }
        return { type: spec.type, dest: spec.dest, names: [], pushed: [] };
      }
      if (input.rootfs === undefined) throw new ImageStoreError('EXPORT_FAILED', `type=${spec.type} needs a filesystem result`);
      const rootfs = input.rootfs;
      if (spec.type === 'tar') await writeFileAtomic(spec.dest, abortable(packDirectory(rootfs, pack), ctx.signal));
      else if (await exists(spec.dest)) await copyTree(rootfs, spec.dest, copy);
      else await writeDirAtomic(spec.dest, (tmp) => copyTree(rootfs, tmp, copy));
      return { type: spec.type, dest: spec.dest, names: [], pushed: [] };
    }
    case 'oci':
    case 'docker':
    case 'image': {
      if (input.image === undefined) throw new ImageStoreError('EXPORT_FAILED', `type=${spec.type} needs an image result`);
      const root = await materializeImage(ctx.store, input.image, { ...spec, annotations: ctx.annotations, annotationOptions: spec.annotations });
      const names = normalizeNames(spec.names);
      const epoch = ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : undefined;
      let pushed: string[] = [];
      // BuildKit's oci/docker exporter annotates the root descriptor in index.json with its
      // creation time: SOURCE_DATE_EPOCH if set, else now (RFC 3339, whole seconds, UTC). The
      // tar entries keep mtime 0 either way (containerd's archive writer sets no ModTime).
      const created = { ...annotationsFor(spec.annotations, 'index-descriptor'), [AnnotationCreated]: rfc3339Seconds(epoch ?? new Date()) };
      if (spec.type === 'oci') await exportOciLayout(ctx.store, root, spec.dest, spec.names, { tar: spec.tar, annotations: created, signal: ctx.signal });
      else if (spec.type === 'docker') await exportDockerArchive(ctx.store, root, spec.dest, spec.names, { annotations: created, signal: ctx.signal });
      else if (spec.push) {
        const hosts: Record<string, { plainHttp: boolean }> = {};
        if (spec.insecure) for (const n of names) hosts[parseReference(n).domain] = { plainHttp: true };
        const client = ctx.registry ?? new RegistryClient({ hosts });
        pushed = [...(await pushImage(client, ctx.store, root, names, { signal: ctx.signal })).refs];
      }
      for (const n of names) await ctx.images?.put(n, root);
      return { type: spec.type, ...('dest' in spec ? { dest: spec.dest } : {}), digest: root.digest, descriptor: root, names, pushed };
    }
    default: {
      const never: never = spec;
      throw new ImageStoreError('OUTPUT_SPEC_INVALID', `unknown exporter ${(never as { type: string }).type}`);
    }
  }
}

/** Go's `time.RFC3339` of a UTC time: no fraction (`2023-11-14T22:13:20Z`). */
function rfc3339Seconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
