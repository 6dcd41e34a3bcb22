import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { formatReference, putManifest, RegistryClient, type Descriptor } from '@kiln/runtime';
import { callerCwd, callerPath, type CliIo } from '../io.js';
import { kilnRoot, withInterrupt } from '../engine/cli-support.js';
import { callerCredentials } from '../engine/credentials.js';
import { commandConfig } from '../engine/config.js';
import { acquireEngine } from '../engine/lease.js';
import { parseAnnotations } from '../imagetools/annotations.js';
import { assertSupportedName, combine, detectMediaType, mergeDescriptor, parseSource, sourceLocations, type Source } from '../imagetools/combine.js';
import { copySources, layoutReader, layoutWriter, registryReader, registryWriter, type GraphReader } from '../imagetools/copy.js';
import { asImagetoolsError, ImagetoolsError } from '../imagetools/errors.js';
import { formatSummary, loadImages, loadRoot, templateInput } from '../imagetools/inspect.js';
import { OciLayoutDir } from '../imagetools/layout.js';
import { isLayoutName, locationName, parseLayoutLocation, parseLocation, type LayoutLocation, type Location } from '../imagetools/location.js';
import { fetchSmallBlob, isManifestLike, layoutSource, MAX_SMALL_BLOB, registrySource, storeSource, type ManifestSource } from '../imagetools/source.js';
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
 * index from a registry or an OCI layout (or, with `--local`, the kiln image store), and combine
 * images already in registries or layouts into a new multi-platform index (or copy one to another
 * name) without pulling layers into kiln.
 */
export function registerImagetools(program: Command, io: CliIo): void {
  const cmd = program.command('imagetools').description('work on images in registries and OCI layouts (inspect, create multi-platform indexes)');
  cmd
    .command('inspect')
    .description('show details of an image in a registry or an OCI layout')
    .argument('<name>', 'image reference ([registry/]name[:tag|@digest]) or oci-layout://PATH[:TAG|@DIGEST]')
    .option('--raw', 'print the manifest or index exactly as the registry (or layout) has it')
    .option('--format <template>', "Go-template subset: '{{json .Manifest}}', '{{json .Image}}', '{{json .Provenance}}', '{{json .SBOM}}', '{{println .Manifest.Digest}}', '{{range .Manifest.Manifests}}{{println .Digest}}{{end}}'")
    .option('--local', 'read NAME from the kiln image store (kiln images) instead of its registry')
    .option('--root <dir>', 'kiln state directory (with --local)')
    .action((name: string, flags: InspectFlags) => guarded(() => inspect(io, name, flags)));
  cmd
    .command('create')
    .description('create a new image (index) from source images in registries or OCI layouts')
    .argument('[sources...]', 'images (references, oci-layout://PATH[:TAG|@DIGEST]), digests in the target repository, or descriptors (JSON)')
    .option('-t, --tag <ref>', 'reference (or oci-layout://PATH[:TAG]) to push the new image to (repeatable)', collect, [])
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
  return new RegistryClient({ credentials: callerCredentials(io), hosts: commandConfig(io).registry });
}

function parseTarget(io: CliIo, s: string, role: 'target' | 'name' = 'target'): Location {
  assertSupportedName(s, role);
  return parseLocation(s, callerCwd(io));
}

async function inspect(io: CliIo, name: string, flags: InspectFlags): Promise<void> {
  if (flags.format !== undefined) parseTemplate(flags.format);
  if (isLayoutName(name)) {
    if (flags.local === true) throw new ImagetoolsError('KLN0860', '--local reads the kiln image store: it cannot be combined with an oci-layout:// name', { hint: 'drop --local' });
    await inspectFrom(io, name, layoutSource(parseLayoutLocation(name, callerCwd(io)), detectMediaType), flags);
    return;
  }
  if (flags.local === true) {
    const lease = await acquireEngine(io, { root: kilnRoot(flags.root, io).path });
    try {
      await inspectFrom(io, name, storeSource(lease.engine.images, lease.engine.content, name), flags);
    } finally {
      lease.release();
    }
    return;
  }
  const loc = parseTarget(io, name, 'name');
  if (loc.kind !== 'registry') throw new ImagetoolsError('KLN0864', `"${name}" is not a registry reference`);
  await withInterrupt(io, (signal) => inspectFrom(io, name, registrySource(registryClient(io), loc.ref, signal), flags));
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
  io.stdout.write(executeTemplate(flags.format ?? '', templateInput(name, r, loaded), { struct: true }));
}

async function create(io: CliIo, args: string[], flags: CreateFlags): Promise<void> {
  if (args.length === 0 && flags.file.length === 0) throw new ImagetoolsError('KLN0860', 'no sources given', { hint: 'name images, digests or descriptors, or use -f FILE' });
  if (flags.dryRun !== true && flags.tag.length === 0) throw new ImagetoolsError('KLN0860', "can't push with no tags: set -t or --dry-run");
  if (!['auto', 'plain', 'tty', 'rawjson', 'quiet'].includes(flags.progress)) throw new ImagetoolsError('KLN0860', `invalid --progress "${flags.progress}"`, { hint: 'use auto, plain, tty, rawjson or quiet' });
  const targets = flags.tag.map((t) => parseTarget(io, t));
  const annotations = parseAnnotations(flags.annotation);
  const fileArgs: string[] = [];
  for (const f of flags.file) fileArgs.push(f === '-' ? await readAll(io.stdin) : await readFile(callerPath(io, f), 'utf8').catch((e: unknown) => {
    throw new ImagetoolsError('KLN0860', `cannot read -f ${f}: ${(e as Error).message}`);
  }));
  const all = [...(flags.append === true && flags.tag[0] !== undefined ? [flags.tag[0]] : []), ...fileArgs, ...args];
  const fromFile = (i: number): string | undefined => flags.file[i - (all.length - args.length - fileArgs.length)];
  const specs = all.map((a, i) => {
    try {
      return parseSource(a, callerCwd(io));
    } catch (e) {
      // a descriptor read with -f: the error names the file (the JSON itself says nothing of where it came from)
      const f = fromFile(i);
      if (f === undefined || !(e instanceof ImagetoolsError)) throw e;
      throw new ImagetoolsError(e.code, `-f ${f === '-' ? '- (standard input)' : f}: ${e.message}`, { ...(e.hint === undefined ? {} : { hint: e.hint }), cause: e });
    }
  });
  const locs = sourceLocations(specs, targets);
  const client = registryClient(io);
  const log = (s: string): void => {
    if (flags.progress !== 'quiet') io.stderr.write(s);
  };
  await withInterrupt(io, async (signal) => {
    const sources: Source[] = await Promise.all(
      specs.map(async (s, i) => {
        const loc = locs[i] as Location;
        let resolved: { loc: Location; desc: Descriptor };
        try {
          resolved = await resolveSource(client, loc, signal);
        } catch (e) {
          const err = asImagetoolsError(e);
          if (flags.append === true && i === 0 && err instanceof ImagetoolsError && err.code === 'KLN0861') {
            throw new ImagetoolsError('KLN0861', `--append: ${err.message}`, { hint: 'the first -t must name an existing image; drop --append to create it', cause: e });
          }
          throw err;
        }
        return { loc: resolved.loc, desc: s.kind === 'descriptor' ? mergeDescriptor(resolved.desc, s.desc) : resolved.desc };
      }),
    );
    const fetch = (loc: Location, d: Descriptor): Promise<Buffer> => {
      if (loc.kind === 'layout') return new OciLayoutDir(loc.dir).fetch(d, isManifestLike(d.mediaType) || d.mediaType === '' ? undefined : MAX_SMALL_BLOB);
      return isManifestLike(d.mediaType) || d.mediaType === '' ? client.fetchManifest(loc.ref, d, signal) : fetchSmallBlob(client, loc.ref, d, signal);
    };
    const out = await combine(sources, annotations, flags.preferIndex, fetch);
    for (const a of out.dropped) io.stderr.write(`kiln: warning: annotation ${a.key} dropped: every source is a Docker manifest, and a Docker manifest list has no annotations\n`);
    for (const a of out.unmatched?.annotations ?? []) {
      io.stderr.write(`kiln: warning: annotation manifest-descriptor[${a.platform ?? ''}]:${a.key} applied to nothing: no manifest of platform ${a.platform ?? ''} (the index has ${out.unmatched?.platforms.join(', ') || 'none'})\n`);
    }
    // buildx's ValidateTargetDigest: a target named by digest, in a layout or a registry, must get
    // that digest (checked before anything is written)
    for (const t of targets) {
      const want = t.kind === 'layout' ? t.digest : t.ref.digest;
      if (want !== undefined && want !== out.desc.digest) {
        throw new ImagetoolsError('KLN0860', `target ${locationName(t)} requested digest ${want} but produced ${out.desc.digest}`, {
          hint: t.kind === 'layout' ? 'name the layout target by tag: -t oci-layout://DIR:TAG' : 'name the target by tag: -t [registry/]name:tag',
        });
      }
    }
    if (flags.dryRun === true) {
      io.stdout.write(Buffer.concat([out.bytes, Buffer.from('\n')]));
      return;
    }
    const readers = sources.map((s) => ({ from: readerFor(client, s.loc), desc: s.desc }));
    for (const t of targets) {
      if (t.kind === 'registry') {
        await copySources(readers, registryWriter(client, t.ref), { signal, log });
        log(`pushing ${out.desc.digest} to ${formatReference(t.ref)}\n`);
        await putManifest(client, t.ref, t.ref.tag ?? out.desc.digest, out.bytes, out.desc.mediaType, signal);
        io.stdout.write(`${formatReference({ domain: t.ref.domain, path: t.ref.path, tag: t.ref.tag })}@${out.desc.digest}\n`);
      } else {
        await writeToLayout(t, readers, out, { signal, log });
        io.stdout.write(`${locationName({ ...t, digest: undefined })}@${out.desc.digest}\n`);
      }
    }
  });
}

/** A source's descriptor: resolved in its registry, or found in its layout's index.json or blobs. */
async function resolveSource(client: RegistryClient, loc: Location, signal: AbortSignal): Promise<{ loc: Location; desc: Descriptor }> {
  if (loc.kind === 'layout') return { loc, desc: await new OciLayoutDir(loc.dir, locationName({ ...loc, tag: undefined, digest: undefined })).resolve(loc, detectMediaType) };
  const r = await client.resolve(loc.ref, signal);
  return { loc: { kind: 'registry', ref: r.ref }, desc: r.descriptor };
}

function readerFor(client: RegistryClient, loc: Location): GraphReader {
  return loc.kind === 'registry' ? registryReader(client, loc.ref) : layoutReader(new OciLayoutDir(loc.dir, locationName({ ...loc, tag: undefined, digest: undefined })));
}

/**
 * `-t oci-layout://DIR[:TAG]` (buildx's pushOCILayout): the sources' blobs copied into DIR's
 * blobs/ (created when missing), the new index or manifest written there, and then named in
 * index.json under the tag (`latest` when none is given; a `@DIGEST` target adds it untagged).
 */
async function writeToLayout(t: LayoutLocation, readers: ReadonlyArray<{ from: GraphReader; desc: Descriptor }>, out: { bytes: Buffer; desc: Descriptor }, opts: { signal: AbortSignal; log: (s: string) => void }): Promise<void> {
  const layout = new OciLayoutDir(t.dir, locationName({ ...t, tag: undefined, digest: undefined }));
  const writer = layoutWriter(layout);
  await copySources(readers, writer, opts);
  opts.log(`writing ${out.desc.digest} to ${locationName(t)}\n`);
  if (!(await layout.has(out.desc))) await layout.writeBlob(out.desc, [out.bytes], opts.signal);
  await layout.tag({ mediaType: out.desc.mediaType, digest: out.desc.digest, size: out.desc.size }, t.digest !== undefined ? undefined : (t.tag ?? 'latest'), opts.signal);
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}
