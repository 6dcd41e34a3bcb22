import type { Command } from 'commander';
import { hostPlatform, parseReference, writeFileAtomic, type Platform } from '@kiln/runtime';
import { resolve } from 'node:path';
import { callerCwd, type CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { RebaseError } from '../rebase/errors.js';
import { asRunImage, multiPlatformWarning, pushRebased, readRegistryImage, readStoreImage, rebasedBlobs, storeRebased, targetNames, type SourcedImage } from '../rebase/images.js';
import { appRunImage, defaultRunImageName, isImageId, planRebase, topLayerAmbiguous } from '../rebase/plan.js';

/** Options of `kiln rebase`. */
interface RebaseFlags {
  runImage?: string;
  previousImage?: string;
  tag?: string[];
  force?: boolean;
  publish?: boolean;
  pull?: boolean;
  report?: string;
  root?: string;
}

/**
 * `kiln rebase IMAGE`: puts a Cloud Native Buildpacks app image on a newer run image without a
 * rebuild, as `pack rebase` (lifecycle's rebaser): the layers above the old run image's top layer
 * are kept byte for byte, the labels say which run image is below them now.
 */
export function registerRebase(program: Command, io: CliIo): void {
  program
    .command('rebase')
    .description('put a buildpacks app image on a newer run image, without rebuilding it')
    .argument('<image>', 'app image: a kiln store name, or a registry reference with --publish')
    .option('--run-image <ref>', "run image to rebase onto (default: the app's recorded run image, newest)")
    .option('--previous-image <ref>', 'image to rebase, written to IMAGE (default: IMAGE itself)')
    .option('-t, --tag <name>', 'additional name for the rebased image (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--force', 'rebase although the image is not rebasable, the target differs or the run image is another one')
    .option('--publish', "read the app image from its registry and push the rebased one there (layers mounted, not copied)")
    .option('--pull', 'resolve the run image in its registry even if the kiln store has it')
    .option('--report <file>', 'write a report.toml (image tags and digest)')
    .option('--root <dir>', 'kiln state directory')
    .action(async (image: string, flags: RebaseFlags) => {
      const lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path });
      try {
        // a build mark: a kiln prune meanwhile would take the new config and manifest blobs
        await lease.begin();
        await lease.engine.credentials.run(callerCredentials(io), () => rebase(lease, io, image, flags));
      } finally {
        lease.release();
      }
    });
}

async function rebase({ engine }: EngineLease, io: CliIo, image: string, flags: RebaseFlags): Promise<void> {
  const publish = flags.publish === true;
  // checked first: a bad name to write refuses before anything is read or pulled
  const names = targetNames(image, flags.tag ?? []);
  const source = flags.previousImage ?? image;
  const app = publish ? await readRegistryImage(engine.registry, source, hostPlatform()) : await readStoreImage(engine.content, engine.images, source, hostPlatform());
  if (app === undefined) {
    throw new RebaseError('KLN0925', `no image ${source} in the kiln store`, { hint: 'kiln images lists them; --publish rebases an image in a registry' });
  }
  const recorded = appRunImage(app);
  // publishing: a mirror in the target registry first (mountable layers)
  const target = publish ? parseReference(names[0] ?? image).domain : undefined;
  const runName = flags.runImage ?? defaultRunImageName(recorded, target);
  if (runName === undefined) throw new RebaseError('KLN0920', `${app.name} records no run image name`, { hint: 'pass --run-image REF' });
  const platform: Platform = { os: app.config.os, architecture: app.config.architecture, ...(app.config.variant === undefined ? {} : { variant: app.config.variant }) };
  const run = asRunImage(await readRunImage(engine, runName, platform, publish, flags.pull === true));
  const oldRun = topLayerAmbiguous(app) ? await readOldRunImage(engine, recorded.reference, platform, publish) : undefined;
  const plan = planRebase({ app, runImage: run, force: flags.force === true, ...(oldRun === undefined ? {} : { oldRunImage: { diffIds: oldRun.config.rootfs.diff_ids } }) });
  const multi = multiPlatformWarning(app, hostPlatform());
  for (const w of [...(multi === undefined ? [] : [multi]), ...plan.warnings]) io.stderr.write(`kiln: warning: ${w}\n`);
  const blobs = rebasedBlobs(plan.manifest, plan.config);
  if (publish) {
    const layers = [
      ...run.manifest.layers.map((desc) => ({ desc, from: run.repository })),
      ...plan.appLayers.map((desc) => ({ desc, from: app.repository })),
    ];
    const counts = await pushRebased(engine.registry, engine.content, blobs, layers, names);
    io.stderr.write(`layers: ${counts.exists} already there, ${counts.mounted} mounted, ${counts.uploaded} uploaded\n`);
  } else {
    await storeRebased(engine.content, engine.images, blobs, names);
  }
  io.stderr.write(`rebased ${app.name} onto ${run.reference}: ${plan.oldRunLayers} run image layers replaced by ${run.manifest.layers.length}, ${plan.appLayers.length} app layers kept\n`);
  for (const n of names) io.stdout.write(`${n}@${blobs.manifest.digest}\n`);
  if (flags.report !== undefined) {
    // lifecycle's report.toml ([image] tags, image-id for a daemon image, digest, manifest-size)
    const q = (s: string): string => JSON.stringify(s);
    const lines = ['[image]', `  tags = [${names.map(q).join(', ')}]`];
    if (!publish) lines.push(`  image-id = ${q(blobs.config.digest)}`);
    lines.push(`  digest = ${q(blobs.manifest.digest)}`, `  manifest-size = ${blobs.manifest.size}`, '');
    await writeFileAtomic(resolve(callerCwd(io), flags.report), Buffer.from(lines.join('\n')));
  }
}

/**
 * The new run image. Publishing: read in its registry (manifest and config; its layers are
 * mounted). Otherwise from the kiln store, pulled into it first when it is not there or `pull`.
 */
async function readRunImage(engine: EngineLease['engine'], name: string, platform: Platform, publish: boolean, pull: boolean): Promise<SourcedImage> {
  if (publish) return readRegistryImage(engine.registry, name, platform);
  if (!pull) {
    const stored = await readStoreImage(engine.content, engine.images, name, platform);
    if (stored !== undefined) return stored;
  }
  try {
    await engine.registry.pull(name, engine.content, { platform, images: engine.images });
  } catch (cause) {
    const why = cause instanceof Error ? `: ${cause.message.split('\n')[0] ?? ''}` : '';
    throw new RebaseError('KLN0925', `the run image ${name} is not in the kiln store and cannot be pulled${why}`, { cause });
  }
  const pulled = await readStoreImage(engine.content, engine.images, name, platform);
  if (pulled === undefined) throw new RebaseError('KLN0925', `the run image ${name} was pulled but is not in the kiln store`);
  return pulled;
}

/**
 * The old run image (runImage.reference, `repo@digest`), only read when its top layer occurs more
 * than once in the app image: from the kiln store by digest, else its registry (manifest and
 * config only). Undefined when neither has it.
 */
async function readOldRunImage(engine: EngineLease['engine'], reference: string, platform: Platform, publish: boolean): Promise<SourcedImage | undefined> {
  // an image ID (lifecycle exporting to a daemon: the config digest) names nothing to read
  if (reference === '' || isImageId(reference)) return undefined;
  if (!publish) {
    const stored = await readStoreImage(engine.content, engine.images, reference, platform).catch(() => undefined);
    if (stored !== undefined) return stored;
  }
  return readRegistryImage(engine.registry, reference, platform).catch(() => undefined);
}
