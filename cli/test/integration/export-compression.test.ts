import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// compression= applies to the layers a build made; base image layers keep their blobs unless
// force-compression=true, as BuildKit exports them (cache/remote.go: Compression.Force).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

interface Manifest {
  layers: { mediaType: string; digest: string }[];
}

async function layersOf(out: string): Promise<Manifest['layers']> {
  const raw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${out}`], { encoding: 'utf8' });
  return (JSON.parse(raw) as Manifest).layers;
}

test('compression=zstd re-encodes only the layers the build made; force-compression=true all of them', async () => {
  const t = token();
  const ctx = join(sb.dir, `zstd-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /id\n` });
  const plain = join(sb.dir, `plain-${t}.tar`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=oci,dest=${plain}`])).code).toBe(0);
  const base = (await layersOf(plain))[0];
  expect(base?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');

  const zstd = join(sb.dir, `zstd-${t}.tar`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=oci,dest=${zstd},compression=zstd`])).code).toBe(0);
  const kept = await layersOf(zstd);
  expect(kept).toHaveLength(2);
  expect(kept[0]).toEqual(base); // the base layer's blob, as pulled
  expect(kept[1]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');

  const forced = join(sb.dir, `forced-${t}.tar`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--output', `type=oci,dest=${forced},compression=zstd,force-compression=true`])).code).toBe(0);
  const all = await layersOf(forced);
  expect(all.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd']);
  expect(all[1]?.digest).toBe(kept[1]?.digest);
}, 180_000);
