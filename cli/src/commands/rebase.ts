import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { fileTarget, writeTarget } from '../engine/file-target.js';
import { acquireEngine, type EngineLease } from '../engine/lease.js';
import { rebaseImage, type RebaseResult } from '../rebase/run.js';

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
 * are kept byte for byte, the labels say which run image is below them now. A multi-platform app
 * image (an index) is rebased platform by platform into a new index (see rebase/run.ts).
 */
export function registerRebase(program: Command, io: CliIo): void {
  program
    .command('rebase')
    .description('put a buildpacks app image on a newer run image, without rebuilding it')
    .argument('<image>', 'app image (one platform, or an index: every platform): a kiln store name, or a registry reference with --publish')
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
  // checked before the rebase: a directory there would fail only after the image was rewritten
  const report = flags.report === undefined ? undefined : await fileTarget(io, '--report', flags.report);
  const r = await rebaseImage(engine, {
    image,
    runImage: flags.runImage,
    previousImage: flags.previousImage,
    tags: flags.tag ?? [],
    force: flags.force === true,
    publish,
    pull: flags.pull === true,
  });
  for (const w of r.warnings) io.stderr.write(`kiln: warning: ${w}\n`);
  if (r.pushed !== undefined) io.stderr.write(`layers: ${r.pushed.exists} already there, ${r.pushed.mounted} mounted, ${r.pushed.uploaded} uploaded\n`);
  for (const p of r.platforms) {
    const what = `${p.plan.oldRunLayers} run image layers replaced by ${p.run.manifest.layers.length}, ${p.plan.appLayers.length} app layers kept`;
    // an index: one line per platform with its new manifest digest (the names get the index's)
    io.stderr.write(r.index === undefined ? `rebased ${r.appName} onto ${p.run.reference}: ${what}\n` : `rebased ${r.appName} ${p.platform} onto ${p.run.reference}: ${what}: ${p.blobs.manifest.digest}\n`);
  }
  for (const n of r.names) io.stdout.write(`${n}@${r.root.digest}\n`);
  if (report !== undefined) await writeTarget(io, report, Buffer.from(reportToml(r, publish)));
}

/**
 * lifecycle's report.toml: `[image]` tags, image-id (a store image: the config digest), digest and
 * manifest-size of what the names point at. For an index, kiln adds one `[[image.manifests]]`
 * table per platform (platform, digest, manifest-size, and image-id for a store image).
 */
function reportToml(r: RebaseResult, publish: boolean): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = ['[image]', `  tags = [${r.names.map(q).join(', ')}]`];
  const single = r.index === undefined ? r.platforms[0] : undefined;
  if (!publish && single !== undefined) lines.push(`  image-id = ${q(single.blobs.config.digest)}`);
  lines.push(`  digest = ${q(r.root.digest)}`, `  manifest-size = ${r.root.size}`);
  if (r.index !== undefined) {
    for (const p of r.platforms) {
      lines.push('', '  [[image.manifests]]', `    platform = ${q(p.platform)}`);
      if (!publish) lines.push(`    image-id = ${q(p.blobs.config.digest)}`);
      lines.push(`    digest = ${q(p.blobs.manifest.digest)}`, `    manifest-size = ${p.blobs.manifest.size}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
