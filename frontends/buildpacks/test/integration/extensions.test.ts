import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, digestOf, type Digest } from '@kiln/runtime';
import { imageConfig, kiln, runBundle, unpack, writeTree, type Sandbox, useSandbox } from './helpers.js';

// Image extensions (Platform API 0.12/0.13 generate + extend) on kt/ext-builder: the sample
// extensions of test/fixtures/buildpacks.ts, applied by the Dockerfile frontend through the client.

let sb: Sandbox;
const EPOCH = { SOURCE_DATE_EPOCH: '315532801' };
useSandbox((s) => (sb = s));

const PROJECT = '# syntax=kiln/buildpacks\n[_]\nschema-version = "0.2"\nid = "kiln-ext-app"\n\n[io.buildpacks]\nbuilder = "kt/ext-builder"\n';

type Sha = { sha: string };
interface LifecycleMd {
  app: Sha[];
  config: Sha;
  buildpacks: { key: string }[];
  runImage: { topLayer: string; reference: string; image: string };
}

let n = 0;
async function build(files: Readonly<Record<string, string>>, extra: string[] = []) {
  const i = ++n;
  const app = join(sb.dir, `ext-app-${i}`);
  await writeTree(app, { 'project.toml': PROJECT, ...files });
  const layout = join(sb.dir, `ext-out-${i}.oci`);
  const run = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', ...extra, '--output', `type=oci,dest=${layout},tar=false,name=app:1`], sb.dir, EPOCH);
  return { app, layout, run };
}

async function unpacked(layout: string): Promise<{ bundle: string; rootfs: string }> {
  const bundle = `${layout}-bundle`;
  await unpack(layout, '1', bundle);
  return { bundle, rootfs: join(bundle, 'rootfs') };
}

/** The top layer diffID of a test image in the sandbox's kiln store (what runImage.topLayer must be). */
async function runImageTop(name: 'run' | 'run-alt'): Promise<string> {
  const store = await ContentStore.open(sb.root);
  const record = await (await ImageStore.open(sb.root)).mustGet(`docker.io/kt/${name}:latest`);
  const manifest = JSON.parse((await store.readBlob(record.target.digest)).toString('utf8')) as { config: { digest: Digest } };
  const config = JSON.parse((await store.readBlob(manifest.config.digest)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
  return config.rootfs.diff_ids.at(-1) ?? '';
}

describe('kiln/buildpacks image extensions', () => {
  test('build.Dockerfile: the build image gets kt-tool (extend-config arg, context dir) and the buildpack uses it; the run image is untouched; a rebuild is cached', async () => {
    const { layout, run, app } = await build({ 'needs-tool': '' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('[detect] extension kt/ext-tool@0.0.1');
    expect(run.stderr).toContain('[generate] extension kt/ext-tool@0.0.1');
    // the Dockerfile frontend compiled the generated build.Dockerfile (its RUN and COPY ran)
    expect(run.stderr).toMatch(/RUN mkdir -p \/usr\/local\/bin/);
    // the spec's preamble (ARG base_image without a default) is not linted as an invalid FROM
    expect(run.stderr).not.toContain('InvalidDefaultArgInFrom');
    // the extensions that provide nothing required were dropped: no generate for them
    expect(run.stderr).not.toContain('[generate] extension kt/ext-run');
    const { bundle, rootfs } = await unpacked(layout);
    // the plan entry kt-tool went to the extension, none is left for the buildpack
    expect(await readFile(join(rootfs, 'workspace/report.txt'), 'utf8')).toBe('kt-tool: hello from extend-config built\nmotd from the kt/ext-tool context\nplan entries: 0\n');
    expect(existsSync(join(rootfs, 'usr/local/bin/kt-tool'))).toBe(false);
    const cfg = await imageConfig(layout);
    const md = JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as LifecycleMd;
    expect(md.runImage.image).toBe('kt/run');
    expect(md.runImage.topLayer).toBe(await runImageTop('run'));
    expect(cfg.config.Labels?.['io.buildpacks.rebasable']).toBeUndefined();
    // build metadata: the buildpacks, and the group's extensions apart (lifecycle's BuildMetadata.Extensions)
    const bm = JSON.parse(cfg.config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string }[]; extensions?: unknown };
    expect(bm.buildpacks.map((b) => b.id)).toEqual(['kt/uses-tool']);
    expect(bm.extensions).toEqual([{ id: 'kt/ext-tool', version: '0.0.1', homepage: 'https://example.com/kt/ext-tool' }]);
    expect(await readFile(join(rootfs, 'layers/config/metadata.toml'), 'utf8')).toMatch(/\[\[extensions\]\]\nid = "kt\/ext-tool"\nversion = "0.0.1"/);
    const ran = await runBundle(bundle, { id: `kiln-cnb-ext-${process.pid}-1` });
    expect(ran.stdout).toContain('kt-tool: hello from extend-config built');

    const again = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${layout}-2,tar=false,name=app:1`], sb.dir, EPOCH);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/\[build\] kt\/uses-tool@0.0.1\n#\d+ CACHED/);
    expect(again.stderr).toMatch(/\[generate\] extension kt\/ext-tool@0.0.1\n#\d+ CACHED/);
    const digest = async (l: string): Promise<string> => (JSON.parse(await readFile(join(l, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]?.digest ?? '';
    expect(await digest(`${layout}-2`)).toBe(await digest(layout));
  }, 300_000);

  test('run.Dockerfiles: a static extension switches to kt/run-alt, another extends it (file, label, user reset, history): rebasable=false, topLayer of kt/run-alt, shas filled; kiln rebase refuses it', async () => {
    // with needs-tool too: the build image is extended while the run image is
    const { layout, run, app } = await build({ 'use-run-alt': '', 'extend-run': '', 'needs-tool': '' });
    expect(run.code, run.stderr).toBe(0);
    // static detect/plan.toml and generate/: no exec for kt/ext-run-alt
    expect(run.stderr).not.toContain('[detect] extension kt/ext-run-alt');
    expect(run.stderr).toContain('[generate] extension kt/ext-run-alt@0.0.1 (static generate/)');
    expect(run.stderr).toContain('[generate] extension kt/ext-run-extend@0.0.1');
    // the switch (FROM kt/run-alt only) changes the base; only the extending Dockerfile is compiled
    expect(run.stderr).not.toContain('[internal] run.Dockerfile of extension kt/ext-run-alt');
    expect(run.stderr).toContain('[internal] run.Dockerfile of extension kt/ext-run-extend');
    const { rootfs, bundle } = await unpacked(layout);
    expect(await readFile(join(rootfs, 'etc/kt-run-id'), 'utf8')).toBe('run-alt\n');
    expect(await readFile(join(rootfs, 'etc/kt-extended'), 'utf8')).toBe('extended by kt/ext-run-extend\n');
    const report = 'kt-tool: hello from extend-config built\nmotd from the kt/ext-tool context\nplan entries: 0\n';
    expect(await readFile(join(rootfs, 'workspace/report.txt'), 'utf8')).toBe(report);
    expect(existsSync(join(rootfs, 'usr/local/bin/kt-tool'))).toBe(false);
    const cfg = await imageConfig(layout);
    expect(cfg.config.User).toBe('1002:1001');
    expect(cfg.config.Labels?.['org.example.extended']).toBe('yes');
    expect(cfg.config.Labels?.['io.buildpacks.rebasable']).toBe('false');
    // the extension layer's history names it, as lifecycle's extender writes it
    // (imageConfig returns the whole config JSON; its type names only what other tests read)
    const { history } = cfg as unknown as { history: { created_by?: string; empty_layer?: boolean }[] };
    expect(history.filter((h) => h.empty_layer !== true).map((h) => h.created_by)[2]).toMatch(/^Layer: 'RUN .*extended by kt\/ext-run-extend.*', Created by extension: kt\/ext-run-extend$/);
    const md = JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as LifecycleMd;
    expect(md.runImage.image).toBe('kt/run-alt');
    expect(md.runImage.reference).toMatch(/^docker\.io\/kt\/run-alt@sha256:[0-9a-f]{64}$/);
    const altTop = await runImageTop('run-alt');
    expect(md.runImage.topLayer).toBe(altTop);
    // kt/run-alt's layers, then the extension's layer(s), then the app's: the shas were filled
    const at = cfg.rootfs.diff_ids.indexOf(altTop);
    expect(at).toBe(1);
    expect(cfg.rootfs.diff_ids.length).toBeGreaterThan(at + 3);
    expect(md.app[0]?.sha).toBe(cfg.rootfs.diff_ids.at(-2));
    expect(md.config.sha).toBe(cfg.rootfs.diff_ids.at(-1));
    const ran = await runBundle(bundle, { id: `kiln-cnb-ext-${process.pid}-2` });
    expect(ran.stdout).toBe(report);

    const stored = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '-t', 'ext-run-app:1'], sb.dir, EPOCH);
    expect(stored.code, stored.stderr).toBe(0);
    // the same build again: the extension Dockerfiles' steps are cached LLB steps like the rest
    expect(stored.stderr).toMatch(/RUN echo "extended by kt\/ext-run-extend"[^\n]*\n#\d+ CACHED/);
    expect(stored.stderr).toMatch(/RUN mkdir -p \/usr\/local\/bin[^\n]*\n#\d+ CACHED/);
    expect(stored.stderr).toMatch(/\[build\] kt\/uses-tool@0.0.1\n#\d+ CACHED/);
    const rebase = await kiln(['rebase', 'ext-run-app:1', '--root', sb.root], sb.dir);
    expect(rebase.code).toBe(1);
    expect(rebase.stderr).toContain('KLN0921');
    expect(rebase.stderr).toContain('--force rebases anyway, keeping the layers the extensions added');
  }, 300_000);

  test('a run.Dockerfile RUN that changes no file (RUN echo ${build_id}, as lifecycle\'s own samples do): the app layer shas are still filled', async () => {
    const { layout, run } = await build({ 'use-run-alt': '', 'extend-run': '', 'echo-build-id': '' });
    expect(run.code, run.stderr).toBe(0);
    // build_id is a UUID (a new one every build, as the spec asks)
    expect(run.stderr).toMatch(/RUN echo [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n/);
    const cfg = await imageConfig(layout);
    const md = JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as LifecycleMd;
    expect(md.runImage.topLayer).toBe(await runImageTop('run-alt'));
    expect(cfg.rootfs.diff_ids).toContain(md.runImage.topLayer);
    // the RUN's empty layer stays in the app image (the merge keeps it): one layer per history entry
    // that is not empty_layer, so the extension step's entry names its own layer
    const { history } = cfg as unknown as { history: { created_by?: string; empty_layer?: boolean }[] };
    const layered = history.filter((h) => h.empty_layer !== true);
    expect(layered).toHaveLength(cfg.rootfs.diff_ids.length);
    const echo = layered.findIndex((h) => (h.created_by ?? '').includes('echo ${build_id}'));
    expect(echo).toBeGreaterThan(cfg.rootfs.diff_ids.indexOf(md.runImage.topLayer));
    expect(cfg.rootfs.diff_ids[echo]).toBe(digestOf(new Uint8Array(1024))); // an empty tar
    expect(md.app[0]?.sha).toBe(cfg.rootfs.diff_ids.at(-2));
    expect(md.config.sha).toBe(cfg.rootfs.diff_ids.at(-1));
  }, 300_000);

  test('an app no extension applies to builds with the plain group (the extensions-free fallback)', async () => {
    const { layout, run } = await build({ 'app.sh': 'echo hi\n' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain('[generate]');
    const bm = JSON.parse((await imageConfig(layout)).config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string }[]; extensions?: unknown };
    expect(bm.buildpacks.map((b) => b.id)).toEqual(['kt/shell-app']);
    expect(bm.extensions).toBeUndefined();
  }, 300_000);

  test('an extension that generates nothing takes its plan entry and changes no image; a bin/generate that exits non-zero fails the build', async () => {
    const none = await build({ 'gen-none': '' });
    expect(none.run.code, none.run.stderr).toBe(0);
    expect(none.run.stderr).toContain('kt/ext-gen: nothing to generate');
    const { rootfs } = await unpacked(none.layout);
    expect(await readFile(join(rootfs, 'workspace/report.txt'), 'utf8')).toBe('plan entries: 0\n');
    const cfg = await imageConfig(none.layout);
    expect((JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as LifecycleMd).runImage.image).toBe('kt/run');
    expect(cfg.config.Labels?.['io.buildpacks.rebasable']).toBeUndefined();

    // the spec: a non-zero exit status of bin/generate MUST fail the build (it was read as an
    // output without Dockerfiles, and the build went on)
    const failed = await build({ 'gen-fail': '' });
    expect(failed.run.code, failed.run.stderr).toBe(1);
    expect(failed.run.stderr).toContain('kt/ext-gen: cannot generate');
    expect(failed.run.stderr).toMatch(/kiln: error .*\/cnb\/extensions\/kt_ext-gen\/0\.0\.1\/bin\/generate .* did not complete successfully: exit code: 3/);
    expect(failed.run.stderr).not.toContain('[build] kt/uses-tool');
    expect(existsSync(failed.layout)).toBe(false);
  }, 300_000);

  test('a # syntax= directive of a generated Dockerfile is not followed: the Dockerfile frontend compiles it (lifecycle ignores it too)', async () => {
    const { layout, run } = await build({ 'needs-tool': '', 'syntax-directive': '' });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain('kt/no-such-frontend');
    const { rootfs } = await unpacked(layout);
    expect(await readFile(join(rootfs, 'workspace/report.txt'), 'utf8')).toBe('kt-tool: hello from extend-config built\nmotd from the kt/ext-tool context\nplan entries: 0\n');
  }, 300_000);

  test('a multistage build.Dockerfile is KLN0908 naming the extension, file and line', async () => {
    const { run } = await build({ 'needs-tool': '', 'bad-dockerfile': '' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('kt/ext-tool: build.Dockerfile:4:1: build.Dockerfile is not permitted to use multistage build');
    expect(run.stderr).toContain('KLN0908');
  }, 300_000);

  test('a COPY of a generated build.Dockerfile that finds nothing: the Dockerfile frontend error at <extension>/build.Dockerfile:LINE', async () => {
    const { run } = await build({ 'needs-tool': '', 'no-context': '' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('kt_ext-tool/build.Dockerfile:6:1: "/tool-motd": not found');
    expect(run.stderr).toContain('COPY tool-motd /etc/kt-tool-motd');
  }, 300_000);

  test("a run.Dockerfile that mounts the build's secret is KLN0908 at its line, and nothing of it runs", async () => {
    const tok = join(sb.dir, 'tok');
    await writeTree(sb.dir, { tok: 'user-token\n' });
    const { run } = await build({ 'extend-run': '', 'use-secret': '' }, ['--secret', `id=tok,src=${tok}`]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain('KLN0908');
    expect(run.stderr).toContain(`kt/ext-run-extend: run.Dockerfile:6:1: run.Dockerfile may not use what the build was given: RUN --mount=type=secret mounts the build secret "tok"`);
    expect(run.stderr).not.toMatch(/RUN echo "extended by kt\/ext-run-extend"/);
  }, 300_000);

  test('a run.Dockerfile that leaves the user root is KLN0909', async () => {
    const { run } = await build({ 'extend-run': '', 'run-as-root': '' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('KLN0909');
    expect(run.stderr).toContain('the final user ID of the extended run image is 0 (root)');
  }, 300_000);
});
