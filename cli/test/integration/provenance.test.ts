import { execFileSync } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ImageStore } from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { type KilnSandbox, compileCli, makeSandbox, requireTools, runKiln, token, writeTree, layoutBlob, layoutJson, unpackLayout, type Descriptor } from './build-helpers.js';

// `kiln build --provenance` end to end: real runc, the real CLI, skopeo and a real docker-registry
// read what came out. Expected values come from the artifacts themselves (the image manifest
// digest in the index, the base image in the store), never from kiln's provenance code.

let sb: KilnSandbox;
let registry: TestRegistry;
let busyboxDigest: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  registry = await startRegistry();
  busyboxDigest = (await (await ImageStore.open(sb.root)).get('docker.io/library/busybox:latest'))?.target.digest ?? '';
}, 300_000);

afterAll(async () => {
  await registry?.stop();
  await sb?.cleanup();
});

const EPOCH = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000'];
const hostPlatform = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;

interface Statement {
  _type: string;
  predicateType: string;
  subject: Array<{ name: string; digest: Record<string, string> }>;
  predicate: {
    builder: { id: string };
    buildType: string;
    materials?: Array<{ uri: string; digest: Record<string, string> }>;
    invocation: { configSource: Record<string, unknown>; parameters: { frontend?: string; args?: Record<string, string>; secrets?: Array<{ id: string; optional?: boolean }>; locals?: Array<{ name: string }> }; environment: { platform: string } };
    buildConfig?: { llbDefinition: Array<{ id: string; op: { Op: { exec?: { meta: { args: string[] } } } | null }; inputs?: string[] }> };
    metadata: {
      buildInvocationID: string;
      buildStartedOn: string;
      buildFinishedOn: string;
      completeness: Record<string, boolean>;
      reproducible: boolean;
      'https://mobyproject.org/buildkit@v1#metadata': { layers?: Record<string, Descriptor[][]> };
    };
  };
}

async function context(t: string): Promise<string> {
  const dir = join(sb.dir, `ctx-${t}`);
  await writeTree(dir, {
    Dockerfile: ['FROM busybox', `RUN --mount=type=secret,id=tok cat /run/secrets/tok > /dev/null && echo ran-${t} > /ran.txt`, 'COPY app.txt /app.txt', ''].join('\n'),
    'app.txt': `app-${t}\n`,
  });
  return dir;
}

async function build(args: readonly string[]) {
  const r = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', ...EPOCH, ...args]);
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
  return r;
}


/** The attested index of a layout: its image manifest entry, attestation entry and the statement. */
async function attested(layout: string, index: { manifests: Descriptor[] }) {
  expect(index.manifests).toHaveLength(2);
  const [image, att] = index.manifests as [Descriptor, Descriptor];
  const manifest = await layoutJson<{ config: Descriptor; layers: Descriptor[] }>(layout, att.digest);
  expect(manifest.layers).toHaveLength(1);
  const layer = manifest.layers[0] as Descriptor;
  const statement = await layoutJson<Statement>(layout, layer.digest);
  return { image, att, manifest, layer, statement };
}

describe('--provenance on image outputs', () => {
  test('mode=max, type=oci: index with the image and its attestation manifest; statement over the image manifest; no secret anywhere', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    const secretValue = `s3cr3t-value-${t}`;
    await writeFile(secretFile, secretValue);
    const out = join(sb.dir, `prov-max-${t}.tar`);
    await build([ctx, '-t', `app:${t}`, '--secret', `id=tok,src=${secretFile}`, '--provenance', 'mode=max', '--build-arg', `VERSION=${t}`, '--output', `type=oci,dest=${out}`]);

    // skopeo reads the root: an OCI index, the image for the build platform, the attestation as unknown/unknown
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${out}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Descriptor[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const layout = await unpackLayout(out);
    const { image, att, manifest, layer, statement } = await attested(layout, index);
    expect(image.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(`${image.platform?.os}/${image.platform?.architecture}`).toBe(hostPlatform);
    expect(att.platform).toEqual({ architecture: 'unknown', os: 'unknown' });
    expect(att.annotations).toEqual({ 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' });
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(layer.mediaType).toBe('application/vnd.in-toto+json');
    expect(layer.annotations).toEqual({ 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' });
    expect(await layoutJson(layout, manifest.config.digest)).toEqual({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } });

    expect(statement._type).toBe('https://in-toto.io/Statement/v0.1');
    expect(statement.predicateType).toBe('https://slsa.dev/provenance/v0.2');
    expect(statement.subject).toEqual([{ name: `pkg:docker/app@${t}?platform=${encodeURIComponent(hostPlatform)}`, digest: { sha256: image.digest.replace('sha256:', '') } }]);
    const p = statement.predicate;
    expect(p.buildType).toBe('https://mobyproject.org/buildkit@v1');
    expect(p.materials).toContainEqual({ uri: `pkg:docker/busybox@latest?platform=${encodeURIComponent(hostPlatform)}`, digest: { sha256: busyboxDigest.replace('sha256:', '') } });
    expect(p.invocation.configSource).toEqual({ entryPoint: 'Dockerfile' });
    expect(p.invocation.parameters.frontend).toBe('dockerfile.v0');
    expect(p.invocation.parameters.args?.[`build-arg:VERSION`]).toBe(t);
    expect(p.invocation.parameters.secrets).toEqual([{ id: 'tok', optional: true }]);
    expect(p.invocation.parameters.locals).toEqual([{ name: 'context' }, { name: 'dockerfile' }]);
    expect(p.invocation.environment.platform).toBe(hostPlatform);
    // the RUN step is in the LLB steps, with its input step before it
    const steps = p.buildConfig?.llbDefinition ?? [];
    const run = steps.find((s) => s.op.Op?.exec?.meta.args.some((a) => a.includes(`echo ran-${t}`)) === true);
    expect(run?.inputs?.[0]).toMatch(/^step\d+:0$/);
    expect(steps[steps.length - 1]?.op.Op).toBeNull();
    expect(p.metadata.buildInvocationID).toMatch(/^[0-9a-z]{25}$/);
    expect(Date.parse(p.metadata.buildFinishedOn)).toBeGreaterThanOrEqual(Date.parse(p.metadata.buildStartedOn));
    expect(p.metadata.completeness).toEqual({ parameters: true, environment: true, materials: false });
    // layers: the image's chain under the result's step, its prefixes under the RUN and the base
    const imageLayers = (await layoutJson<{ layers: Descriptor[] }>(layout, image.digest)).layers.map((l) => l.digest);
    const chains = p.metadata['https://mobyproject.org/buildkit@v1#metadata'].layers ?? {};
    const chain = (step: string | undefined): string[] => (chains[step ?? ''] ?? [])[0]?.map((l) => l.digest) ?? [];
    expect(chain(steps[steps.length - 1]?.inputs?.[0])).toEqual(imageLayers);
    expect(chain(`${run?.id ?? ''}:0`)).toEqual(imageLayers.slice(0, -1));
    expect(chain(run?.inputs?.[0])).toEqual(imageLayers.slice(0, 1));

    // the secret's value and its host path are in no file of the output
    for (const name of ['index.json', ...(await readdir(join(layout, 'blobs/sha256'))).map((b) => `blobs/sha256/${b}`)]) {
      const text = (await readFile(join(layout, name))).toString('latin1');
      expect(text.includes(secretValue), name).toBe(false);
      expect(text.includes(secretFile), name).toBe(false);
    }
    expect((await readFile(out)).toString('latin1').includes(secretValue)).toBe(false);
    // the attested image is still a usable image: its config as skopeo sees it
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${out}`], { encoding: 'utf8' })) as { created: string };
    expect(cfg.created).toBe('2023-11-14T22:13:20Z');
  });

  test('mode=min: no buildConfig, no build args, no secrets; the image inside is the image of a build without --provenance', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    await writeFile(secretFile, 'x');
    const plain = join(sb.dir, `plain-${t}.tar`);
    const plain2 = join(sb.dir, `plain2-${t}.tar`);
    const off = join(sb.dir, `off-${t}.tar`);
    const min = join(sb.dir, `min-${t}.tar`);
    const common = [ctx, '--secret', `id=tok,src=${secretFile}`, '--build-arg', `VERSION=${t}`];
    const a = await build([...common, '--output', `type=oci,dest=${plain}`]);
    const b = await build([...common, '--output', `type=oci,dest=${plain2}`]);
    const c = await build([...common, '--provenance=false', '--output', `type=oci,dest=${off}`]);
    await build([...common, '--attest', 'type=provenance,mode=min', '--output', `type=oci,dest=${min}`]);
    // no flag (or --provenance=false): the output is the plain single-manifest image, byte for byte the same
    const digestOf = (r: { stderr: string }): string => /oci \S+: (sha256:[0-9a-f]{64})/.exec(r.stderr)?.[1] ?? '';
    expect(digestOf(a)).toMatch(/^sha256:/);
    expect(digestOf(b)).toBe(digestOf(a));
    expect(digestOf(c)).toBe(digestOf(a));
    const sha = (f: string): string => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0] ?? '';
    // created annotations in index.json carry the export time; compare the root manifest bytes instead
    const plainRoot = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${plain}`], { encoding: 'utf8' })) as { mediaType?: string; config?: Descriptor; layers?: Descriptor[] };
    expect(plainRoot.config?.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(sha(plain)).toBe(sha(plain2));

    const layout = await unpackLayout(min);
    const index = JSON.parse((await layoutBlob(layout, JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')).manifests[0].digest as string)).toString()) as { manifests: Descriptor[] };
    const { image, statement } = await attested(layout, index);
    // the attested image is the same image: config and layers as without --provenance
    const inner = await layoutJson<{ config: Descriptor; layers: Descriptor[] }>(layout, image.digest);
    expect(inner.config.digest).toBe(plainRoot.config?.digest);
    expect(inner.layers.map((l) => l.digest)).toEqual(plainRoot.layers?.map((l) => l.digest));
    // no names: no subjects, as BuildKit v0.11 writes it
    expect(statement.subject).toEqual([]);
    const p = statement.predicate;
    expect(p.buildConfig).toBeUndefined();
    expect(p.invocation.parameters.args).toBeUndefined();
    expect(p.invocation.parameters.secrets).toBeUndefined();
    expect(p.metadata.completeness['parameters']).toBe(false);
  });

  test('type=docker keeps the attestation in the tarball; manifest.json names the image', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    await writeFile(secretFile, 'x');
    const out = join(sb.dir, `docker-${t}.tar`);
    await build([ctx, '-t', `app:${t}`, '--secret', `id=tok,src=${secretFile}`, '--provenance', '--output', `type=docker,dest=${out}`]);
    const layout = await unpackLayout(out);
    const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    const index = await layoutJson<{ manifests: Descriptor[] }>(layout, top.manifests[0]?.digest ?? '');
    const { image, statement } = await attested(layout, index);
    const manifestJson = JSON.parse(await readFile(join(layout, 'manifest.json'), 'utf8')) as Array<{ Config: string; RepoTags: string[] }>;
    const imageManifest = await layoutJson<{ config: Descriptor }>(layout, image.digest);
    expect(manifestJson).toHaveLength(1);
    expect(manifestJson[0]?.Config).toBe(`blobs/sha256/${imageManifest.config.digest.replace('sha256:', '')}`);
    expect(manifestJson[0]?.RepoTags).toEqual([`app:${t}`]);
    expect(statement.subject[0]?.digest['sha256']).toBe(image.digest.replace('sha256:', ''));
  });

  test('push to a registry keeps the attestation manifest and its statement', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    await writeFile(secretFile, 'x');
    const ref = `${registry.host}/kiln/prov:${t}`;
    await build([ctx, '-t', ref, '--push', '--secret', `id=tok,src=${secretFile}`, '--provenance', 'mode=max']);
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Descriptor[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests).toHaveLength(2);
    const [image, att] = index.manifests as [Descriptor, Descriptor];
    expect(att.annotations?.['vnd.docker.reference.digest']).toBe(image.digest);
    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/kiln/prov@${att.digest}`], { encoding: 'utf8' })) as { layers: Descriptor[] };
    const res = await fetch(`http://${registry.host}/v2/kiln/prov/blobs/${manifest.layers[0]?.digest ?? ''}`);
    expect(res.status).toBe(200);
    const statement = (await res.json()) as Statement;
    expect(statement.subject).toEqual([{ name: `pkg:docker/${registry.host.replace(':', '%3A')}/kiln/prov@${t}?platform=${encodeURIComponent(hostPlatform)}`, digest: { sha256: image.digest.replace('sha256:', '') } }]);
    expect(statement.predicate.buildConfig?.llbDefinition.length).toBeGreaterThan(2);
    // the image itself pulls as before
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${ref}`], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] } };
    expect(cfg.rootfs.diff_ids.length).toBeGreaterThan(1);
  });
});

describe('--provenance on file outputs', () => {
  test('type=local writes provenance.json (0600) whose subjects are the output files', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    await writeFile(secretFile, 'x');
    const out = join(sb.dir, `local-${t}`);
    await build([ctx, '--secret', `id=tok,src=${secretFile}`, '--provenance=mode=max', '--output', `type=local,dest=${out}`]);
    expect((await stat(join(out, 'provenance.json'))).mode & 0o777).toBe(0o600);
    const text = await readFile(join(out, 'provenance.json'), 'utf8');
    expect(text.startsWith('{\n  "_type": "https://in-toto.io/Statement/v0.1",\n')).toBe(true);
    const statement = JSON.parse(text) as Statement;
    const sha = (f: string): string => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0] ?? '';
    expect(statement.subject).toContainEqual({ name: 'app.txt', digest: { sha256: sha(join(out, 'app.txt')) } });
    expect(statement.subject).toContainEqual({ name: 'ran.txt', digest: { sha256: sha(join(out, 'ran.txt')) } });
    expect(statement.subject.some((s) => s.name === 'provenance.json')).toBe(false);
    expect(statement.predicate.buildConfig?.llbDefinition.length).toBeGreaterThan(2);
  });

  test('type=tar carries provenance.json among the top-level entries', async () => {
    const t = token();
    const ctx = await context(t);
    const secretFile = join(sb.dir, `secret-${t}.txt`);
    await writeFile(secretFile, 'x');
    const out = join(sb.dir, `fs-${t}.tar`);
    await build([ctx, '--secret', `id=tok,src=${secretFile}`, '--provenance', '--output', `type=tar,dest=${out}`]);
    const names = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n').filter((n) => n !== '');
    expect(names).toContain('provenance.json');
    // sorted in place: after the `home/…` tree, before `ran.txt`
    expect(names.indexOf('provenance.json')).toBeLessThan(names.indexOf('ran.txt'));
    expect(names.indexOf('provenance.json')).toBeGreaterThan(names.indexOf('app.txt'));
    const statement = JSON.parse(execFileSync('tar', ['-xOf', out, 'provenance.json'], { encoding: 'utf8' })) as Statement;
    expect(statement.subject.map((s) => s.name)).toContain('ran.txt');
    expect(statement.predicate.buildConfig).toBeUndefined();
  });
});

test('--attest type=sbom with the default generator (not pullable offline) fails before anything runs', async () => {
  const t = token();
  const ctx = await context(t);
  const before = await sb.containersStarted();
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--attest', 'type=sbom', '--output', `type=oci,dest=${join(sb.dir, `sbom-${t}.tar`)}`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('KLN0511');
  expect(r.stderr).toContain('docker.io/docker/buildkit-syft-scanner:stable-1');
  expect(await sb.containersStarted()).toBe(before);
});

test('a bare --provenance before the context says how to write it, not that the Dockerfile is missing', async () => {
  const t = token();
  const ctx = await context(t);
  const r = await runKiln(sb, ['build', '--root', sb.root, '--provenance', ctx]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`KLN0702: invalid --provenance value "${ctx}"`);
  expect(r.stderr).toContain('with "="');
});
