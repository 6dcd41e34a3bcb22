import type { Digest } from '../content/digest.js';
import { ImageStoreError } from '../content/errors.js';
import { removeStaleTemps, writeDirAtomic, writeFileAtomic } from '../content/atomic-file.js';
import type { ContentStore } from '../content/store.js';
import type { ImageStore } from '../image/image-store.js';
import { AnnotationCreated } from '../image/media-types.js';
import type { Descriptor } from '../image/types.js';
import { RegistryClient } from '../registry/client.js';
import type { RegistryHostOptions } from '../registry/hosts.js';
import { pushImage } from '../registry/push.js';
import { parseReference } from '../registry/reference.js';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { packDirectories, packDirectory, type ExtraFile, type SubDirectory } from './fs-tar.js';
import { abortable } from '../image/tar-pack.js';
import { copyTree, walkTree } from './fs-tree.js';
import { statementBytes, type InTotoAttestation, type InTotoSubject } from './attestation.js';
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
  readonly platforms?: ReadonlyArray<SubDirectory & { readonly attestations?: ReadonlyArray<InTotoAttestation> | undefined }> | undefined;
  /**
   * Attestations of a local/tar result (`rootfs`): each written next to the files as
   * `<path>` (`provenance.json`), its subjects every regular file of the output with its
   * sha256, as BuildKit's local and tar exporters do. Image results carry theirs in
   * {@link ExportImageSource.attestations}.
   */
  readonly attestations?: ReadonlyArray<InTotoAttestation> | undefined;
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
      if (spec.dest !== '-') await removeStaleTemps(spec.dest);
      const copy = { mtime: ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : undefined, signal: ctx.signal };
      const pack = { sourceDateEpoch: ctx.sourceDateEpoch };
      // BuildKit's local/tar attestation files: mode 0600, the epoch or the export time (seconds).
      const attMtime = ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : new Date(Math.floor(Date.now() / 1000) * 1000);
      if (input.platforms !== undefined && input.platforms.length > 0) {
        const platforms = input.platforms;
        // fsutil.SubDirFS rejects paths that are not one name, and duplicates.
        const seen = new Set<string>();
        for (const p of platforms) {
          if (p.path === '' || p.path.includes('/') || p.path === '.' || p.path === '..') throw new ImageStoreError('EXPORT_FAILED', `invalid platform directory "${p.path}"`);
          if (seen.has(p.path)) throw new ImageStoreError('EXPORT_FAILED', `duplicate platform directory "${p.path}"`);
          seen.add(p.path);
        }
        const dirs = await Promise.all(platforms.map(async (p) => ({ ...p, extraFiles: await attestationFiles(p.rootfs, p.attestations, attMtime) })));
        if (spec.type === 'tar') await writeFileAtomic(spec.dest, abortable(packDirectories(dirs, pack), ctx.signal));
        else if (await exists(spec.dest)) {
          for (const p of dirs) {
            await copyTree(p.rootfs, join(spec.dest, p.path), { ...copy, replace: true });
            await writeExtraFiles(join(spec.dest, p.path), p.extraFiles);
          }
        } else {
          await writeDirAtomic(spec.dest, async (tmp) => {
            for (const p of dirs) {
              await copyTree(p.rootfs, join(tmp, p.path), copy);
              await writeExtraFiles(join(tmp, p.path), p.extraFiles);
            }
          });
        }
        return { type: spec.type, dest: spec.dest, names: [], pushed: [] };
      }
      if (input.rootfs === undefined) throw new ImageStoreError('EXPORT_FAILED', `type=${spec.type} needs a filesystem result`);
      const rootfs = input.rootfs;
      const extraFiles = await attestationFiles(rootfs, input.attestations, attMtime);
      if (spec.type === 'tar') await writeFileAtomic(spec.dest, abortable(packDirectory(rootfs, { ...pack, extraFiles }), ctx.signal));
      else if (await exists(spec.dest)) {
        await copyTree(rootfs, spec.dest, { ...copy, replace: true });
        await writeExtraFiles(spec.dest, extraFiles);
      } else {
        await writeDirAtomic(spec.dest, async (tmp) => {
          await copyTree(rootfs, tmp, copy);
          await writeExtraFiles(tmp, extraFiles);
        });
      }
      return { type: spec.type, dest: spec.dest, names: [], pushed: [] };
    }
    case 'oci':
    case 'docker':
    case 'image': {
      if (input.image === undefined) throw new ImageStoreError('EXPORT_FAILED', `type=${spec.type} needs an image result`);
      // BuildKit's docker exporter refuses a multi-platform result (len(src.Refs) > 0) before it
      // commits anything; checked here too because an attested one-platform list is an index
      // with one image manifest, which the archive writer alone would take for a single image.
      if (spec.type === 'docker' && Array.isArray(input.image)) {
        throw new ImageStoreError('EXPORT_FAILED', 'type=docker cannot export a multi-platform image', { hint: 'build one --platform, or use type=oci' });
      }
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
        // registry.insecure=true: https without verification, else plain http (BuildKit's push
        // marks the host insecure and plain-http, so its resolver falls back from one to the other).
        const base = ctx.registry ?? new RegistryClient();
        const insecure: Record<string, RegistryHostOptions> = {};
        if (spec.insecure) for (const n of names) insecure[parseReference(n).domain] = { ...base.transport.hosts?.[parseReference(n).domain], insecure: true, plainHttp: true };
        const client = spec.insecure ? base.withHosts(insecure) : base;
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

/**
 * The statement files of a local/tar output (BuildKit exporter/local CreateFS): subjects are the
 * tree's regular files (walk order, relative paths) with their sha256; each statement is
 * `json.MarshalIndent(stmt, "", "  ")` in a file named after the attestation's path.
 */
async function attestationFiles(rootfs: string, attestations: ReadonlyArray<InTotoAttestation> | undefined, mtime: Date): Promise<ExtraFile[] | undefined> {
  if (attestations === undefined || attestations.length === 0) return undefined;
  const subjects: InTotoSubject[] = [];
  for await (const e of walkTree(rootfs)) {
    if (!e.stat.isFile()) continue;
    const h = createHash('sha256');
    await pipeline(createReadStream(e.abs), h);
    subjects.push({ name: e.path, digest: { sha256: h.digest('hex') } });
  }
  const seen = new Set<string>();
  return attestations.map((a) => {
    const name = basename(a.path);
    if (seen.has(name)) throw new ImageStoreError('EXPORT_FAILED', `duplicate attestation path name ${name}`);
    seen.add(name);
    return { name, data: statementBytes(a, subjects, '  '), mode: 0o600, mtime };
  });
}

async function writeExtraFiles(dir: string, files: ReadonlyArray<ExtraFile> | undefined): Promise<void> {
  for (const f of files ?? []) {
    await writeFileAtomic(join(dir, f.name), f.data, f.mode);
    await utimes(join(dir, f.name), f.mtime, f.mtime);
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
