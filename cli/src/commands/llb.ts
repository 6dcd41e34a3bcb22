import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { CommanderError, Option, type Command } from 'commander';
import { defaultPlatform, definitionToDot, definitionToJsonLines, encodeDefinition, parseDigest } from '@kiln/llb-core';
import type { ImageMetaResolver } from '@kiln/llb-core';
import { KilnError, convertDockerfile, formatError, parseDockerignore } from '@kiln/dockerfile';
import { ContentStore, ImageStore, RegistryClient, registryMetaResolver } from '@kiln/runtime';
import { StoreFirstMetaResolver } from '../engine/image-meta.js';
import { CliError, readAll, type CliIo } from '../io.js';

/** Output formats of `kiln llb`. */
export type LlbFormat = 'json' | 'dot' | 'pb';

/** Options of `kiln llb`. */
export interface LlbCommandOptions {
  readonly file?: string;
  readonly target?: string;
  readonly buildArg: readonly string[];
  readonly platform?: string;
  readonly sessionId?: string;
  readonly format: LlbFormat;
  readonly imageConfig?: string;
  readonly root?: string;
}

/**
 * The registry resolver, adapted to the frontend's ImageMetaResolver (plain http for localhost);
 * with a kiln root, images in its store answer first, exactly as `kiln build --root` resolves them.
 */
async function imageResolver(root: string | undefined): Promise<ImageMetaResolver> {
  const registry = new RegistryClient();
  const inner =
    root === undefined
      ? registryMetaResolver(registry)
      : new StoreFirstMetaResolver(await ImageStore.open(root), await ContentStore.open(root), registry);
  return {
    async resolveImageConfig(ref, opts) {
      const res = await inner.resolveImageConfig(ref, {
        ...(opts.platform === undefined ? {} : { platform: opts.platform }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
      return { digest: parseDigest(String(res.digest)), config: res.config, ...(res.ref === undefined ? {} : { ref: res.ref }) };
    },
  };
}

function parseBuildArgs(list: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) {
      // docker build takes `--build-arg NAME` from the environment
      const v = i < 0 ? process.env[kv] : undefined;
      if (i === 0 || v === undefined) throw new CliError('KLN_CLI_ARG', `invalid --build-arg ${JSON.stringify(kv)}`, 'write --build-arg NAME=value');
      out.set(kv, v);
    } else out.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return out;
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.kiln-tmp`);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Converts the Dockerfile and writes the LLB in `opts.format` (throws KilnError / CliError). */
export async function runLlb(context: string, opts: LlbCommandOptions, io: CliIo, resolver?: ImageMetaResolver): Promise<void> {
  const file = opts.file ?? join(context, 'Dockerfile');
  let text: Uint8Array;
  try {
    text = file === '-' ? await readAll(io.stdin) : await readFile(file);
  } catch (e) {
    const reason = (e as { code?: string }).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new CliError('KLN_CLI_READ', `cannot read ${file}: ${reason}`, opts.file === undefined ? 'pass the Dockerfile with -f FILE' : undefined);
  }
  const name = file === '-' ? 'Dockerfile' : file;
  // `<Dockerfile>.dockerignore` next to the Dockerfile wins over CONTEXT/.dockerignore (as BuildKit).
  const ignore = (file === '-' ? undefined : await readFile(`${file}.dockerignore`, 'utf8').catch(() => undefined)) ??
    (await readFile(join(context, '.dockerignore'), 'utf8').catch(() => undefined));
  const excludePatterns = ignore === undefined ? [] : parseDockerignore(ignore);
  try {
    const res = await convertDockerfile(text, {
      file: name,
      buildArgs: parseBuildArgs(opts.buildArg),
      ...(opts.target === undefined ? {} : { target: opts.target }),
      ...(opts.platform === undefined ? {} : { targetPlatform: opts.platform }),
      // the worker's platform, as BuildKit's build platforms (BUILDPLATFORM, FROM --platform=$BUILDPLATFORM)
      buildPlatforms: [defaultPlatform()],
      ...(opts.sessionId === undefined ? {} : { sessionId: opts.sessionId }),
      metaResolver: resolver ?? (await imageResolver(opts.root)),
      ...(excludePatterns.length > 0 ? { excludePatterns } : {}),
    });
    const out = opts.format === 'dot' ? definitionToDot(res.definition) : opts.format === 'pb' ? encodeDefinition(res.definition) : definitionToJsonLines(res.definition);
    if (opts.imageConfig !== undefined) await writeAtomic(resolvePath(opts.imageConfig), res.imageConfigJson);
    io.stdout.write(out);
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    io.stderr.write(`${formatError(e, { file: name, text: new TextDecoder().decode(text) })}\n`);
    throw new CommanderError(1, e.code, e.message);
  }
}

/** Registers `kiln llb [CONTEXT] [-f FILE] [--target T] [--build-arg K=V]... [--platform P] [--session-id ID] [--format json|dot|pb] [--image-config FILE]`. */
export function registerLlb(program: Command, io: CliIo): void {
  program
    .command('llb')
    .description("print a Dockerfile's LLB (JSON lines like `buildctl debug dump-llb`, DOT, or a marshaled pb.Definition)")
    .argument('[context]', 'build context directory', '.')
    .option('-f, --file <file>', 'Dockerfile (default: CONTEXT/Dockerfile; - for stdin)')
    .option('--target <stage>', 'stage to build (default: the last)')
    .option('--build-arg <name=value>', 'build argument (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--platform <os/arch[/variant]>', 'target platform (default: the host)')
    .option('--session-id <id>', 'session of the local sources (local.session); without it they get a stable local.unique')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'dot', 'pb']).default('json'))
    .option('--image-config <file>', 'also write the image config JSON (history included) to FILE')
    .option('--root <dir>', "resolve images from this kiln root's image store first, as `kiln build --root` does")
    .action(async (context: string, opts: LlbCommandOptions) => {
      await runLlb(context, opts, io);
    });
}
