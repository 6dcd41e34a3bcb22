import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, convertLayer, createBusyboxImage, writeImage, type ImageConfigDraft } from '@kiln/runtime';
import { compileCli, makeSandbox, requireTools, runKiln, startDaemon, token, writeTree, type KilnSandbox } from './build-helpers.js';

// Three base images with the same layer (one diffID) under three blobs: gzip, uncompressed and
// zstd. Their layer is unpacked once (the snapshot is named by chain ID), but an image built FROM
// one of them must export that image's own blob for its base layer, whichever of them the store
// met first, and whether the RUN above it ran or came from the cache (its key is the chain ID).

interface Layer {
  readonly mediaType: string;
  readonly digest: string;
}

interface Bases {
  readonly gzip: Layer;
  readonly plain: Layer;
  readonly zstd: Layer;
}

const NAMES = { gzip: 'localhost/blobs-gzip:latest', plain: 'localhost/blobs-plain:latest', zstd: 'localhost/blobs-zstd:latest' } as const;
type Base = keyof typeof NAMES;

/** Writes the three base images into the sandbox's root (before any kiln process uses it). */
async function addBases(sb: KilnSandbox): Promise<Bases> {
  const content = await ContentStore.open(sb.root);
  const images = await ImageStore.open(sb.root);
  const gz = await createBusyboxImage(content, { names: [NAMES.gzip], images });
  const plain = await createBusyboxImage(content, { names: [NAMES.plain], images, compression: 'uncompressed' });
  expect(plain.diffID).toBe(gz.diffID);
  expect(plain.layer.digest).not.toBe(gz.layer.digest);
  const z = await convertLayer(content, { descriptor: gz.layer, diffID: gz.diffID }, 'zstd');
  const config = JSON.parse(gz.configBytes.toString('utf8')) as ImageConfigDraft;
  const zimg = await writeImage(content, [z], config);
  await images.put(NAMES.zstd, zimg.manifest);
  const pick = (d: { mediaType: string; digest: string }): Layer => ({ mediaType: d.mediaType, digest: d.digest });
  return { gzip: pick(gz.layer), plain: pick(plain.layer), zstd: pick(z.descriptor) };
}

/** The layers of an OCI archive's manifest. */
function layersOf(archive: string): Layer[] {
  const raw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${archive}`], { encoding: 'utf8' });
  return (JSON.parse(raw) as { layers: Array<Layer & { size: number }> }).layers.map(({ mediaType, digest }) => ({ mediaType, digest }));
}

/**
 * Builds `FROM <base>` + a RUN writing `id` and exports it as an OCI archive (with `extra` flags,
 * through a daemon with `env`); returns its layers.
 */
async function buildOn(sb: KilnSandbox, base: Base, id: string, extra: readonly string[] = [], env: Record<string, string> = {}): Promise<Layer[]> {
  const t = token();
  const ctx = join(sb.dir, `ctx-${base}-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM ${NAMES[base]}\nRUN echo ${id} > /id\n` });
  const out = join(sb.dir, `out-${base}-${t}.tar`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=oci,dest=${out}`, ...extra], { env });
  expect(r.code, r.stderr).toBe(0);
  return layersOf(out);
}

describe('base layer blobs', () => {
  const sandboxes: KilnSandbox[] = [];
  let template: KilnSandbox;
  let bases: Bases;

  beforeAll(async () => {
    requireTools();
    compileCli();
    template = await makeSandbox();
    sandboxes.push(template);
    bases = await addBases(template);
  }, 300_000);

  afterAll(async () => {
    for (const sb of sandboxes) await sb.cleanup();
  });

  /** A fresh root holding the three bases, no build run in it yet. */
  async function freshRoot(): Promise<KilnSandbox> {
    const sb = await makeSandbox({ copyRootOf: template });
    sandboxes.push(sb);
    return sb;
  }

  for (const order of [
    ['gzip', 'plain', 'zstd', 'gzip'],
    ['zstd', 'plain', 'gzip', 'zstd'],
  ] as const) {
    test(`FROM each base exports that base's blob (first used: ${order[0]})`, async () => {
      const sb = await freshRoot();
      const id = token();
      let run: Layer | undefined;
      for (const base of order) {
        const layers = await buildOn(sb, base, id);
        expect(layers).toHaveLength(2);
        expect(layers[0]).toEqual(bases[base]);
        // The RUN ran once; the later builds take it from the cache (same chain ID below it)
        // and export the same layer for it.
        run ??= layers[1];
        expect(layers[1]).toEqual(run);
      }
      expect(await sb.containersStarted()).toBe(1);
    }, 300_000);
  }

  test('--cache-to gives the base layer as the image the build used, not the first one the store met', async () => {
    const sb = await freshRoot();
    const id = token();
    await buildOn(sb, 'gzip', id);
    const dest = join(sb.dir, `cache-${token()}`);
    const layers = await buildOn(sb, 'plain', id, ['--cache-to', `type=local,dest=${dest},mode=min`, '--cache-to', 'type=inline']);
    expect(layers[0]).toEqual(bases.plain);
    const blob = (d: string): string => join(dest, 'blobs', 'sha256', d.replace('sha256:', ''));
    expect(existsSync(blob(bases.plain.digest))).toBe(true);
    expect(existsSync(blob(bases.gzip.digest))).toBe(false);
  }, 300_000);

  test('a daemon serving builds FROM each base at once gives each its own blob', async () => {
    const sb = await freshRoot();
    const socket = join(sb.dir, `run-${token()}`, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const env = { KILN_HOST: `unix://${socket}` };
      const id = token();
      // The first build records the gzip blob for the diffID (and the daemon keeps what it looked up).
      expect((await buildOn(sb, 'gzip', id, [], env))[0]).toEqual(bases.gzip);
      const [plain, zstd, gzip] = await Promise.all([buildOn(sb, 'plain', id, [], env), buildOn(sb, 'zstd', id, [], env), buildOn(sb, 'gzip', id, [], env)]);
      expect(plain[0]).toEqual(bases.plain);
      expect(zstd[0]).toEqual(bases.zstd);
      expect(gzip[0]).toEqual(bases.gzip);
      expect(d.log()).toContain('build');
    } finally {
      const gone = new Promise((r) => d.child.once('exit', r));
      d.child.kill('SIGTERM');
      await gone;
    }
  }, 300_000);
});
