/**
 * `kiln rebase` end to end: a shell app built by kiln/buildpacks on the offline kt/run image,
 * then a newer kt/run (one more layer holding a file), rebased in the kiln store and, with
 * --publish, in a real docker-registry. Checked with the stores, skopeo, umoci and runc.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, digestOf, hostPlatform, jsonBytes, layerMediaType, packUstar, resolveImage, storeFetcher, writeImage, type Descriptor, type ImageConfig, type ImageFormat, type ImageManifest, type LayerRef, type PackEntry } from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../../../../runtime/test/helpers/registry.js';
import { PROJECT_TOML, compileCli, kiln, repo, makeSandbox, requireTools, runBundle, unpack, writeTree, type Run, type Sandbox } from './helpers.js';

const META = 'io.buildpacks.lifecycle.metadata';
const MTIME = new Date('1980-01-01T00:00:01Z');

let sb: Sandbox;
let registry: TestRegistry;
beforeAll(async () => {
  requireTools();
  const missing = ['skopeo', 'docker-registry'].filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  if (missing.length > 0) throw new Error(`missing prerequisites: apt-get install -y ${missing.join(' ')}`);
  compileCli();
  sb = await makeSandbox();
  registry = await startRegistry();
}, 300_000);
afterAll(async () => {
  await registry?.stop();
  await sb?.cleanup();
});

interface Stored {
  readonly digest: string;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
}

/** An image of the sandbox's kiln store, read with the runtime's own stores. */
async function stored(name: string): Promise<Stored> {
  const content = await ContentStore.open(sb.root);
  const rec = await (await ImageStore.open(sb.root)).mustGet(name);
  const r = await resolveImage(storeFetcher(content), rec.target, hostPlatform());
  return { digest: r.manifestDescriptor.digest, manifest: r.manifest, config: r.config };
}

/** Writes an image made of `img`'s layers (plus `extra`) and `config` changes under `name`. */
async function storeVariant(img: Stored, name: string, change: (c: ImageConfig) => Record<string, unknown>, extra: PackEntry[] = [], format: ImageFormat = 'oci'): Promise<Stored> {
  const content = await ContentStore.open(sb.root);
  const layers: LayerRef[] = img.manifest.layers.map((descriptor, i) => ({ descriptor, diffID: img.config.rootfs.diff_ids[i] ?? descriptor.digest }));
  if (extra.length > 0) {
    const chunks: Uint8Array[] = [];
    for await (const c of packUstar(extra)) chunks.push(c);
    const info = await content.writeBlob(Buffer.concat(chunks));
    layers.push({ descriptor: { mediaType: layerMediaType('oci', 'uncompressed'), digest: info.digest, size: info.size }, diffID: info.digest });
  }
  const { rootfs: _r, ...cfg } = change(img.config);
  const written = await writeImage(content, layers, cfg as ImageConfig, { format });
  await (await ImageStore.open(sb.root)).put(name, written.manifest);
  return stored(name);
}

const fileEntry = (name: string, data: string): PackEntry => ({ header: { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: MTIME, size: data.length, uname: '', gname: '' }, data: Buffer.from(data) });
const dirEntry = (name: string): PackEntry => ({ header: { name, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: MTIME, uname: '', gname: '' } });

/** `kiln save NAME` as an OCI tarball, copied by skopeo into an OCI layout (OCI media types, which umoci needs) and unpacked by umoci. */
async function saveAndUnpack(name: string, tag: string): Promise<string> {
  const tar = join(sb.dir, `${tag}.oci.tar`);
  const r = await kiln(['save', name, '-o', tar, '--root', sb.root], sb.dir);
  expect(r.stderr).toBe('');
  const layout = join(sb.dir, `${tag}.oci`);
  execFileSync('skopeo', ['copy', `oci-archive:${tar}`, `oci:${layout}:${tag}`], { stdio: 'pipe' });
  const bundle = join(sb.dir, `${tag}.bundle`);
  await unpack(layout, tag, bundle);
  return bundle;
}

/**
 * A shell app (`echo shared`) built once, when a test first needs it (on kt/run as the tests
 * before left it), then put in the store under each test's name: the tests after the first
 * rebase an app image, the build itself is the first test's subject, and each buildpacks build
 * costs seconds.
 */
let sharedApp: Promise<void> | undefined;
async function appImage(name: string): Promise<void> {
  sharedApp ??= (async () => {
    const app = join(sb.dir, 'shell-shared');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'app.sh': 'echo shared\n' });
    const built = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '-t', 'shared-app:1'], sb.dir);
    expect(built.code, built.stderr).toBe(0);
  })();
  await sharedApp;
  const images = await ImageStore.open(sb.root);
  await images.put(`docker.io/library/${name}`, (await images.mustGet('docker.io/library/shared-app:1')).target);
}

/**
 * `kiln ARGS` through the CLI's main in this process, in `cwd`: the same command without a Node
 * start-up, for the refusals and the store rebases of the tests after the first. The first test
 * and the daemon test run kiln processes, for `kiln rebase` in the store and with --publish.
 */
async function kilnIn(args: readonly string[], cwd: string): Promise<Run> {
  const { main } = await import('../../../../cli/src/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'kiln', ...args], {
    stdin: (async function* () {})(),
    stdout: { write: (c: string | Uint8Array) => void (stdout += Buffer.from(c).toString()) },
    stderr: { write: (c: string | Uint8Array) => void (stderr += Buffer.from(c).toString()) },
    cwd,
    env: process.env,
  });
  return { code, stdout, stderr };
}

const runImageOf = (img: Stored): { topLayer: string; reference: string; image?: string; mirrors?: string[] } =>
  (JSON.parse(img.config.config?.Labels?.[META] ?? '{}') as { runImage: { topLayer: string; reference: string; image?: string; mirrors?: string[] } }).runImage;

describe('kiln rebase', () => {
  test('onto a newer run image: app blobs reused, new run layers below, labels updated, the app still runs; --publish mounts across repositories', async () => {
    const app = join(sb.dir, 'shell');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'app.sh': 'echo "$1 $GREETING $(tool x) $(cat /etc/run-image-version 2>/dev/null || echo v1)"\n' });
    const built = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '-t', 'rebase-app:1'], sb.dir);
    expect(built.code, built.stderr).toBe(0);
    const before = await stored('docker.io/library/rebase-app:1');
    const images = await ImageStore.open(sb.root);
    await images.put('docker.io/library/orig-app:1', (await images.mustGet('docker.io/library/rebase-app:1')).target);
    const oldRun = await stored('docker.io/kt/run:latest');
    expect(runImageOf(before).topLayer).toBe(oldRun.config.rootfs.diff_ids.at(-1));
    // the original app, in a registry, for --publish below
    expect((await kiln(['push', 'rebase-app:1', `${registry.host}/team/app:1`, '--root', sb.root], sb.dir)).code).toBe(0);

    // kt/run, one layer newer (the run image's distro labels plus a new one)
    const newRun = await storeVariant(
      oldRun,
      'docker.io/kt/run:latest',
      (c) => ({ ...c, config: { ...c.config, Labels: { ...c.config?.Labels, 'io.buildpacks.base.maintainer': 'kiln tests' } }, history: [...(c.history ?? []), { created: MTIME.toISOString(), created_by: 'run image v2' }] }),
      [dirEntry('etc/'), fileEntry('etc/run-image-version', 'v2\n')],
    );
    expect(newRun.manifest.layers).toHaveLength(3);

    // a --report that cannot be written is refused before the rebase: it rebased and stored the
    // image, then failed with a bare EISDIR from the rename
    const refused = await kiln(['rebase', 'rebase-app:1', '--root', sb.root, '--report', sb.dir], sb.dir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^kiln: error KLN0702: cannot write --report .*: it is a directory/m);
    expect(refused.stderr).not.toContain('rebased');
    expect((await stored('docker.io/library/rebase-app:1')).digest).toBe(before.digest);

    const reportFile = join(sb.dir, 'report.toml');
    const r = await kiln(['rebase', 'rebase-app:1', '--root', sb.root, '--report', reportFile], sb.dir);
    expect(r.stderr).toContain('2 run image layers replaced by 3, 4 app layers kept');
    expect(r.code).toBe(0);
    const after = await stored('docker.io/library/rebase-app:1');
    expect(r.stdout).toBe(`docker.io/library/rebase-app:1@${after.digest}\n`);
    expect(await readFile(reportFile, 'utf8')).toContain(`digest = "${after.digest}"`);

    // app layers: the very descriptors (blobs) of the built image; below them the new run image's
    expect(after.manifest.layers.slice(3)).toEqual(before.manifest.layers.slice(2));
    // (the same blobs; their media types in the app manifest's family, Docker schema 2 here)
    expect(after.manifest.layers.slice(0, 3).map((l) => [l.digest, l.size])).toEqual(newRun.manifest.layers.map((l) => [l.digest, l.size]));
    expect(new Set(after.manifest.layers.map((l) => l.mediaType))).toEqual(new Set(before.manifest.layers.map((l) => l.mediaType)));
    expect(after.manifest.mediaType).toBe(before.manifest.mediaType);
    expect(after.config.rootfs.diff_ids).toEqual([...newRun.config.rootfs.diff_ids, ...before.config.rootfs.diff_ids.slice(2)]);
    const content = await ContentStore.open(sb.root);
    for (const l of after.manifest.layers) expect(await content.has(l.digest)).toBe(true);
    expect(after.config.history?.filter((h) => h.empty_layer !== true)).toHaveLength(after.manifest.layers.length);
    expect(after.config.history?.[2]?.created_by).toBe('run image v2');
    // labels: run image top layer and digest, the new run image's base labels; the rest as built
    const md = runImageOf(after);
    expect(md.topLayer).toBe(newRun.config.rootfs.diff_ids[2]);
    expect(md.reference).toBe(`docker.io/kt/run@${newRun.digest}`);
    expect(md.image).toBe(runImageOf(before).image);
    const labels = after.config.config?.Labels ?? {};
    expect(labels['io.buildpacks.base.maintainer']).toBe('kiln tests');
    expect(labels['io.buildpacks.build.metadata']).toBe(before.config.config?.Labels?.['io.buildpacks.build.metadata']);
    const { Labels: _a, ...cfgAfter } = after.config.config ?? {};
    const { Labels: _b, ...cfgBefore } = before.config.config ?? {};
    expect(cfgAfter).toEqual(cfgBefore);

    // the rebased image runs: its launcher, the app, and the new run image's file
    const bundle = await saveAndUnpack('rebase-app:1', 'rebased');
    expect(await readFile(join(bundle, 'rootfs/etc/run-image-version'), 'utf8')).toBe('v2\n');
    const ran = await runBundle(bundle, { id: `kiln-rebase-${process.pid}` });
    expect({ code: ran.code, out: ran.stdout + ran.stderr }).toEqual({ code: 0, out: 'web hello tool says x v2\n' });

    // rebasing again onto the same run image changes nothing
    const again = await kiln(['rebase', 'rebase-app:1', '--root', sb.root], sb.dir);
    expect(again.stdout).toBe(`docker.io/library/rebase-app:1@${after.digest}\n`);

    // --publish: read from the registry, written there; layers mounted or already there, none uploaded
    expect((await kiln(['push', 'kt/run', `${registry.host}/kt/run:2`, '--root', sb.root], sb.dir)).code).toBe(0);
    const other = await kiln(['rebase', `${registry.host}/team/app:1`, '--publish', '--run-image', `${registry.host}/kt/run:2`, '--root', sb.root], sb.dir);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('KLN0924');
    const pub = await kiln(['rebase', `${registry.host}/team/app:1`, '--publish', '--force', '--run-image', `${registry.host}/kt/run:2`, '-t', `${registry.host}/team/app:rebased`, '--root', sb.root], sb.dir);
    expect(pub.stderr).toContain('layers: 6 already there, 1 mounted, 0 uploaded');
    expect(pub.code).toBe(0);
    const digest = /@(sha256:[0-9a-f]{64})$/m.exec(pub.stdout)?.[1] ?? '';
    expect(pub.stdout).toBe(`${registry.host}/team/app:1@${digest}\n${registry.host}/team/app:rebased@${digest}\n`);
    const inspect = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/team/app:rebased`], { encoding: 'utf8' })) as { Digest: string; Layers: string[]; Labels: Record<string, string> };
    expect(inspect.Digest).toBe(digest);
    expect(inspect.Layers).toEqual(after.manifest.layers.map((l) => l.digest));
    const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/team/app:rebased`], { encoding: 'utf8' })) as ImageManifest;
    expect(raw.layers).toEqual(after.manifest.layers);
    const pubMd = (JSON.parse(inspect.Labels[META] ?? '{}') as { runImage: { topLayer: string; reference: string; image: string } }).runImage;
    expect(pubMd).toMatchObject({ topLayer: md.topLayer, image: `${registry.host}/kt/run:2` });
    expect(pubMd.reference).toMatch(new RegExp(`^${registry.host.replaceAll('.', '\\.')}/kt/run@sha256:`));
    // what skopeo copies out of the registry unpacks and runs the same
    const layout = join(sb.dir, 'published.oci');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/team/app:1`, `oci:${layout}:pub`], { stdio: 'pipe' });
    const pubBundle = join(sb.dir, 'published.bundle');
    await unpack(layout, 'pub', pubBundle);
    const ranPub = await runBundle(pubBundle, { id: `kiln-rebase-pub-${process.pid}` });
    expect(ranPub.stdout).toBe('web hello tool says x v2\n');

    // into the store again, under another name (--previous-image is what is read), on a run
    // image the store does not have: pulled into it from the registry
    expect(await (await ImageStore.open(sb.root)).get(`${registry.host}/kt/run:2`)).toBeUndefined();
    const pulled = await kiln(['rebase', 'pulled:1', '--previous-image', 'rebase-app:1', '--run-image', `${registry.host}/kt/run:2`, '--force', '--root', sb.root], sb.dir);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).toContain('warning: the new run image');
    const pulledImg = await stored('docker.io/library/pulled:1');
    expect(pulledImg.manifest.layers).toEqual(after.manifest.layers);
    expect(runImageOf(pulledImg).reference).toBe(`${registry.host}/kt/run@${(await stored(`${registry.host}/kt/run:2`)).digest}`);
    expect((await stored('docker.io/library/rebase-app:1')).digest).toBe(after.digest);

    // --publish with the run image in another registry: no mount across registries, so the one
    // layer the app repository lacks is fetched from there and uploaded (with the sandbox's root
    // it would be mounted from the repository kiln pushed it to before, which the store records)
    const second = await startRegistry();
    try {
      expect((await kiln(['push', 'kt/run', `${second.host}/base/run:2`, '--root', sb.root], sb.dir)).code).toBe(0);
      expect((await kiln(['push', 'orig-app:1', `${registry.host}/cross/app:1`, '--root', sb.root], sb.dir)).code).toBe(0);
      // a kiln root that has none of the blobs nor knows where they were pushed
      const emptyRoot = join(sb.dir, 'root-empty');
      const cross = await kiln(['rebase', `${registry.host}/cross/app:1`, '--publish', '--force', '--run-image', `${second.host}/base/run:2`, '-t', `${registry.host}/cross/app:rebased`, '--root', emptyRoot], sb.dir);
      expect(cross.code, cross.stderr).toBe(0);
      expect(cross.stderr).toContain('layers: 6 already there, 0 mounted, 1 uploaded');
      const crossed = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/cross/app:rebased`], { encoding: 'utf8' })) as { Layers: string[] };
      expect(crossed.Layers).toEqual(after.manifest.layers.map((l) => l.digest));
      execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/cross/app:rebased`, `oci:${layout}:cross`], { stdio: 'pipe' });
    } finally {
      await second.stop();
    }
  }, 600_000);

  test('refusals: not a CNB image, not rebasable (--force overrides), another os/arch, run image top layer missing, unknown image', async () => {
    await appImage('refuse-app:1');
    const img = await stored('docker.io/library/refuse-app:1');
    const refuse = async (args: string[], code: string) => {
      const r = await kilnIn(['rebase', ...args, '--root', sb.root], sb.dir);
      expect(r.stderr).toContain(`error ${code}:`);
      expect(r.code).toBe(1);
      return r;
    };
    await refuse(['kt/run'], 'KLN0920');
    await refuse(['no-such-app:1'], 'KLN0925');

    const withLabels = (extra: Record<string, string>) => (c: ImageConfig) => ({ ...c, config: { ...c.config, Labels: { ...c.config?.Labels, ...extra } } });
    await storeVariant(img, 'docker.io/library/pinned:1', withLabels({ 'io.buildpacks.rebasable': 'false' }));
    expect((await refuse(['pinned:1'], 'KLN0921')).stderr).toContain('not marked as rebasable');
    const forced = await kilnIn(['rebase', 'pinned:1', '--force', '--root', sb.root], sb.dir);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('warning: app image is not marked as rebasable');

    const otherArch = hostPlatform().architecture === 'arm64' ? 'amd64' : 'arm64';
    await storeVariant(await stored('docker.io/kt/run:latest'), 'docker.io/kt/run-other:latest', (c) => ({ ...c, architecture: otherArch }));
    expect((await refuse(['refuse-app:1', '--run-image', 'kt/run-other'], 'KLN0922')).stderr).toContain(`linux/${otherArch}`);

    const md = JSON.parse(img.config.config?.Labels?.[META] ?? '{}') as { runImage: Record<string, unknown> };
    const bogus = JSON.stringify({ ...md, runImage: { ...md.runImage, topLayer: `sha256:${'0'.repeat(64)}` } });
    const lost = await storeVariant(img, 'docker.io/library/lost-base:1', withLabels({ [META]: bogus }));
    await refuse(['lost-base:1'], 'KLN0923');
    // nothing was written under the refused names
    expect((await stored('docker.io/library/lost-base:1')).digest).toBe(lost.digest);
    expect((await stored('docker.io/library/refuse-app:1')).digest).toBe(img.digest);
  }, 600_000);

  test('names and boundaries: a digest target refused, NAME@DIGEST read from the store, another tag of the run image, a run image top layer that occurs twice', async () => {
    await appImage('names-app:1');
    const img = await stored('docker.io/library/names-app:1');
    const run = await stored('docker.io/kt/run:latest');
    const rebase = (args: string[]) => kilnIn(['rebase', ...args, '--root', sb.root], sb.dir);

    // a digest reference is not a name to write: refused before anything is read, nothing renamed
    const atDigest = await rebase([`names-app@${img.digest}`]);
    expect(atDigest.stderr).toContain('error KLN0926:');
    expect(atDigest.code).toBe(1);
    expect(await (await ImageStore.open(sb.root)).get(`docker.io/library/names-app@${img.digest}`)).toBeUndefined();

    // NAME@DIGEST as the image to rebase: read from the kiln store by its digest
    const byDigest = await rebase(['names-app:2', '--previous-image', `names-app@${img.digest}`]);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    expect((await stored('docker.io/library/names-app:2')).manifest.layers.slice(-2)).toEqual(img.manifest.layers.slice(-2));

    // the recorded run image's repository at another tag is the run image (no --force, no warning)
    await (await ImageStore.open(sb.root)).put('docker.io/kt/run:v9', (await (await ImageStore.open(sb.root)).mustGet('docker.io/kt/run:latest')).target);
    const tagged = await rebase(['names-app:3', '--previous-image', 'names-app:1', '--run-image', 'kt/run:v9']);
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(tagged.stderr).not.toContain('warning');
    expect(runImageOf(await stored('docker.io/library/names-app:3')).image).toBe(runImageOf(img).image);

    // an old run image whose top layer is also one of its lower layers (r0 r1 x r1): the old run
    // image, found in the store by runImage.reference, says its layers end at the second r1
    const content = await ContentStore.open(sb.root);
    const runRefs: LayerRef[] = run.manifest.layers.map((descriptor, i) => ({ descriptor, diffID: run.config.rootfs.diff_ids[i] ?? descriptor.digest }));
    const chunks: Uint8Array[] = [];
    for await (const c of packUstar([dirEntry('x/'), fileEntry('x/old', 'old\n')])) chunks.push(c);
    const x = await content.writeBlob(Buffer.concat(chunks));
    const xRef: LayerRef = { descriptor: { mediaType: layerMediaType('oci', 'uncompressed'), digest: x.digest, size: x.size }, diffID: x.digest };
    const top = runRefs.at(-1);
    if (top === undefined) throw new Error('kt/run has no layers');
    const { rootfs: _r1, history: _h1, ...runCfg } = run.config;
    const oldRun = await writeImage(content, [...runRefs, xRef, top], runCfg);
    const oldRunRef = `docker.io/kt/run@${oldRun.manifest.digest}`;
    const md = JSON.parse(img.config.config?.Labels?.[META] ?? '{}') as { runImage: Record<string, unknown> };
    const appRefs: LayerRef[] = img.manifest.layers.map((descriptor, i) => ({ descriptor, diffID: img.config.rootfs.diff_ids[i] ?? descriptor.digest })).slice(runRefs.length);
    const { rootfs: _r2, history: _h2, ...appCfg } = img.config;
    const labels = { ...appCfg.config?.Labels, [META]: JSON.stringify({ ...md, runImage: { ...md.runImage, reference: oldRunRef } }) };
    const dup = await writeImage(content, [...runRefs, xRef, top, ...appRefs], { ...appCfg, config: { ...appCfg.config, Labels: labels } });
    await (await ImageStore.open(sb.root)).put('docker.io/library/dup-app:1', dup.manifest);
    const r = await rebase(['dup-app:1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning');
    expect(r.stderr).toContain(`${runRefs.length + 2} run image layers replaced by ${runRefs.length}, ${appRefs.length} app layers kept`);
    const after = await stored('docker.io/library/dup-app:1');
    expect(after.manifest.layers.map((l) => l.digest)).toEqual([...run.manifest.layers, ...appRefs.map((l) => l.descriptor)].map((l) => l.digest));
  }, 600_000);

  test('a run image with an empty top layer (kiln-built FROM kt/run + RUN true): the app keeps that layer, and rebases', async () => {
    // the run image, built by kiln as a user would: BuildKit keeps RUN true's empty layer
    const ctx = join(sb.dir, 'empty-top-run');
    await writeTree(ctx, { Dockerfile: 'FROM kt/run\nRUN true\n' });
    const runBuilt = await kiln(['build', ctx, '--root', sb.root, '-t', 'kt/run:empty-top'], sb.dir);
    expect(runBuilt.code, runBuilt.stderr).toBe(0);
    const run = await stored('docker.io/kt/run:empty-top');
    const emptyTar = digestOf(new Uint8Array(1024)); // an empty tar: its end-of-archive blocks
    expect(run.config.rootfs.diff_ids.at(-1)).toBe(emptyTar);

    const app = join(sb.dir, 'shell-empty-top');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'app.sh': 'echo "$1 $(cat /etc/run-image-version 2>/dev/null || echo v1)"\n' });
    const built = await kiln(['build', app, '--root', sb.root, '--build-arg', 'run-image=kt/run:empty-top', '-t', 'empty-top-app:1'], sb.dir);
    expect(built.code, built.stderr).toBe(0);
    const img = await stored('docker.io/library/empty-top-app:1');
    // every layer of the run image, the empty one included, below the app's; the label names it
    const n = run.config.rootfs.diff_ids.length;
    expect(img.config.rootfs.diff_ids.slice(0, n)).toEqual(run.config.rootfs.diff_ids);
    expect(img.manifest.layers.slice(0, n).map((l) => l.digest)).toEqual(run.manifest.layers.map((l) => l.digest));
    expect(runImageOf(img).topLayer).toBe(emptyTar);
    expect(img.config.history?.filter((h) => h.empty_layer !== true)).toHaveLength(img.manifest.layers.length);

    // a newer run image (one more layer): the rebase finds the empty top layer and replaces the run layers
    const newRun = await storeVariant(run, 'docker.io/kt/run:empty-top', (c) => ({ ...c, history: [...(c.history ?? []), { created: MTIME.toISOString(), created_by: 'run image v2' }] }), [dirEntry('etc/'), fileEntry('etc/run-image-version', 'v2\n')]);
    const r = await kiln(['rebase', 'empty-top-app:1', '--root', sb.root], sb.dir);
    expect(r.stderr).toContain(`${n} run image layers replaced by ${n + 1}, ${img.manifest.layers.length - n} app layers kept`);
    expect(r.code).toBe(0);
    const after = await stored('docker.io/library/empty-top-app:1');
    expect(after.config.rootfs.diff_ids).toEqual([...newRun.config.rootfs.diff_ids, ...img.config.rootfs.diff_ids.slice(n)]);
    const bundle = await saveAndUnpack('empty-top-app:1', 'empty-top-rebased');
    const ran = await runBundle(bundle, { id: `kiln-rebase-empty-top-${process.pid}` });
    expect({ code: ran.code, out: ran.stdout + ran.stderr }).toEqual({ code: 0, out: 'web v2\n' });
  }, 600_000);

  test('a multi-platform app image: each platform onto its run image manifest, one new index in the store and with --publish; a platform that cannot be rebased refuses the whole command', async () => {
    await appImage('multi-src:1');
    const host = hostPlatform().architecture;
    const other = host === 'arm64' ? 'amd64' : 'arm64';
    // the app for another architecture: the same layers under a config saying so (never run)
    const hostApp = await stored('docker.io/library/multi-src:1');
    const otherApp = await storeVariant(hostApp, 'docker.io/library/multi-src-other:1', (c) => ({ ...c, architecture: other }), [], 'docker');
    const content = await ContentStore.open(sb.root);
    const images = await ImageStore.open(sb.root);
    const desc = async (img: Stored, platform: string, annotations?: Record<string, string>): Promise<Descriptor> => {
      const [os = '', architecture = ''] = platform.split('/');
      return { mediaType: img.manifest.mediaType ?? '', digest: img.digest as Descriptor['digest'], size: (await content.info(img.digest as Descriptor['digest'])).size, platform: { os, architecture }, ...(annotations === undefined ? {} : { annotations }) };
    };
    const putIndex = async (name: string, mediaType: string, manifests: Descriptor[], annotations?: Record<string, string>): Promise<string> => {
      const bytes = jsonBytes({ schemaVersion: 2, mediaType, manifests, ...(annotations === undefined ? {} : { annotations }) });
      const info = await content.writeBlob(bytes);
      await images.put(name, { mediaType, digest: info.digest, size: info.size });
      return info.digest;
    };
    // an attestation manifest for the host image, as BuildKit adds them
    const att = await writeImage(content, [], { architecture: 'unknown', os: 'unknown' });
    const attDesc: Descriptor = { ...att.manifest, platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.digest': hostApp.digest, 'vnd.docker.reference.type': 'attestation-manifest' } };
    const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
    const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
    const appChildren = [await desc(hostApp, `linux/${host}`, { 'org.example.note': 'host' }), await desc(otherApp, `linux/${other}`), attDesc];
    const before = await putIndex('docker.io/library/multi-app:1', OCI_INDEX, appChildren, { 'org.opencontainers.image.description': 'two platforms' });

    // run image kt/run in two platforms, each one layer newer (a file saying which), as a Docker manifest list
    const run = await stored('docker.io/kt/run:latest');
    // (kt/run:latest as the tests before left it: the app is built on it)
    const n = run.manifest.layers.length;
    expect(runImageOf(hostApp).topLayer).toBe(run.config.rootfs.diff_ids.at(-1));
    const version = (v: string): PackEntry[] => [dirEntry('etc/'), fileEntry('etc/run-image-version', `${v}\n`)];
    const runHost = await storeVariant(run, 'docker.io/kt/run-parts:host', (c) => c, version(`${host}-v3`), 'docker');
    const runOther = await storeVariant(run, 'docker.io/kt/run-parts:other', (c) => ({ ...c, architecture: other }), version(`${other}-v3`), 'docker');
    const runIndex = await putIndex('docker.io/kt/run:multi', DOCKER_LIST, [await desc(runHost, `linux/${host}`), await desc(runOther, `linux/${other}`)]);
    await putIndex('docker.io/kt/run:host-only', DOCKER_LIST, [await desc(runHost, `linux/${host}`)]);
    const rebase = (args: string[]) => kilnIn(['rebase', ...args, '--root', sb.root], sb.dir);

    // refusals name the platform and write nothing: no run image manifest for it (KLN0927) …
    const noPlatform = await rebase(['multi-app:1', '--run-image', 'kt/run:host-only']);
    expect(noPlatform.stderr).toMatch(new RegExp(`error KLN0927: linux/${other}: the run image docker\\.io/kt/run:host-only has no linux/${other} manifest \\(it has linux/${host}\\)`));
    expect(noPlatform.code).toBe(1);
    // … or one platform's check (not rebasable)
    const pinned = await storeVariant(otherApp, 'docker.io/library/multi-pinned-part:1', (c) => ({ ...c, config: { ...c.config, Labels: { ...c.config?.Labels, 'io.buildpacks.rebasable': 'false' } } }), [], 'docker');
    const pinnedIndex = await putIndex('docker.io/library/multi-pinned:1', OCI_INDEX, [await desc(hostApp, `linux/${host}`), await desc(pinned, `linux/${other}`)]);
    const notRebasable = await rebase(['multi-pinned:1', '--run-image', 'kt/run:multi']);
    expect(notRebasable.stderr).toContain(`error KLN0921: linux/${other}: `);
    expect(notRebasable.code).toBe(1);
    // … or a platform whose manifest the store lacks (an index pulled for one platform)
    const absent: Descriptor = { mediaType: hostApp.manifest.mediaType ?? '', digest: `sha256:${'e'.repeat(64)}` as Descriptor['digest'], size: 10, platform: { os: 'linux', architecture: other } };
    await putIndex('docker.io/library/multi-partial:1', OCI_INDEX, [await desc(hostApp, `linux/${host}`), absent]);
    const partial = await rebase(['multi-partial:1', '--run-image', 'kt/run:multi']);
    expect(partial.stderr).toContain(`error KLN0925: linux/${other}: cannot read ${absent.digest}`);
    expect(partial.code).toBe(1);
    expect((await images.mustGet('docker.io/library/multi-app:1')).target.digest).toBe(before);
    expect((await images.mustGet('docker.io/library/multi-pinned:1')).target.digest).toBe(pinnedIndex);

    const reportFile = join(sb.dir, 'multi-report.toml');
    const r = await rebase(['multi-app:1', '--run-image', 'kt/run:multi', '--report', reportFile]);
    expect(r.code, r.stderr).toBe(0);
    const rec = await images.mustGet('docker.io/library/multi-app:1');
    expect(r.stdout).toBe(`docker.io/library/multi-app:1@${rec.target.digest}\n`);
    expect(rec.target.mediaType).toBe(OCI_INDEX);
    expect(r.stderr).toContain('kiln: warning: 1 attestation or other non-image manifest(s) of docker.io/library/multi-app:1 are left out');
    const index = JSON.parse((await content.readBlob(rec.target.digest)).toString()) as { mediaType: string; manifests: Descriptor[]; annotations?: Record<string, string> };
    expect(digestOf(await content.readBlob(rec.target.digest))).toBe(rec.target.digest);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.annotations).toEqual({ 'org.opencontainers.image.description': 'two platforms' });
    expect(index.manifests.map((m) => [m.platform?.architecture, m.annotations])).toEqual([[host, { 'org.example.note': 'host' }], [other, undefined]]);
    const report = await readFile(reportFile, 'utf8');
    expect(report).toContain(`digest = "${rec.target.digest}"`);
    const tar = join(sb.dir, 'multi.oci.tar');
    expect((await kiln(['save', 'multi-app:1', '-o', tar, '--root', sb.root], sb.dir)).code).toBe(0);
    for (const [i, [runImg, appImg, v]] of ([[runHost, hostApp, `${host}-v3`], [runOther, otherApp, `${other}-v3`]] as const).entries()) {
      const child = index.manifests[i] as Descriptor;
      const p = `linux/${child.platform?.architecture ?? ''}`;
      // the new digest on stderr and in the report
      expect(r.stderr).toContain(`rebased docker.io/library/multi-app:1 ${p} onto docker.io/kt/run@${runImg.digest}: ${n} run image layers replaced by ${n + 1}, ${appImg.manifest.layers.length - n} app layers kept: ${child.digest}\n`);
      expect(report).toContain(`    platform = "${p}"\n    image-id = "`);
      expect(report).toContain(`    digest = "${child.digest}"\n    manifest-size = ${child.size}\n`);
      const m = JSON.parse((await content.readBlob(child.digest)).toString()) as ImageManifest;
      expect(child.mediaType).toBe(m.mediaType);
      expect(m.layers.slice(n + 1)).toEqual(appImg.manifest.layers.slice(n));
      expect(m.layers.slice(0, n + 1).map((l) => l.digest)).toEqual(runImg.manifest.layers.map((l) => l.digest));
      const cfg = JSON.parse((await content.readBlob(m.config.digest)).toString()) as ImageConfig;
      expect(cfg.architecture).toBe(child.platform?.architecture);
      expect(cfg.rootfs.diff_ids).toEqual([...runImg.config.rootfs.diff_ids, ...appImg.config.rootfs.diff_ids.slice(n)]);
      expect(runImageOf({ ...appImg, config: cfg })).toMatchObject({ topLayer: runImg.config.rootfs.diff_ids[n], reference: `docker.io/kt/run@${runImg.digest}` }); // the platform's manifest, as lifecycle records (imgutil's Identifier)
      // what skopeo takes out of the saved index for that architecture unpacks with umoci: the run image layer of its platform
      const layout = join(sb.dir, `multi-${v}.oci`);
      execFileSync('skopeo', ['copy', '--override-arch', child.platform?.architecture ?? '', `oci-archive:${tar}`, `oci:${layout}:x`], { stdio: 'pipe' });
      const bundle = join(sb.dir, `multi-${v}.bundle`);
      await unpack(layout, 'x', bundle);
      expect(await readFile(join(bundle, 'rootfs/etc/run-image-version'), 'utf8')).toBe(`${v}\n`);
      expect(await readFile(join(bundle, 'rootfs/workspace/app.sh'), 'utf8')).toBe('echo shared\n');
      // the host platform's rebased image runs (its launcher, the app) on the new run image
      if (child.platform?.architecture === host) {
        const ran = await runBundle(bundle, { id: `kiln-rebase-multi-${process.pid}` });
        expect({ code: ran.code, out: ran.stdout + ran.stderr }).toEqual({ code: 0, out: 'shared\n' });
      }
    }

    // --publish: the index read from the registry, every platform pushed there, then the new index
    const reg = registry.host;
    // (the store's multi-app:1 is the rebased one now: put the original under another name to push it)
    await images.put('docker.io/library/multi-orig:1', { mediaType: OCI_INDEX, digest: before as Descriptor['digest'], size: (await content.info(before as Descriptor['digest'])).size });
    expect((await kiln(['push', 'multi-orig:1', `${reg}/team/multi:1`, '--root', sb.root], sb.dir)).code).toBe(0);
    expect((await kiln(['push', 'kt/run:multi', `${reg}/kt/run:multi`, '--root', sb.root], sb.dir)).code).toBe(0);
    // a refusal after the run image was pulled to plan a platform leaves the image store as it
    // was: the pulled run image gets its name only with a written rebase
    const refusedPull = await rebase(['multi-orig:1', '--run-image', `${reg}/kt/run:multi`]);
    expect(refusedPull.stderr).toContain(`error KLN0924: linux/${host}: `);
    expect(refusedPull.code).toBe(1);
    expect(await (await ImageStore.open(sb.root)).get(`${reg}/kt/run:multi`)).toBeUndefined();
    const pub = await rebase([`${reg}/team/multi:1`, '--publish', '--force', '--run-image', `${reg}/kt/run:multi`, '-t', `${reg}/team/multi:rebased`]);
    expect(pub.code, pub.stderr).toBe(0);
    expect(pub.stderr).toMatch(new RegExp(`kiln: warning: linux/${other}: the new run image ${reg.replaceAll('.', '\\.')}/kt/run:multi is not the app's run image`));
    // each platform's new run image layer mounted from kt/run, the rest already there
    expect(pub.stderr).toMatch(/layers: \d+ already there, 2 mounted, 0 uploaded/);
    const digest = /@(sha256:[0-9a-f]{64})$/m.exec(pub.stdout)?.[1] ?? '';
    expect(pub.stdout).toBe(`${reg}/team/multi:1@${digest}\n${reg}/team/multi:rebased@${digest}\n`);
    const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg}/team/multi:rebased`]);
    expect(digestOf(raw)).toBe(digest);
    const pubIndex = JSON.parse(raw.toString()) as { mediaType: string; manifests: Descriptor[]; annotations?: Record<string, string> };
    expect(pubIndex.mediaType).toBe(OCI_INDEX);
    expect(pubIndex.annotations).toEqual({ 'org.opencontainers.image.description': 'two platforms' });
    expect(pubIndex.manifests.map((m) => m.platform?.architecture)).toEqual([host, other]);
    for (const [i, runImg] of [runHost, runOther].entries()) {
      const child = pubIndex.manifests[i] as Descriptor;
      const m = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg}/team/multi@${child.digest}`], { encoding: 'utf8' })) as ImageManifest;
      expect(m.layers.slice(0, n + 1).map((l) => l.digest)).toEqual(runImg.manifest.layers.map((l) => l.digest));
      expect(m.layers.slice(n + 1).map((l) => l.digest)).toEqual(hostApp.manifest.layers.slice(n).map((l) => l.digest));
    }
    const pubLayout = join(sb.dir, 'multi-pub.oci');
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', other, `docker://${reg}/team/multi:rebased`, `oci:${pubLayout}:x`], { stdio: 'pipe' });
    const pubBundle = join(sb.dir, 'multi-pub.bundle');
    await unpack(pubLayout, 'x', pubBundle);
    expect(await readFile(join(pubBundle, 'rootfs/etc/run-image-version'), 'utf8')).toBe(`${other}-v3\n`);
  }, 300_000);

  test('served by kiln daemon, with the Node and the Perl client (the report lands in the client cwd)', async () => {
    await appImage('daemon-app:1');
    const socket = join(sb.dir, 'kilnd.sock');
    const daemon: ChildProcess = spawn(process.execPath, [join(repo, 'cli/bin/kiln.js'), 'daemon', '--root', sb.root, '--addr', `unix://${socket}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      daemon.stderr?.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('serving ')) resolve();
      });
      daemon.once('exit', (code) => reject(new Error(`kiln daemon exited (${code}):\n${log}`)));
    });
    try {
      const clients = [
        ['node', [process.execPath, join(repo, 'cli/bin/kiln.js')]],
        ['perl', [join(repo, 'cli/bin/kiln')]],
      ] as const;
      for (const [name, [bin, ...pre]] of clients) {
        const cwd = join(sb.dir, `client-${name}`);
        await writeTree(cwd, { 'keep': '' });
        const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
          const c = spawn(bin, [...pre, 'rebase', 'daemon-app:1', '--root', sb.root, '--report', 'report.toml'], { cwd, env: { ...process.env, KILN_HOST: `unix://${socket}` }, stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          c.once('error', reject);
          c.once('close', (code) => resolve({ code, stdout, stderr }));
        });
        expect(r.code, r.stderr).toBe(0);
        const digest = (await stored('docker.io/library/daemon-app:1')).digest;
        expect(r.stdout).toBe(`docker.io/library/daemon-app:1@${digest}\n`);
        expect(await readFile(join(cwd, 'report.toml'), 'utf8')).toContain(`digest = "${digest}"`);
        await expect.poll(() => log.split('\n').filter((l) => l.startsWith('rebase: client pid') || l.includes('rebase: client pid')).length).toBe(name === 'node' ? 1 : 2);
      }
    } finally {
      const gone = new Promise((r) => daemon.once('exit', r));
      daemon.kill('SIGTERM');
      await gone;
    }
  }, 300_000);
});
