import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type KilnSandbox, compileCli, makeSandbox, repo, requireTools, runKiln, token, writeTree, layoutBlob, layoutJson, unpackLayout, type Descriptor } from './build-helpers.js';
import { SCANNER, buildScanner, expectedPredicate } from './sbom-scanner.js';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { frontendBundle, pushNodeFrontend } from './external-frontend-image.js';

// `kiln build --sbom` / `--attest type=sbom` end to end, as BuildKit v0.11 runs the SBOM generator
// protocol (docs/attestations/sbom-protocol.md): a scanner image built here from busybox (a shell
// script that lists the files of $BUILDKIT_SCAN_SOURCE) runs under real runc; skopeo and the
// layout's blobs show what came out. Expected bytes are written out by hand from the protocol and
// BuildKit's exporter (Go's json.Marshal of the scanner's predicate: keys sorted), never taken from
// kiln's own encoder.

let sb: KilnSandbox;
const EPOCH = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000'];
const hostPlatform = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;
const platformQ = hostPlatform.replace('/', '%2F');

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  // The scanner image, built by kiln from busybox into the root's image store.
  await buildScanner(sb);
}, 300_000);

afterAll(async () => {
  await sb?.cleanup();
});

async function context(t: string): Promise<string> {
  const dir = join(sb.dir, `ctx-${t}`);
  await writeTree(dir, { Dockerfile: ['FROM busybox', `RUN echo ${t} > /created-by-run.txt`, ''].join('\n') });
  return dir;
}

async function build(args: readonly string[]) {
  const r = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', ...EPOCH, ...args]);
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  return r;
}

const indexOf = (tarball: string) => JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${tarball}`], { encoding: 'utf8' })) as { manifests: Descriptor[] };

describe('--attest type=sbom,generator=IMAGE', () => {
  test('type=oci: the scanner statement is the attestation layer, subject the image manifest; the image is the one a plain build makes', async () => {
    const t = token();
    const ctx = await context(t);
    const out = join(sb.dir, `sbom-${t}.tar`);
    const before = await sb.containersStarted();
    const r = await build([ctx, '-t', `app:${t}`, '--attest', `type=sbom,generator=${SCANNER}`, '--output', `type=oci,dest=${out}`]);
    expect(r.stderr).toContain(`[${hostPlatform}] generating sbom using ${SCANNER}`);
    // Two containers: the RUN and the scanner; the scanned result is the built one, not a rebuild.
    expect((await sb.containersStarted()) - before).toBe(2);

    const index = indexOf(out);
    expect(index.manifests).toHaveLength(2);
    const [image, att] = index.manifests as [Descriptor, Descriptor];
    expect(`${image.platform?.os}/${image.platform?.architecture}`).toBe(hostPlatform);
    expect(att.platform).toEqual({ architecture: 'unknown', os: 'unknown' });
    expect(att.annotations).toEqual({ 'vnd.docker.reference.digest': image.digest, 'vnd.docker.reference.type': 'attestation-manifest' });
    const layout = await unpackLayout(out);
    const manifest = await layoutJson<{ config: Descriptor; layers: Descriptor[] }>(layout, att.digest);
    expect(manifest.layers.map((l) => [l.mediaType, l.annotations])).toEqual([['application/vnd.in-toto+json', { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' }]]);
    const statement = (await layoutBlob(layout, (manifest.layers[0] as Descriptor).digest)).toString();
    expect(statement).toBe(
      `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"name":"pkg:docker/app@${t}?platform=${platformQ}","digest":{"sha256":"${image.digest.slice(7)}"}}],"predicate":${expectedPredicate()}}`,
    );
    // The file the Dockerfile's RUN made is in the result the scanner saw.
    expect((JSON.parse(statement) as { predicate: { files: { fileName: string }[] } }).predicate.files).toContainEqual({ fileName: '/created-by-run.txt' });

    // Without --sbom: no attestation, and the very image manifest the attested index points at.
    const plain = join(sb.dir, `plain-${t}.tar`);
    await build([ctx, '-t', `app:${t}`, '--output', `type=oci,dest=${plain}`]);
    const plainIndex = JSON.parse(await readFile(join(await unpackLayout(plain), 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(plainIndex.manifests).toHaveLength(1);
    expect(plainIndex.manifests[0]?.digest).toBe(image.digest);
    expect(plainIndex.manifests[0]?.annotations?.['vnd.docker.reference.type']).toBeUndefined();
  });

  test('with --provenance: one attestation manifest, the SBOM statement first, then provenance, both over the image', async () => {
    const t = token();
    const ctx = await context(t);
    const out = join(sb.dir, `both-${t}.tar`);
    await build([ctx, '-t', `app:${t}`, `--sbom=generator=${SCANNER}`, '--provenance=mode=min', '--output', `type=oci,dest=${out}`]);
    const index = indexOf(out);
    expect(index.manifests).toHaveLength(2);
    const [image, att] = index.manifests as [Descriptor, Descriptor];
    const layout = await unpackLayout(out);
    const manifest = await layoutJson<{ config: Descriptor; layers: Descriptor[] }>(layout, att.digest);
    expect(manifest.layers.map((l) => l.annotations?.['in-toto.io/predicate-type'])).toEqual(['https://spdx.dev/Document', 'https://slsa.dev/provenance/v0.2']);
    const config = await layoutJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
    expect(config.rootfs.diff_ids).toEqual(manifest.layers.map((l) => l.digest));
    for (const l of manifest.layers) {
      const s = await layoutJson<{ subject: { name: string; digest: { sha256: string } }[] }>(layout, l.digest);
      expect(s.subject).toEqual([{ name: `pkg:docker/app@${t}?platform=${platformQ}`, digest: { sha256: image.digest.slice(7) } }]);
    }
    const sbom = (await layoutBlob(layout, (manifest.layers[0] as Descriptor).digest)).toString();
    expect(sbom.endsWith(`"predicate":${expectedPredicate()}}`)).toBe(true);
  });

  test('type=local: sbom.spdx.json next to the files, indented, subjects the output files', async () => {
    const t = token();
    const ctx = await context(t);
    const dest = join(sb.dir, `local-${t}`);
    await build([ctx, `--sbom=generator=${SCANNER}`, '--output', `type=local,dest=${dest}`]);
    const text = await readFile(join(dest, 'sbom.spdx.json'), 'utf8');
    expect(text.startsWith('{\n  "_type": "https://in-toto.io/Statement/v0.1",\n  "predicateType": "https://spdx.dev/Document",\n')).toBe(true);
    const s = JSON.parse(text) as { subject: { name: string }[]; predicate: { files: { fileName: string }[] } };
    expect(s.subject.map((x) => x.name)).toContain('created-by-run.txt');
    expect(s.predicate.files).toContainEqual({ fileName: '/created-by-run.txt' });
    expect(await readFile(join(dest, 'created-by-run.txt'), 'utf8')).toBe(`${t}\n`);
  });
});

describe('what the scan covers', () => {
  test('BUILDKIT_SBOM_SCAN_STAGE / _CONTEXT: one statement per scanned filesystem, the core one first, then by file name', async () => {
    const t = token();
    const dir = join(sb.dir, `extras-${t}`);
    await writeTree(dir, {
      Dockerfile: [
        'FROM busybox AS build',
        'ARG BUILDKIT_SBOM_SCAN_STAGE=true',
        `RUN echo ${t} > /built.txt`,
        'FROM busybox',
        'ARG BUILDKIT_SBOM_SCAN_CONTEXT=true',
        'COPY --from=build /built.txt /built.txt',
        'COPY ctx-file.txt /',
        '',
      ].join('\n'),
      'ctx-file.txt': 'x\n',
    });
    const out = join(sb.dir, `extras-${t}.tar`);
    await build([dir, '-t', `app:${t}`, `--sbom=generator=${SCANNER}`, '--output', `type=oci,dest=${out}`]);
    const index = indexOf(out);
    const [, att] = index.manifests as [Descriptor, Descriptor];
    const layout = await unpackLayout(out);
    const manifest = await layoutJson<{ layers: Descriptor[] }>(layout, att.digest);
    type Pred = { predicate: { name: string; source: string; extras: string; readonly: boolean; files: { fileName: string }[] } };
    const stmts = await Promise.all(manifest.layers.map((l) => layoutJson<Pred>(layout, l.digest)));
    // sbom.spdx.json (core) first, then sbom-build, sbom-context: the directory in name order.
    expect(stmts.map((s) => [s.predicate.name, s.predicate.source, s.predicate.extras, s.predicate.readonly])).toEqual([
      ['sbom', '/run/src/core/sbom', '/run/src/extras', true],
      ['sbom-build', '/run/src/extras/sbom-build', '/run/src/extras', true],
      ['sbom-context', '/run/src/extras/sbom-context', '/run/src/extras', true],
    ]);
    expect(stmts[0]?.predicate.files.map((f) => f.fileName)).toEqual(['/bin/busybox', '/built.txt', '/ctx-file.txt', '/etc/group', '/etc/passwd']);
    expect(stmts[1]?.predicate.files.map((f) => f.fileName)).toContain('/built.txt');
    // The context as the build loads it: only the paths the Dockerfile uses (its follow paths,
    // as dockerfile2llb's buildContext after dispatch), not the Dockerfile itself.
    expect(stmts[2]?.predicate.files.map((f) => f.fileName)).toEqual(['/ctx-file.txt']);
  });

  test('a frontend that makes no SBOM (kiln/ts): the result is scanned after it, as BuildKit SBOMProcessor does', async () => {
    const t = token();
    const dir = join(sb.dir, `ts-${t}`);
    await writeTree(dir, { 'kiln.build.ts': `import { image, sh } from "kiln";\nexport default () => image("busybox").run(sh\`echo ${t} >/from-ts.txt\`);\n` });
    const out = join(sb.dir, `ts-${t}.tar`);
    const r = await build([dir, '-t', `app:${t}`, `--sbom=generator=${SCANNER}`, '--output', `type=oci,dest=${out}`]);
    expect(r.stderr).toContain(`[${hostPlatform}] generating sbom using ${SCANNER}`);
    const index = indexOf(out);
    expect(index.manifests).toHaveLength(2);
    const [image, att] = index.manifests as [Descriptor, Descriptor];
    const layout = await unpackLayout(out);
    const manifest = await layoutJson<{ layers: Descriptor[] }>(layout, att.digest);
    expect(manifest.layers).toHaveLength(1);
    const s = await layoutJson<{ subject: { digest: { sha256: string } }[]; predicate: { files: { fileName: string }[] } }>(layout, (manifest.layers[0] as Descriptor).digest);
    expect(s.subject[0]?.digest.sha256).toBe(image.digest.slice(7));
    expect(s.predicate.files).toContainEqual({ fileName: '/from-ts.txt' });
  });
});

describe('a frontend image (kiln frontend.cjs in a runc container, gateway.v0) makes the SBOM', () => {
  let registry: TestRegistry | undefined;
  afterAll(async () => {
    await registry?.stop();
  });

  test('its attestations arrive over LLBBridge and are exported once: the core scan with its extras, then sbom-context; no fallback scan', async () => {
    registry = await startRegistry();
    const work = join(sb.dir, 'images');
    await mkdir(work, { recursive: true });
    const frontend = `${registry.host}/kiln-frontend:sbom`;
    await pushNodeFrontend(work, frontend, frontendBundle(repo), '', 'moby.buildkit.frontend.inputs,moby.buildkit.frontend.contexts');
    const t = token();
    const dir = join(sb.dir, `fe-${t}`);
    await writeTree(dir, {
      Dockerfile: ['FROM busybox', 'ARG BUILDKIT_SBOM_SCAN_CONTEXT=true', `RUN echo ${t} > /created-by-run.txt`, 'COPY ctx-file.txt /', ''].join('\n'),
      'ctx-file.txt': 'x\n',
    });
    const out = join(sb.dir, `fe-${t}.tar`);
    const r = await build([dir, '-t', `app:${t}`, '--frontend', frontend, `--sbom=generator=${SCANNER}`, '--output', `type=oci,dest=${out}`]);
    expect(r.stderr).toContain(`docker-image://${frontend}@sha256:`);
    const index = indexOf(out);
    expect(index.manifests).toHaveLength(2);
    const [image, att] = index.manifests as [Descriptor, Descriptor];
    const layout = await unpackLayout(out);
    const manifest = await layoutJson<{ layers: Descriptor[] }>(layout, att.digest);
    type Pred = { subject: { digest: { sha256: string } }[]; predicate: { name: string; extras: string; files: { fileName: string }[] } };
    const stmts = await Promise.all(manifest.layers.map((l) => layoutJson<Pred>(layout, l.digest)));
    // The frontend's scan (with the context as an extra): a scan by the CLI would have no extras.
    expect(stmts.map((s) => [s.predicate.name, s.predicate.extras])).toEqual([
      ['sbom', '/run/src/extras'],
      ['sbom-context', '/run/src/extras'],
    ]);
    expect(stmts[0]?.predicate.files.map((f) => f.fileName)).toEqual(['/bin/busybox', '/created-by-run.txt', '/ctx-file.txt', '/etc/group', '/etc/passwd']);
    for (const s of stmts) expect(s.subject[0]?.digest.sha256).toBe(image.digest.slice(7));
  }, 300_000);
});

describe('a hostile generator image', () => {
  // The scanner's /run/out is not trusted: per the result's /mode it leaves a named pipe (whose
  // read would block forever) or a symlink to a host file where its statement should be. The
  // build fails with KLN0704 naming the entry, writes no output, and ends (the kill timer only
  // stops a hung kiln, which then fails the test).
  test.for(['fifo', 'link'] as const)('a %s in /run/out fails the build (KLN0704), no output, no hang', { timeout: 180_000 }, async (mode) => {
    const t = token();
    const gen = `kiln.local/test/hostile-scanner-${mode}:1`;
    const sdir = join(sb.dir, `hostile-${t}`);
    const script = 'if [ "$(cat $BUILDKIT_SCAN_SOURCE/mode)" = fifo ]; then mkfifo $BUILDKIT_SCAN_DESTINATION/sbom.spdx.json; else ln -s /etc/passwd $BUILDKIT_SCAN_DESTINATION/sbom.spdx.json; fi';
    await writeTree(sdir, { Dockerfile: ['FROM busybox', `ENTRYPOINT ["/bin/sh", "-c", ${JSON.stringify(script)}]`, ''].join('\n') });
    const img = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', sdir, '-t', gen]);
    expect(img.code, img.stderr.slice(-2000)).toBe(0);
    const ctx = join(sb.dir, `hostile-ctx-${t}`);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo ${mode} > /mode`, ''].join('\n') });
    const out = join(sb.dir, `hostile-${t}.tar`);
    let timer: NodeJS.Timeout | undefined;
    const r = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', ctx, `--sbom=generator=${gen}`, '--output', `type=oci,dest=${out}`], {
      onStderr: (_chunk, child) => {
        timer ??= setTimeout(() => child.kill('SIGKILL'), 90_000);
      },
    }).finally(() => clearTimeout(timer));
    expect(r.code, r.stderr.slice(-2000)).toBe(1);
    expect(r.stderr).toContain('KLN0704');
    expect(r.stderr).toContain(mode === 'fifo' ? 'sbom.spdx.json is not a regular file' : 'sbom.spdx.json leaves its result');
    expect(r.stderr).not.toContain('root:x:0:0'); // the host file is never read into the output or message
    expect(existsSync(out)).toBe(false);
  });
});

describe('the default generator offline', () => {
  test('--sbom fails before any output, naming docker/buildkit-syft-scanner:stable-1 and generator=', async () => {
    const t = token();
    const ctx = await context(t);
    const out = join(sb.dir, `default-${t}.tar`);
    const r = await runKiln(sb, ['build', '--root', sb.root, '--progress', 'plain', ctx, '--sbom', '--output', `type=oci,dest=${out}`]);
    expect(r.code, r.stderr.slice(-2000)).toBe(1);
    expect(r.stderr).toContain('docker.io/docker/buildkit-syft-scanner:stable-1');
    expect(r.stderr).toContain('KLN0511');
    expect(r.stderr).toContain('generator=<image>');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(out)).toBe(false);
  });
});
