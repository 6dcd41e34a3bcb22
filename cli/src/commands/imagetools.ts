import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { formatReference, parseReference, putManifest, RegistryClient, type ImageReference } from '@kiln/runtime';
import { callerPath, type CliIo } from '../io.js';
import { kilnRoot, withInterrupt } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { acquireEngine } from '../engine/lease.js';
import { parseAnnotations } from '../imagetools/annotations.js';
import { assertRegistryName, combine, mergeDescriptor, parseSource, sourceRefs, type Source } from '../imagetools/combine.js';
import { copySources } from '../imagetools/copy.js';
import { asImagetoolsError, ImagetoolsError } from '../imagetools/errors.js';
import { formatSummary, loadImages, loadRoot, templateInput } from '../imagetools/inspect.js';
import { fetchSmallBlob, isManifestLike, registrySource, storeSource, type ManifestSource } from '../imagetools/source.js';
import { executeTemplate, parseTemplate, printsSummary } from '../imagetools/template.js';

interface InspectFlags {
  raw?: boolean;
  format?: string;
  local?: boolean;
  root?: string;
}

interface CreateFlags {
  tag: string[];
  file: string[];
  annotation: string[];
  append?: boolean;
  dryRun?: boolean;
  preferIndex: boolean;
  progress: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** `--prefer-index[=true|false]`: a value that is not a boolean is refused (it would have been a source). */
function parseBool(v: string): boolean {
  if (['true', '1'].includes(v)) return true;
  if (['false', '0'].includes(v)) return false;
  throw new ImagetoolsError('KLN0860', `invalid --prefer-index value "${v}"`, { hint: 'use --prefer-index=true or --prefer-index=false' });
}

/**
 * `kiln imagetools inspect|create`, as `docker buildx imagetools`: read an image's manifest or
 * index from a registry (or, with `--local`, the kiln image store), and combine images already in
 * registries into a new multi-platform index (or copy one to another name) without pulling layers.
 */
export function registerImagetools(program: Command, io: CliIo): void {
  const cmd = program.command('imagetools').description('work on images in registries (inspect, create multi-platform indexes)');
  cmd
    .command('inspect')
    .description('show details of an image in a registry')
    .argument('<name>', 'image reference ([registry/]name[:tag|@digest])')
    .option('--raw', 'print the manifest or index exactly as the registry serves it')
    .option('--format <template>', "Go-template subset: '{{json .Manifest}}', '{{json .Image}}', '{{json .Provenance}}', '{{json .SBOM}}', '{{println .Manifest.Digest}}'")
    .option('--local', 'read NAME from the kiln image store (kiln images) instead of its registry')
    .option('--root <dir>', 'kiln state directory (with --local)')
    .action((name: string, flags: InspectFlags) => guarded(() => inspect(io, name, flags)));
  cmd
    .command('create')
    .description('create a new image (index) from source images in registries')
    .argument('[sources...]', 'images (references), digests in the target repository, or descriptors (JSON)')
    .option('-t, --tag <ref>', 'reference to push the new image to (repeatable)', collect, [])
    .option('-f, --file <file>', 'read a source descriptor from a file (repeatable; - for stdin)', collect, [])
    .option('--annotation <annotation>', 'add an annotation: index:KEY=VALUE or manifest-descriptor[PLATFORM]:KEY=VALUE (repeatable)', collect, [])
    .option('--append', 'append the sources to the index already at the first -t')
    .option('--dry-run', 'print the new index instead of pushing it')
    .option('--prefer-index [bool]', 'with one manifest source, still make an index (false: copy the manifest as is)', parseBool, true)
    .option('--progress <mode>', 'auto, plain, tty or quiet (quiet: no copy log on stderr)', 'auto')
    .action((sources: string[], flags: CreateFlags) => guarded(() => create(io, sources, flags)));
}

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    throw asImagetoolsError(e);
  }
}

function registryClient(io: CliIo): RegistryClient {
  // The transport streams upload bodies without following redirects (fetch would keep a copy of
  // a streamed body for a possible redirect: a whole layer in memory per copied blob).
  return new RegistryClient({ credentials: callerCredentials(io) });
}

function parseTarget(s: string): ImageReference {
  assertRegistryName(s, 'target');
  return parseReference(s);
}

async function inspect(io: CliIo, name: string, flags: InspectFlags): Promise<void> {
  if (flags.format !== undefined) parseTemplate(flags.format);
  if (flags.local === true) {
    const lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path });
    try {
      await inspectFrom(io, name, storeSource(lease.engine.images, lease.engine.content, name), flags);
    } finally {
      lease.release();
    }
    return;
  }
  const ref = parseTarget(name);
  await withInterrupt(io, (signal) => inspectFrom(io, name, registrySource(registryClient(io), ref, signal), flags));
}

async function inspectFrom(io: CliIo, name: string, source: ManifestSource, flags: InspectFlags): Promise<void> {
  const r = await loadRoot(source);
  if (flags.raw === true) {
    // The exact bytes, no newline: their digest is the image's.
    io.stdout.write(r.raw);
    return;
  }
  // buildx prints the summary for an empty template and for one that starts with {{.Manifest.
  if (printsSummary(flags.format ?? '')) {
    io.stdout.write(formatSummary(r));
    return;
  }
  const loaded = await loadImages(r, /Provenance|SBOM/.test(flags.format ?? ''));
  io.stdout.write(executeTemplate(flags.format ?? '', templateInput(name, r, loaded)));
}

async function create(io: CliIo, args: string[], flags: CreateFlags): Promise<void> {
  if (args.length === 0 && flags.file.length === 0) throw new ImagetoolsError('KLN0860', 'no sources given', { hint: 'name images, digests or descriptors, or use -f FILE' });
  if (flags.dryRun !== true && flags.tag.length === 0) throw new ImagetoolsError('KLN0860', "can't push with no tags: set -t or --dry-run");
  if (!['auto', 'plain', 'tty', 'rawjson', 'quiet'].includes(flags.progress)) throw new ImagetoolsError('KLN0860', `invalid --progress "${flags.progress}"`, { hint: 'use auto, plain, tty, rawjson or quiet' });
  const targets = flags.tag.map(parseTarget);
  const annotations = parseAnnotations(flags.annotation);
  const fileArgs: string[] = [];
  for (const f of flags.file) fileArgs.push(f === '-' ? await readAll(io.stdin) : await readFile(callerPath(io, f), 'utf8').catch((e: unknown) => {
    throw new ImagetoolsError('KLN0860', `cannot read -f ${f}: ${(e as Error).message}`);
  }));
  const all = [...(flags.append === true && flags.tag[0] !== undefined ? [flags.tag[0]] : []), ...fileArgs, ...args];
  const specs = all.map(parseSource);
  const refs = sourceRefs(specs, targets);
  const client = registryClient(io);
  const log = (s: string): void => {
    if (flags.progress !== 'quiet') io.stderr.write(s);
  };
  await withInterrupt(io, async (signal) => {
    const sources: Source[] = await Promise.all(
      specs.map(async (s, i) => {
        const ref = refs[i] as ImageReference;
        let resolved;
        try {
          resolved = await client.resolve(ref, signal);
        } catch (e) {
          const err = asImagetoolsError(e);
          if (flags.append === true && i === 0 && err instanceof ImagetoolsError && err.code === 'KLN0861') {
            throw new ImagetoolsError('KLN0861', `--append: ${err.message}`, { hint: 'the first -t must name an existing image; drop --append to create it', cause: e });
          }
          throw err;
        }
        return { ref: resolved.ref, desc: s.kind === 'descriptor' ? mergeDescriptor(resolved.descriptor, s.desc) : resolved.descriptor };
      }),
    );
    const fetch = (ref: ImageReference, d: Source['desc']): Promise<Buffer> => (isManifestLike(d.mediaType) || d.mediaType === '' ? client.fetchManifest(ref, d, signal) : fetchSmallBlob(client, ref, d, signal));
    const out = await combine(sources, annotations, flags.preferIndex, fetch);
    for (const a of out.dropped) io.stderr.write(`kiln: warning: annotation ${a.key} dropped: every source is a Docker manifest, and a Docker manifest list has no annotations\n`);
    if (flags.dryRun === true) {
      io.stdout.write(Buffer.concat([out.bytes, Buffer.from('\n')]));
      return;
    }
    for (const t of targets) {
      await copySources(client, sources, t, { signal, log });
      log(`pushing ${out.desc.digest} to ${formatReference(t)}\n`);
      await putManifest(client, t, t.tag ?? out.desc.digest, out.bytes, out.desc.mediaType, signal);
      io.stdout.write(`${formatReference({ domain: t.domain, path: t.path, tag: t.tag })}@${out.desc.digest}\n`);
    }
  });
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
