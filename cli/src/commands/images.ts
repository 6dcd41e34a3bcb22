import type { Command } from 'commander';
import { exportDockerArchive, exportOciLayout, formatReference, isIndexMediaType, parseReference, pushImage, type ContentStore, type Descriptor, type ImageRecord } from '@kiln/runtime';
import { formatBytes } from '@kiln/solver';
import type { CliIo } from '../io.js';
import { archiveDest } from '../engine/output-targets.js';
import { kilnRoot } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { EngineError } from '../engine/errors.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';

/**
 * The images `kiln build -t NAME` keeps in the kiln root's image store: `kiln images` lists
 * them, `kiln push` sends one to its registry, `kiln save` writes an OCI or Docker tarball,
 * `kiln rmi` removes the name (the blobs go with the next `kiln prune`).
 */
export function registerImages(program: Command, io: CliIo): void {
  const root = { flag: '--root <dir>', help: 'kiln state directory' } as const;
  program
    .command('images')
    .description('list the images in the kiln image store')
    .option('--digests', 'show full digests')
    .option(root.flag, root.help)
    .action((flags: { digests?: boolean; root?: string }) => withEngine(io, flags.root, (lease) => listImages(lease, io, flags.digests === true)));
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
        const res = await engine.credentials.run(callerCredentials(io), () => pushImage(engine.registry, engine.content, rec.target, [dest]));
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

async function listImages({ engine }: EngineLease, io: CliIo, full: boolean): Promise<void> {
  const recs = (await engine.images.list()).sort((a, b) => a.name.localeCompare(b.name));
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

/** Config and layer bytes of an image (each platform of an index counted), from the store's manifests. */
async function imageSize(store: ContentStore, desc: Descriptor, depth = 0): Promise<number> {
  if (depth > 4 || !(await store.has(desc.digest))) return 0;
  const doc = JSON.parse((await store.readBlob(desc.digest)).toString('utf8')) as { manifests?: Descriptor[]; layers?: Descriptor[]; config?: Descriptor };
  if (Array.isArray(doc.manifests)) {
    let total = 0;
    for (const m of doc.manifests) total += await imageSize(store, m, depth + 1);
    return total;
  }
  return (doc.config?.size ?? 0) + (doc.layers ?? []).reduce((n, l) => n + l.size, 0);
}
