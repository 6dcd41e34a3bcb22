import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  compatiblePlatforms,
  exportDockerArchive,
  formatPlatform,
  exportOciLayout,
  familiarReference,
  formatReference,
  hostPlatform,
  importImageArchive,
  ImageStoreError,
  isIndexMediaType,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  parseReference,
  platformEquals,
  pushImage,
  withTarget,
  type ContentStore,
  type Descriptor,
  type ImageRecord,
  type Platform,
} from '@kiln/runtime';
import { formatBytes } from '@kiln/solver';
import { CodedError } from '../coded-error.js';
import { callerPath, type CliIo } from '../io.js';
import { archiveDest } from '../engine/output-targets.js';
import { kilnRoot, withInterrupt } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { EngineError } from '../engine/errors.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';

/** Codes of `kiln load`, `kiln pull` and `kiln tag` (the older image commands use EngineError's). */
type ImagesErrorCode =
  | 'KLN0870' // kiln load: the input is no usable image archive (not a tar, truncated, damaged, incomplete)
  | 'KLN0871' // a name is not a valid image reference (in a loaded archive, kiln pull's REF, kiln tag's TARGET)
  | 'KLN0872' // kiln load has nothing to read: standard input is a terminal, -i FILE cannot be read
  | 'KLN0873'; // kiln pull: the registry could not give the image (unknown, unreachable, denied, no such platform)

/** An error of `kiln load`, `kiln pull` or `kiln tag`: stable code, one-line message, hint. */
class ImagesError extends CodedError<ImagesErrorCode> {
  override readonly name = 'ImagesError';
}

/**
 * The images `kiln build -t NAME` keeps in the kiln root's image store: `kiln images` lists
 * them, `kiln push` sends one to its registry, `kiln save` writes an OCI or Docker tarball,
 * `kiln rmi` removes the name (the blobs go with the next `kiln prune`). `kiln load` reads such
 * tarballs back (and docker save's, skopeo's), `kiln pull` fetches an image from its registry as
 * `FROM` would, `kiln tag` adds a name.
 */
export function registerImages(program: Command, io: CliIo): void {
  const root = { flag: '--root <dir>', help: 'kiln state directory' } as const;
  program
    .command('images')
    .description('list the images in the kiln image store')
    .option('--digests', 'show full digests')
    .option('-a, --all', 'also list the digest-pinned names (REPO@sha256:…) that FROM records beside a tagged name of the same image')
    .option(root.flag, root.help)
    .action((flags: { digests?: boolean; all?: boolean; root?: string }) => withEngine(io, flags.root, (lease) => listImages(lease, io, flags.digests === true, flags.all === true)));
  program
    .command('push')
    .description('push an image of the kiln store to its registry (or to TARGET)')
    .argument('<name>', 'image name in the store')
    .argument('[target]', 'reference to push to (default: NAME)')
    .option(root.flag, root.help)
    .action((name: string, target: string | undefined, flags: { root?: string }) =>
      withEngine(io, flags.root, async ({ engine }) => {
        const rec = await findImage(engine.images, name);
        const dest = target ?? rec.name;
        // Ctrl-C or SIGTERM stops the uploads and says so (KLN0705), as a build does.
        const res = await engine.credentials.run(callerCredentials(io), () => withInterrupt(io, (signal) => pushImage(engine.registry, engine.content, rec.target, [dest], { signal })));
        io.stdout.write(`${formatReference(parseReference(dest))}@${res.digest}\n`);
      }),
    );
  program
    .command('save')
    .description('write images of the kiln store to an OCI (default) or Docker tarball')
    .argument('<names...>', 'image names in the store')
    .option('-o, --output <file>', 'tarball to write (default -: stdout, which must not be a terminal)', '-')
    .option('--format <format>', 'oci or docker', 'oci')
    .option(root.flag, root.help)
    .action((names: string[], flags: { output: string; format: string; root?: string }) =>
      withEngine(io, flags.root, async ({ engine }) => {
        if (flags.format !== 'oci' && flags.format !== 'docker') throw new EngineError('KLN0707', `invalid --format "${flags.format}"`, { hint: 'use oci or docker' });
        const recs = await Promise.all(names.map((n) => findImage(engine.images, n)));
        const first = recs[0] as ImageRecord;
        if (recs.some((r) => r.target.digest !== first.target.digest)) {
          throw new EngineError('KLN0707', 'kiln save writes one image (several names of it are fine)', { hint: 'save each image to its own file' });
        }
        // As docker save: stdout without -o; a device or FIFO is written in place, not replaced.
        const dest = await archiveDest(io, '--output', flags.output);
        try {
          const names_ = recs.map((r) => r.name);
          if (flags.format === 'oci') await exportOciLayout(engine.content, first.target, dest.path, names_, { tar: true });
          else await exportDockerArchive(engine.content, first.target, dest.path, names_);
          await dest.deliver();
        } finally {
          await dest.remove();
        }
        // The summary goes where the archive does not.
        const summary = `${dest.target.kind === 'file' ? dest.path : dest.target.given}: ${first.target.digest}\n`;
        if (dest.target.kind === 'stdout') io.stderr.write(summary);
        else io.stdout.write(summary);
      }),
    );
  program
    .command('load')
    .description('load images from an OCI or Docker tarball (kiln save, docker save, skopeo; plain, gzip or zstd) into the kiln store')
    .option('-i, --input <file>', 'tarball to read (default -: standard input, which must not be a terminal)', '-')
    .option(root.flag, root.help)
    .action((flags: { input: string; root?: string }) => withEngine(io, flags.root, (lease) => loadImages(lease, io, flags.input)));
  program
    .command('pull')
    .description('pull an image from its registry into the kiln store (registry config, mirrors and credentials as for FROM)')
    .argument('<ref>', 'image reference, e.g. busybox or localhost:5000/team/app:1')
    .option('--platform <platform>', 'the platform to pull from a multi-platform image (default: this machine\'s)')
    .option('--all-platforms', 'pull every platform of a multi-platform image')
    .option(root.flag, root.help)
    .action((ref: string, flags: { platform?: string; allPlatforms?: boolean; root?: string }) => withEngine(io, flags.root, (lease) => pullImage(lease, io, ref, flags)));
  program
    .command('tag')
    .description('give an image of the kiln store another name')
    .argument('<source>', 'image name in the store (or its digest, as kiln images prints it)')
    .argument('<target>', 'the new name')
    .option(root.flag, root.help)
    .action((source: string, target: string, flags: { root?: string }) => withEngine(io, flags.root, (lease) => tagImage(lease, source, target)));
  program
    .command('rmi')
    .description('remove image names from the kiln store')
    .argument('<names...>', 'image names')
    .option(root.flag, root.help)
    .action((names: string[], flags: { root?: string }) =>
      withEngine(io, flags.root, async ({ engine }) => {
        for (const n of names) {
          const rec = await findImage(engine.images, n);
          await engine.images.delete(rec.name);
          io.stdout.write(`Untagged: ${rec.name}\n`);
        }
      }),
    );
}

/** `kiln load`: the images of an archive into the store, a `Loaded image` line each, as docker load. */
async function loadImages(lease: EngineLease, io: CliIo, input: string): Promise<void> {
  const source = await loadInput(io, input);
  const loaded = await withInterrupt(io, async (signal) => {
    // Marked as a build: a prune waits, so blobs stored before the names are set stay.
    await lease.begin(signal);
    return importImageArchive(source.bytes, { store: lease.engine.content, images: lease.engine.images, signal, name: source.name }).catch((e: unknown) => {
      throw e instanceof ImageStoreError ? new ImagesError(e.code === 'REFERENCE_INVALID' ? 'KLN0871' : 'KLN0870', e.message, { hint: e.hint, cause: e }) : e;
    });
  });
  for (const img of loaded) {
    if (img.names.length === 0) io.stdout.write(`Loaded image ID: ${img.id}\n`);
    for (const n of img.names) io.stdout.write(`Loaded image: ${n}\n`);
  }
}

const STDIN_PATHS: ReadonlySet<string> = new Set(['/dev/stdin', '/dev/fd/0', '/proc/self/fd/0']);

/** The bytes `kiln load` reads: the caller's stdin (never a terminal) or `-i FILE`. */
async function loadInput(io: CliIo, input: string): Promise<{ readonly bytes: AsyncIterable<Uint8Array>; readonly name: string }> {
  // The caller's stdin by its path too: under the daemon, the path would name the daemon's own.
  if (input === '-' || STDIN_PATHS.has(input)) {
    if ((io.stdin as { isTTY?: boolean }).isTTY === true) {
      throw new ImagesError('KLN0872', 'kiln load reads an archive from standard input, which is a terminal', { hint: 'pipe one in (docker save IMAGE | kiln load) or pass -i FILE' });
    }
    return { bytes: io.stdin, name: 'standard input' };
  }
  const path = callerPath(io, input);
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new ImagesError('KLN0872', `-i ${input}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { hint: 'give the path of an image tarball (docker save -o, skopeo copy … docker-archive:|oci-archive:, kiln save -o)' });
  });
  if (st.isDirectory()) {
    throw new ImagesError('KLN0872', `-i ${input} is a directory`, { hint: `kiln load reads a tarball; pack an OCI layout directory on the way in: tar -C ${input} -cf - . | kiln load` });
  }
  return { bytes: createReadStream(path, { highWaterMark: 1 << 20 }), name: input };
}

/** `kiln pull`: the image into the store under REF's name, through the registry client FROM uses. */
async function pullImage(lease: EngineLease, io: CliIo, reference: string, flags: { platform?: string; allPlatforms?: boolean }): Promise<void> {
  const ref = parseName(reference, 'REF');
  const name = formatReference(ref);
  if (flags.platform !== undefined && flags.allPlatforms === true) {
    throw new EngineError('KLN0707', '--platform and --all-platforms cannot be combined', { hint: 'pull one platform, or all of them' });
  }
  let platform: Platform | undefined = hostPlatform();
  if (flags.allPlatforms === true) platform = undefined;
  else if (flags.platform !== undefined) {
    try {
      platform = parsePlatform(flags.platform);
    } catch (e) {
      throw new EngineError('KLN0707', `invalid --platform "${flags.platform}"`, { hint: 'use os/arch[/variant], e.g. linux/arm64', cause: e });
    }
  }
  const { engine } = lease;
  let fetched = 0;
  const before = await engine.images.get(name).catch(() => undefined);
  const pulled = await withInterrupt(io, async (signal) => {
    await lease.begin(signal);
    return engine.credentials
      .run(callerCredentials(io), () => engine.registry.pull(ref, engine.content, { platform, signal, onBlob: (_d, status) => void (status === 'done' && fetched++) }))
      .catch((e: unknown) => {
        throw e instanceof ImageStoreError ? new ImagesError('KLN0873', `pull ${name}: ${e.message}`, { hint: e.hint, cause: e }) : e;
      });
  });
  await engine.images.put(name, plainDescriptor(pulled.descriptor));
  if (flags.platform !== undefined && platform !== undefined) await warnOtherPlatform(engine.content, pulled.descriptor, name, platform, io);
  // As docker pull: the digest, whether anything was new, and the name.
  const fresh = fetched > 0 || before?.target.digest !== pulled.descriptor.digest;
  io.stdout.write(`Digest: ${pulled.descriptor.digest}\nStatus: ${fresh ? 'Downloaded newer image' : 'Image is up to date'} for ${name}\n${name}\n`);
}

/**
 * `--platform` on an image of one manifest (no index to choose from) of another platform: kept,
 * with docker pull's warning (a build FROM it with that --platform still runs it, as BuildKit
 * does). containerd's `ctr pull --platform` takes it silently; docker says so, and so does kiln.
 */
async function warnOtherPlatform(store: ContentStore, desc: Descriptor, name: string, want: Platform, io: CliIo): Promise<void> {
  if (isIndexMediaType(desc.mediaType)) return;
  const parsed = parseManifest(await store.readBlob(desc.digest), desc.mediaType);
  if (parsed.kind !== 'manifest') return;
  const config = parseImageConfig(await store.readBlob(parsed.manifest.config.digest));
  const actual: Platform = { os: config.os, architecture: config.architecture, ...(typeof config.variant === 'string' ? { variant: config.variant } : {}) };
  if (compatiblePlatforms(want).some((p) => platformEquals(actual, p))) return;
  io.stderr.write(`WARNING: image with reference ${name} was found but its platform (${formatPlatform(actual)}) does not match the specified platform (${formatPlatform(want)})\n`);
}

/** `kiln tag`: TARGET names the image SOURCE names (a name, or the digest `kiln images` shows). */
async function tagImage({ engine }: EngineLease, source: string, target: string): Promise<void> {
  const ref = parseName(target, 'TARGET');
  // A digest is the image's own name, not one to give: `tag busybox busybox@sha256:<other>` would
  // list a digest the image does not have (docker tag refuses every digest reference).
  if (ref.digest !== undefined) {
    throw new ImagesError('KLN0871', `TARGET "${target}" is a digest reference: kiln tag gives a name with a tag, not a digest`, {
      hint: `drop the @digest (e.g. ${familiarReference(withTarget(ref, { tag: ref.tag ?? 'latest' }))})`,
    });
  }
  const name = formatReference(ref);
  const rec = await findImage(engine.images, source).catch(async (e: unknown) => {
    const byDigest = await findByDigest(engine.images, source);
    if (byDigest === undefined) throw e;
    return byDigest;
  });
  await engine.images.put(name, plainDescriptor(rec.target));
}

/** The record whose image digest is `given` (`sha256:…`, or a prefix of 12+ hex as `kiln images` prints), if exactly one image has it. */
async function findByDigest(images: EngineLease['engine']['images'], given: string): Promise<ImageRecord | undefined> {
  const hex = given.replace(/^sha256:/, '');
  if (!/^[a-f0-9]{12,64}$/.test(hex)) return undefined;
  const hits = (await images.list()).filter((r) => r.target.digest.slice('sha256:'.length).startsWith(hex));
  if (new Set(hits.map((r) => r.target.digest)).size > 1) {
    throw new EngineError('KLN0701', `${given} is the start of more than one image digest`, { hint: 'give more of the digest (kiln images --digests)' });
  }
  return hits[0];
}

function parseName(given: string, what: string): ReturnType<typeof parseReference> {
  try {
    return parseReference(given);
  } catch (e) {
    throw new ImagesError('KLN0871', `${what} "${given}" is not a valid image reference (${e instanceof Error ? e.message : String(e)})`, {
      hint: 'use [HOST[:PORT]/]NAME[:TAG][@DIGEST], lowercase (e.g. busybox, localhost:5000/team/app:1)',
      cause: e,
    });
  }
}

function plainDescriptor(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

async function withEngine(io: CliIo, root: string | undefined, fn: (lease: EngineLease) => Promise<void>): Promise<void> {
  const lease = await acquireEngine(io, { root: kilnRoot(root, io).path });
  try {
    await fn(lease);
  } finally {
    lease.release();
  }
}

/** The record of `name`, as given or normalised (`app` is `docker.io/library/app:latest`). */
async function findImage(images: EngineLease['engine']['images'], name: string): Promise<ImageRecord> {
  let normalised: string | undefined;
  try {
    normalised = formatReference(parseReference(name));
  } catch {
    normalised = undefined;
  }
  const rec = (await images.get(name)) ?? (normalised === undefined ? undefined : await images.get(normalised));
  if (rec === undefined) throw new EngineError('KLN0701', `no image ${name} in the kiln store`, { hint: 'kiln images lists them; kiln build -t NAME adds one' });
  return rec;
}

async function listImages({ engine }: EngineLease, io: CliIo, full: boolean, all: boolean): Promise<void> {
  const every = (await engine.images.list()).sort((a, b) => a.name.localeCompare(b.name));
  // A build pins each FROM as REPO@DIGEST in the store; beside a tagged name of the same image that
  // row says nothing new (docker images lists digests with --digests, not as rows of their own).
  const repo = (name: string): string => (name.lastIndexOf(':') > name.lastIndexOf('/') ? name.slice(0, name.lastIndexOf(':')) : name);
  const tagged = new Set(every.filter((r) => !r.name.includes('@')).map((r) => `${repo(r.name)}@${r.target.digest}`));
  const recs = all ? every : every.filter((r) => !tagged.has(r.name));
  const rows = await Promise.all(
    recs.map(async (r) => ({
      name: r.name,
      digest: full ? r.target.digest : r.target.digest.replace('sha256:', '').slice(0, 12),
      platforms: isIndexMediaType(r.target.mediaType) ? 'multi' : 'single',
      size: formatBytes(await imageSize(engine.content, r.target)),
      created: r.createdAt,
    })),
  );
  const w = Math.max(4, ...rows.map((r) => r.name.length));
  const dw = Math.max(6, ...rows.map((r) => r.digest.length));
  io.stdout.write(`${'NAME'.padEnd(w)}  ${'DIGEST'.padEnd(dw)}  ${'SIZE'.padStart(10)}  CREATED\n`);
  for (const r of rows) io.stdout.write(`${r.name.padEnd(w)}  ${r.digest.padEnd(dw)}  ${r.size.padStart(10)}  ${r.created}\n`);
}

/**
 * Config and layer bytes of an image (each platform of an index counted), from the store's
 * manifests: each blob once, and each manifest or index read once however often indexes name it.
 */
export async function imageSize(store: ContentStore, desc: Descriptor, depth = 0, seen = new Set<string>()): Promise<number> {
  if (depth > 4 || seen.has(desc.digest)) return 0;
  seen.add(desc.digest);
  if (!(await store.has(desc.digest))) return 0;
  const doc = JSON.parse((await store.readBlob(desc.digest)).toString('utf8')) as { manifests?: Descriptor[]; layers?: Descriptor[]; config?: Descriptor };
  if (Array.isArray(doc.manifests)) {
    let total = 0;
    for (const m of doc.manifests) total += await imageSize(store, m, depth + 1, seen);
    return total;
  }
  let total = 0;
  for (const b of [...(doc.config === undefined ? [] : [doc.config]), ...(doc.layers ?? [])]) {
    if (seen.has(b.digest)) continue;
    seen.add(b.digest);
    total += b.size;
  }
  return total;
}
