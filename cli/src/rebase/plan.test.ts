import { describe, expect, test } from 'vitest';
import type { Descriptor, Digest, ImageConfig, ImageManifest } from '@kiln/runtime';
import { defaultRunImageName, planRebase, type NewRunImage, type RebaseImage } from './plan.js';

const d = (c: string): Digest => `sha256:${c.repeat(64).slice(0, 64)}` as Digest;
const layer = (c: string, mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'): Descriptor => ({ mediaType, digest: d(c), size: c.charCodeAt(0) });
const META = 'io.buildpacks.lifecycle.metadata';

function appImage(opts: { labels?: Record<string, string>; env?: string[]; arch?: string; topLayer?: string; history?: boolean } = {}): RebaseImage {
  const metadata = { app: [{ sha: d('a') }], buildpacks: [], runImage: { topLayer: opts.topLayer ?? d('2'), reference: `docker.io/kt/run@${d('9')}`, image: 'kt/run' } };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c'), size: 1 },
    layers: [layer('1'), layer('2'), layer('a'), layer('b')],
    annotations: { 'org.opencontainers.image.base.name': 'docker.io/kt/run:latest', other: 'x' },
  };
  const config: ImageConfig = {
    architecture: opts.arch ?? 'amd64',
    os: 'linux',
    created: '2026-01-01T00:00:00Z',
    config: {
      Env: opts.env ?? ['PATH=/bin', 'CNB_PLATFORM_API=0.14'],
      Entrypoint: ['/cnb/process/web'],
      Labels: {
        [META]: JSON.stringify(metadata),
        'io.buildpacks.base.distro.name': 'busybox',
        'io.buildpacks.base.distro.version': '1',
        'io.buildpacks.base.old-only': 'gone',
        'io.buildpacks.stack.id': 'io.kiln.test',
        'org.example': 'kept',
        ...opts.labels,
      },
    },
    rootfs: { type: 'layers', diff_ids: [d('1'), d('2'), d('3'), d('4')] },
    ...(opts.history === false ? {} : { history: [{ created_by: 'run 0' }, { created_by: 'run 1' }, { created_by: 'run env', empty_layer: true }, { created_by: 'app 0' }, { created_by: 'app 1' }].slice(0, 5) }),
    extraField: 'kept',
  };
  return { name: 'docker.io/library/app:latest', manifest, config };
}

function runImage(opts: { arch?: string; labels?: Record<string, string>; name?: string } = {}): NewRunImage {
  return {
    name: opts.name ?? 'docker.io/kt/run:latest',
    reference: `docker.io/kt/run@${d('8')}`,
    manifest: { schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('e'), size: 1 }, layers: [layer('5'), layer('6'), layer('7')] },
    config: {
      architecture: opts.arch ?? 'amd64',
      os: 'linux',
      config: { Labels: { 'io.buildpacks.base.distro.name': 'busybox', 'io.buildpacks.base.distro.version': '1', 'io.buildpacks.base.new': 'yes', 'io.buildpacks.stack.id': 'io.kiln.test', ...opts.labels } },
      rootfs: { type: 'layers', diff_ids: [d('5'), d('6'), d('7')] },
      history: [{ created_by: 'new 0' }, { created_by: 'new 1' }, { created_by: 'new 2' }],
    },
  };
}

describe('planRebase', () => {
  test('swaps the run image layers under the app layers and updates config, labels, history', () => {
    const app = appImage();
    const plan = planRebase({ app, runImage: runImage(), force: false });
    // the app layers' descriptors are the app image's own (same blobs)
    expect(plan.manifest.layers).toEqual([layer('5'), layer('6'), layer('7'), layer('a'), layer('b')]);
    expect(plan.appLayers[0]).toBe(app.manifest.layers[2]);
    expect(plan.oldRunLayers).toBe(2);
    expect(plan.config.rootfs.diff_ids).toEqual([d('5'), d('6'), d('7'), d('3'), d('4')]);
    // 'run env' (empty_layer after the old top layer) was the old run image's: not kept (go-containerregistry mutate.Rebase)
    expect(plan.config.history?.map((h) => h.created_by)).toEqual(['new 0', 'new 1', 'new 2', 'app 0', 'app 1']);
    expect(plan.config['extraField']).toBe('kept');
    expect(plan.config.created).toBe('2026-01-01T00:00:00Z');
    expect(plan.config.config?.Env).toEqual(['PATH=/bin', 'CNB_PLATFORM_API=0.14']);
    const labels = plan.config.config?.Labels ?? {};
    const md = JSON.parse(labels[META] ?? '{}') as { runImage: Record<string, unknown>; app: unknown };
    expect(md.runImage).toEqual({ topLayer: d('7'), reference: `docker.io/kt/run@${d('8')}`, image: 'kt/run' });
    expect(md.app).toEqual([{ sha: d('a') }]);
    expect(labels['io.buildpacks.base.new']).toBe('yes');
    expect(labels['io.buildpacks.base.old-only']).toBeUndefined();
    expect(labels['org.example']).toBe('kept');
    expect(plan.manifest.annotations).toEqual({ 'org.opencontainers.image.base.name': 'docker.io/kt/run:latest', other: 'x' });
    expect(plan.warnings).toEqual([]);
  });

  test('new run image layers take the media type family of the app manifest (same blobs)', () => {
    const app = appImage();
    const docker = { ...app, manifest: { ...app.manifest, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', layers: app.manifest.layers.map((l) => ({ ...l, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' })) } };
    const run = runImage();
    const foreign = { ...layer('7'), mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' };
    const withForeign = { ...run, manifest: { ...run.manifest, layers: [layer('5'), { ...layer('6'), mediaType: 'application/vnd.oci.image.layer.v1.tar' }, foreign] } };
    const plan = planRebase({ app: docker, runImage: withForeign, force: false });
    expect(plan.manifest.layers.slice(0, 3)).toEqual([
      { ...layer('5'), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' },
      { ...layer('6'), mediaType: 'application/vnd.docker.image.rootfs.diff.tar' },
      foreign,
    ]);
    expect(planRebase({ app, runImage: withForeign, force: false }).manifest.layers[1]?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
  });

  test('an app history not lined up with its layers gets one entry per kept layer', () => {
    const app = appImage();
    const broken = { ...app, config: { ...app.config, history: [{ created_by: 'only one' }] } };
    const plan = planRebase({ app: broken, runImage: runImage(), force: false });
    expect(plan.config.history).toEqual([{ created_by: 'new 0' }, { created_by: 'new 1' }, { created_by: 'new 2' }, { created: '2026-01-01T00:00:00Z' }, { created: '2026-01-01T00:00:00Z' }]);
  });

  test('refusals, and what --force lets through', () => {
    const notCnb = appImage();
    const plain = { ...notCnb, config: { ...notCnb.config, config: { Labels: {} } } };
    expect(() => planRebase({ app: plain, runImage: runImage(), force: true })).toThrow(expect.objectContaining({ code: 'KLN0920' }));

    const pinned = appImage({ labels: { 'io.buildpacks.rebasable': 'false' } });
    expect(() => planRebase({ app: pinned, runImage: runImage(), force: false })).toThrow(expect.objectContaining({ code: 'KLN0921' }));
    expect(planRebase({ app: pinned, runImage: runImage(), force: true }).warnings).toEqual(['app image is not marked as rebasable']);

    expect(() => planRebase({ app: appImage(), runImage: runImage({ arch: 'arm64' }), force: false })).toThrow(expect.objectContaining({ code: 'KLN0922' }));
    expect(planRebase({ app: appImage(), runImage: runImage({ arch: 'arm64' }), force: true }).config.architecture).toBe('arm64');
    expect(() => planRebase({ app: appImage(), runImage: runImage({ labels: { 'io.buildpacks.base.distro.version': '2' } }), force: false })).toThrow(expect.objectContaining({ code: 'KLN0922' }));

    expect(() => planRebase({ app: appImage({ topLayer: d('f') }), runImage: runImage(), force: true })).toThrow(expect.objectContaining({ code: 'KLN0923' }));

    expect(() => planRebase({ app: appImage(), runImage: runImage({ name: 'docker.io/other/run:2' }), force: false })).toThrow(expect.objectContaining({ code: 'KLN0924' }));
    const forced = planRebase({ app: appImage(), runImage: runImage({ name: 'docker.io/other/run:2' }), force: true });
    const md = JSON.parse(forced.config.config?.Labels?.[META] ?? '{}') as { runImage: { image: string; mirrors: string[] } };
    expect(md.runImage.image).toBe('docker.io/other/run:2');
    expect(md.runImage.mirrors).toEqual([]);
  });

  test('images before Platform API 0.12: the stack id decides, --force or not', () => {
    const old = appImage({ env: ['PATH=/bin', 'CNB_PLATFORM_API=0.9'], labels: { 'io.buildpacks.rebasable': 'false' } });
    expect(() => planRebase({ app: old, runImage: runImage({ labels: { 'io.buildpacks.stack.id': 'other' } }), force: true })).toThrow(expect.objectContaining({ code: 'KLN0922' }));
    // rebasable is not read before 0.12
    expect(planRebase({ app: old, runImage: runImage(), force: false }).warnings).toEqual([]);
    const mixins = appImage({ env: [], labels: { 'io.buildpacks.stack.mixins': '["run:curl","git"]' } });
    expect(() => planRebase({ app: mixins, runImage: runImage({ labels: { 'io.buildpacks.stack.mixins': '["git"]' } }), force: false })).toThrow(/mixin\(s\): curl/);
  });

  test('default run image: the recorded name, else the reference repository at latest', () => {
    expect(defaultRunImageName({ topLayer: d('1'), reference: 'x', image: 'kt/run:2' })).toBe('kt/run:2');
    expect(defaultRunImageName({ topLayer: d('1'), reference: `reg.example:5000/kt/run@${d('9')}` })).toBe('reg.example:5000/kt/run:latest');
  });
});

describe('planRebase, adversarial', () => {
  test('an app layer with the same diffID as the run image top layer stays an app layer (first match, as imgutil)', () => {
    const app = appImage();
    // app layer 'b' has the run top's diffID (an identical layer, e.g. the same small tar)
    const dup = { ...app, config: { ...app.config, rootfs: { type: 'layers' as const, diff_ids: [d('1'), d('2'), d('3'), d('2')] } } };
    const plan = planRebase({ app: dup, runImage: runImage(), force: false });
    expect(plan.oldRunLayers).toBe(2);
    expect(plan.appLayers).toEqual([layer('a'), layer('b')]);
    expect(plan.config.rootfs.diff_ids).toEqual([d('5'), d('6'), d('7'), d('3'), d('2')]);
    expect(plan.config.history?.map((h) => h.created_by)).toEqual(['new 0', 'new 1', 'new 2', 'app 0', 'app 1']);
  });

  test("history: the old run image's trailing non-layer entries go, the app's own empty entries between and after its layers stay", () => {
    const app = appImage();
    const h = [
      { created_by: 'run 0' },
      { created_by: 'run env', empty_layer: true },
      { created_by: 'run 1' },
      { created_by: 'run user', empty_layer: true },
      { created_by: 'run label', empty_layer: true },
      { created_by: 'app 0' },
      { created_by: 'app env', empty_layer: true },
      { created_by: 'app 1' },
      { created_by: 'app label', empty_layer: true },
    ];
    const plan = planRebase({ app: { ...app, config: { ...app.config, history: h } }, runImage: runImage(), force: false });
    expect(plan.config.history?.map((e) => e.created_by)).toEqual(['new 0', 'new 1', 'new 2', 'app 0', 'app env', 'app 1', 'app label']);
  });

  test('a --run-image of the recorded repository at another tag or a digest is the run image (lifecycle compares repositories)', () => {
    for (const name of ['docker.io/kt/run:2', `kt/run@${d('8')}`, 'index.docker.io/kt/run:latest']) {
      const plan = planRebase({ app: appImage(), runImage: runImage({ name }), force: false });
      expect(plan.warnings).toEqual([]);
      const md = JSON.parse(plan.config.config?.Labels?.[META] ?? '{}') as { runImage: { image: string } };
      expect(md.runImage.image).toBe('kt/run');
    }
    // a mirror, by another tag
    const mirrored = appImage();
    const labels = mirrored.config.config?.Labels ?? {};
    const md = JSON.parse(labels[META] ?? '{}') as { runImage: Record<string, unknown> };
    md.runImage['mirrors'] = ['mirror.example/kt/run:1'];
    const withMirror = { ...mirrored, config: { ...mirrored.config, config: { ...mirrored.config.config, Labels: { ...labels, [META]: JSON.stringify(md) } } } };
    expect(planRebase({ app: withMirror, runImage: runImage({ name: 'mirror.example/kt/run:7' }), force: false }).warnings).toEqual([]);
    expect(() => planRebase({ app: withMirror, runImage: runImage({ name: 'mirror.example/kt/other:1' }), force: false })).toThrow(expect.objectContaining({ code: 'KLN0924' }));
  });
});

describe('planRebase, a run image top layer that occurs more than once', () => {
  // old run image layers 1, 2, 1' (its top layer has the same diffID as its first); app layers a, b
  function twice(): RebaseImage {
    const app = appImage({ topLayer: d('1'), history: false });
    return {
      ...app,
      manifest: { ...app.manifest, layers: [layer('1'), layer('2'), layer('1'), layer('a'), layer('b')] },
      config: { ...app.config, rootfs: { type: 'layers', diff_ids: [d('1'), d('2'), d('1'), d('3'), d('4')] } },
    };
  }

  test('the old run image (by runImage.reference) decides where its layers end', () => {
    const plan = planRebase({ app: twice(), runImage: runImage(), force: false, oldRunImage: { diffIds: [d('1'), d('2'), d('1')] } });
    expect(plan.oldRunLayers).toBe(3);
    expect(plan.appLayers).toEqual([layer('a'), layer('b')]);
    expect(plan.config.rootfs.diff_ids).toEqual([d('5'), d('6'), d('7'), d('3'), d('4')]);
    expect(plan.warnings).toEqual([]);
  });

  test('without the old run image: the first occurrence (as lifecycle), with a warning', () => {
    const plan = planRebase({ app: twice(), runImage: runImage(), force: false });
    expect(plan.oldRunLayers).toBe(1);
    expect(plan.warnings).toEqual([expect.stringMatching(/occurs 2 times/)]);
  });

  test('an old run image that is not a prefix of the app is not used', () => {
    const plan = planRebase({ app: twice(), runImage: runImage(), force: false, oldRunImage: { diffIds: [d('9'), d('1')] } });
    expect(plan.oldRunLayers).toBe(1);
  });
});

describe('defaultRunImageName, publishing', () => {
  test("a mirror in the app's registry is preferred (pack's best mirror): its layers can be mounted", () => {
    const run = { topLayer: d('1'), reference: `docker.io/kt/run@${d('9')}`, image: 'kt/run:2', mirrors: ['other.example/kt/run:2', 'reg.example:5000/mirror/run:2'] };
    expect(defaultRunImageName(run, 'reg.example:5000')).toBe('reg.example:5000/mirror/run:2');
    expect(defaultRunImageName(run, 'docker.io')).toBe('kt/run:2');
    expect(defaultRunImageName(run, 'nowhere.example')).toBe('kt/run:2');
    expect(defaultRunImageName(run)).toBe('kt/run:2');
  });
});

describe('planRebase, zstd run image layers under a Docker schema 2 app', () => {
  test('the rebased manifest becomes OCI (Docker schema 2 has no zstd type; BuildKit switches to OCI types for zstd too): same blobs, types retyped', () => {
    const app = appImage();
    const docker: RebaseImage = {
      ...app,
      manifest: {
        ...app.manifest,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { ...app.manifest.config, mediaType: 'application/vnd.docker.container.image.v1+json' },
        layers: app.manifest.layers.map((l) => ({ ...l, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' })),
      },
    };
    const run = runImage();
    const zstd = { ...run, manifest: { ...run.manifest, layers: [layer('5'), layer('6', 'application/vnd.oci.image.layer.v1.tar+zstd'), layer('7', 'application/vnd.oci.image.layer.v1.tar')] } };
    const plan = planRebase({ app: docker, runImage: zstd, force: false });
    expect(plan.manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(plan.manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(plan.manifest.layers).toEqual([layer('5'), layer('6', 'application/vnd.oci.image.layer.v1.tar+zstd'), layer('7', 'application/vnd.oci.image.layer.v1.tar'), layer('a'), layer('b')]);
    // the app's own descriptors are what is pushed (same blobs)
    expect(plan.appLayers).toEqual(docker.manifest.layers.slice(2));
    // without zstd the Docker app stays Docker
    expect(planRebase({ app: docker, runImage: run, force: false }).manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    // an OCI non-distributable run layer has no Docker schema 2 type either
    const nondist = { ...run, manifest: { ...run.manifest, layers: [layer('5'), layer('6'), layer('7', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip')] } };
    expect(planRebase({ app: docker, runImage: nondist, force: false }).manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });
});

describe('defaultRunImageName, an image ID as runImage.reference (lifecycle exporting to a daemon)', () => {
  test('is not taken for a repository named sha256', () => {
    expect(defaultRunImageName({ topLayer: d('1'), reference: d('9') })).toBeUndefined();
    expect(defaultRunImageName({ topLayer: d('1'), reference: '9'.repeat(64) })).toBeUndefined();
  });
});
