import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import {
  ContentStore,
  ImageStore,
  RegistryClient,
  findLayoutImage,
  importOciLayout,
  openOciLayout,
  parsePlatform,
  parseReference,
  pushImage,
  registryMetaResolver,
  ensureImage,
  digestOf,
  type Descriptor,
} from '@kiln/runtime';
import { registryTest as test } from '../helpers/registry.js';

const run = promisify(execFile);
const IMAGES = join(__dirname, '../../../../shared/conformance/images');
const README = await readFile(join(IMAGES, 'README.md'), 'utf8');
function readmeDigest(folder: string): string {
  const m = new RegExp('\\| `' + folder + '/` \\|[^\\n]*?`(sha256:[a-f0-9]{64})`').exec(README);
  if (m?.[1] === undefined) throw new Error(`no digest for ${folder}`);
  return m[1];
}

async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'buffer', maxBuffer: 1 << 24 });
  return digestOf(stdout);
}

let root: string;
let store: ContentStore;
const layouts = new Map<string, Descriptor>();
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kiln-reg-it-'));
  store = await ContentStore.open(join(root, 'a'));
  for (const name of ['busybox', 'busybox-onbuild', 'busybox-health', 'files']) {
    layouts.set(name, await importOciLayout(await openOciLayout(join(IMAGES, name), store), store, { ref: 'latest' }));
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('registry client against docker-registry', () => {
  test('push the conformance layouts; skopeo sees the README digests; pull them back', async ({ registry }) => {
    const client = new RegistryClient();
    for (const [name, desc] of layouts) {
      const tags = name === 'busybox' ? [`${registry.host}/${name}:latest`, `${registry.host}/${name}:1.35`] : [`${registry.host}/${name}:latest`];
      const res = await pushImage(client, store, desc, tags);
      expect(res.digest).toBe(readmeDigest(name));
      for (const t of tags) expect(await skopeoDigest(t)).toBe(readmeDigest(name));
    }
    // skopeo's platform-resolving inspect agrees on the config it finds for amd64.
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${registry.host}/files:latest`]);
    expect(JSON.parse(stdout)).toMatchObject({ Architecture: 'arm64', Env: expect.arrayContaining(['FILES_PLATFORM=linux/arm64']) });

    const fresh = await ContentStore.open(join(root, 'b'));
    const images = await ImageStore.open(join(root, 'b'));
    for (const name of layouts.keys()) {
      const pulled = await client.pull(`${registry.host}/${name}`, fresh, { images });
      expect(pulled.descriptor.digest).toBe(readmeDigest(name));
      expect((await images.mustGet(`${registry.host}/${name}:latest`)).target.digest).toBe(readmeDigest(name));
    }
    // every blob of every platform came along, verified
    const blobs = new Set<string>();
    for await (const b of fresh.walk()) blobs.add(b.digest);
    for (const name of layouts.keys()) {
      const layout = await openOciLayout(join(IMAGES, name), fresh);
      expect(blobs.has(findLayoutImage(layout.index, 'latest').digest)).toBe(true);
    }
    expect(blobs.has('sha256:ff596afb9ed5ee2632ae7e7051f2b512b6676be30bbaa9d23aeacc163e934a25')).toBe(true);
    expect(blobs.has('sha256:f4da4d5940300df7f961a948d3956979f8e81e9511bcd6016e9efb0ab87cf9de')).toBe(true);
  });

  test('platform pull, chunked upload, cross-repo mount, HEAD skip', async ({ registry }) => {
    const client = new RegistryClient();
    const bb = layouts.get('busybox') as Descriptor;
    // A store that never pushed or pulled these blobs: they upload (the first test's store knows
    // a repository of this registry that has them, and would mount).
    const store = await ContentStore.open(join(root, 'chunked'));
    await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), store), store, { ref: 'latest' });
    const first = await pushImage(client, store, bb, [`${registry.host}/chunked/busybox:v1`], { chunkSize: 100_000 });
    expect(first.uploaded).toBe(2);
    expect(await skopeoDigest(`${registry.host}/chunked/busybox:v1`)).toBe(readmeDigest('busybox'));
    const mounted = await pushImage(client, store, bb, [`${registry.host}/mounted/busybox:v1`], { mountFrom: [`${registry.host}/chunked/busybox`] });
    expect(mounted).toMatchObject({ mounted: 2, uploaded: 0 });
    const again = await pushImage(client, store, bb, [`${registry.host}/mounted/busybox:v2`, `${registry.host}/other/busybox:v1`]);
    expect(again).toMatchObject({ existing: 2, mounted: 2, uploaded: 0 });
    expect(await skopeoDigest(`${registry.host}/other/busybox:v1`)).toBe(readmeDigest('busybox'));

    const onlyArm = await ContentStore.open(join(root, 'arm'));
    await client.pull(`${registry.host}/files:latest`, onlyArm, { platform: parsePlatform('linux/arm64') });
    expect(await onlyArm.has('sha256:ff596afb9ed5ee2632ae7e7051f2b512b6676be30bbaa9d23aeacc163e934a25' as never)).toBe(true);
    expect(await onlyArm.has('sha256:f4da4d5940300df7f961a948d3956979f8e81e9511bcd6016e9efb0ab87cf9de' as never)).toBe(false);
  });

  test('the store remembers which repositories hold a blob: a later push to another repository mounts it (pulled from, or pushed before)', async ({ registry }) => {
    const client = new RegistryClient();
    const bb = layouts.get('busybox') as Descriptor;
    const own = await ContentStore.open(join(root, 'sources-push'));
    await importOciLayout(await openOciLayout(join(IMAGES, 'busybox'), own), own, { ref: 'latest' });
    expect(await pushImage(client, own, bb, [`${registry.host}/src-a/busybox:v1`])).toMatchObject({ uploaded: 2, mounted: 0 });
    // Another call, another repository: mounted from src-a, nothing uploaded.
    expect(await pushImage(client, own, bb, [`${registry.host}/src-b/busybox:v1`])).toMatchObject({ uploaded: 0, mounted: 2 });
    // A store that pulled from src-b mounts from there when pushing elsewhere.
    const pulled = await ContentStore.open(join(root, 'sources-pull'));
    await client.pull(`${registry.host}/src-b/busybox:v1`, pulled);
    const layer = (JSON.parse((await pulled.readBlob(bb.digest as never)).toString()) as { layers: Array<{ digest: string }> }).layers[0]?.digest;
    expect(await pulled.sourcesOf(layer as never)).toEqual([`${registry.host}/src-b/busybox`]);
    expect(await pushImage(client, pulled, bb, [`${registry.host}/src-c/busybox:v1`])).toMatchObject({ uploaded: 0, mounted: 2 });
    expect(await skopeoDigest(`${registry.host}/src-c/busybox:v1`)).toBe(readmeDigest('busybox'));
    // A deleted blob forgets its sources.
    await pulled.delete(layer as never);
    expect(await pulled.sourcesOf(layer as never)).toEqual([]);
  });

  test('image meta resolver: index digest + platform config, as BuildKit', async ({ registry }) => {
    const client = new RegistryClient();
    await pushImage(client, store, layouts.get('files') as Descriptor, [`${registry.host}/meta/files:latest`]);
    const resolver = registryMetaResolver(client);
    const amd = await resolver.resolveImageConfig(`${registry.host}/meta/files:latest`, { platform: parsePlatform('linux/amd64') });
    expect(amd.digest).toBe(readmeDigest('files'));
    expect(digestOf(amd.config)).toBe('sha256:a276ec888751145b89ca4bf90565b83707dddad90ce28b2aa54784af9efcfcdd');
    const arm = await resolver.resolveImageConfig(`${registry.host}/meta/files`, { platform: parsePlatform('linux/arm64/v8') });
    expect(arm.manifestDigest).toBe('sha256:91767b7582beea2a41c166632be0dfd12a8fbb3062a2415012bb08326135ea0d');
    const pinned = await resolver.resolveImageConfig(`${registry.host}/meta/files@${readmeDigest('files')}`, { platform: parsePlatform('linux/arm64') });
    expect(pinned.digest).toBe(readmeDigest('files'));
  });

  test('ensureImage pulls one platform from the registry, then serves it locally', async ({ registry }) => {
    const client = new RegistryClient();
    await pushImage(client, store, layouts.get('files') as Descriptor, [`${registry.host}/ensure/files:latest`]);
    const st = await ContentStore.open(join(root, 'ensure'));
    const images = await ImageStore.open(join(root, 'ensure'));
    const opts = { store: st, images, registry: client, platform: parsePlatform('linux/arm64') };
    const first = await ensureImage(`${registry.host}/ensure/files`, opts);
    expect(first.source).toBe('registry');
    expect(first.root.digest).toBe(readmeDigest('files'));
    expect(first.manifestDescriptor.digest).toBe('sha256:91767b7582beea2a41c166632be0dfd12a8fbb3062a2415012bb08326135ea0d');
    expect((await ensureImage(`${registry.host}/ensure/files:latest`, opts)).source).toBe('local');
    expect((await ensureImage(`${registry.host}/ensure/files:latest`, { ...opts, resolveMode: 'pull' })).source).toBe('registry');
  });

  test('clear errors: unknown manifest, unknown repo, digest-pinned mismatch', async ({ registry }) => {
    const client = new RegistryClient();
    await expect(client.resolve(`${registry.host}/nope:latest`)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await pushImage(client, store, layouts.get('busybox') as Descriptor, [`${registry.host}/err/busybox:latest`]);
    await expect(client.resolve(`${registry.host}/err/busybox:missing`)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    await expect(client.resolve(`${registry.host}/err/busybox@${digestOf('x')}`)).rejects.toMatchObject({ code: 'MANIFEST_UNKNOWN' });
    const ref = parseReference(`${registry.host}/err/busybox:latest`);
    await expect(client.fetchBlob(ref, { mediaType: 'application/octet-stream', digest: digestOf('nope'), size: 4 })).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND' });
  });
});
