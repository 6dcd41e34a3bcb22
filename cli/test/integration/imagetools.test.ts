import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { repo, runKiln, runKilnInProcess, startDaemon, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// `kiln imagetools inspect|create` against real docker-registry instances, on images kiln built
// and pushed (FROM scratch, so no emulation is needed for arm64), checked with skopeo.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}
interface Index {
  mediaType: string;
  manifests: Desc[];
  annotations?: Record<string, string>;
}

const skopeoRaw = (ref: string): Buffer => execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
const skopeoDigest = (ref: string): string => (JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { Digest: string }).Digest;
/** A `kiln` process: the real CLI path, run at least once per command path below. */
const kiln = (args: string[], opts: { stdin?: string } = {}) => runKiln(sb, args, { env: { KILN_DAEMON: '0' }, ...opts });
/** The same command through the CLI's main in this process (output and error checks; no Node start-up each). */
const kilnIn = (args: string[], env: Record<string, string> = {}) => runKilnInProcess(sb, args, { env: { KILN_DAEMON: '0', ...env } });

function noStack(stderr: string): void {
  expect(stderr).not.toMatch(/^\s+at /m);
}

describe('kiln imagetools', () => {
  let reg: TestRegistry;
  let reg2: TestRegistry;
  const t = token();
  let amd: string; // REG/team/amd:T, linux/amd64 only
  let arm: string; // REG/other/arm:T, linux/arm64 only
  let multi: string; // REG/team/multi:T, both platforms + provenance attestation manifests

  beforeAll(async () => {
    reg = await startRegistry();
    reg2 = await startRegistry();
    amd = `${reg.host}/team/amd:${t}`;
    arm = `${reg.host}/other/arm:${t}`;
    multi = `${reg.host}/team/multi:${t}`;
    const ctx = join(sb.dir, `it-${t}`);
    await writeTree(ctx, { 'a.txt': `${t}\n`, Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY a.txt /a-$TARGETARCH.txt\n' });
    // Three builds at once into the one root (no RUN: they wait on the registry more than on the CPU).
    const builds = await Promise.all(
      ([
        ['linux/amd64', amd, []],
        ['linux/arm64', arm, []],
        ['linux/amd64,linux/arm64', multi, ['--provenance=mode=min']],
      ] as const).map(([plat, ref, extra]) => kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', plat, '-t', ref, '--push', ...extra])),
    );
    for (const r of builds) expect(r.code, r.stderr.slice(-1500)).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await reg?.stop();
    await reg2?.stop();
  });

  test('inspect of a single manifest prints Name, MediaType and Digest aligned as buildx; --raw is the registry bytes', async () => {
    const raw = skopeoRaw(amd);
    const mt = (JSON.parse(raw.toString()) as { mediaType: string }).mediaType;
    const r = await kiln(['imagetools', 'inspect', amd]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Name:      ${amd}\nMediaType: ${mt}\nDigest:    ${skopeoDigest(amd)}\n`);
    const rawOut = await runKilnBytes(['imagetools', 'inspect', '--raw', amd]);
    expect(rawOut.equals(raw)).toBe(true);
  });

  test('inspect of a multi-platform index lists each manifest with its platform, and attestation manifests with their annotations', async () => {
    const raw = skopeoRaw(multi);
    const index = JSON.parse(raw.toString()) as Index;
    expect(index.manifests.length).toBe(4);
    const r = await kilnIn(['imagetools', 'inspect', multi]);
    expect(r.code, r.stderr).toBe(0);
    const head = `Name:      ${multi}\nMediaType: ${index.mediaType}\nDigest:    ${skopeoDigest(multi)}\n${' '.repeat(11)}\nManifests: \n`;
    expect(r.stdout.startsWith(head)).toBe(true);
    const body = r.stdout.slice(head.length);
    // One block per manifest, separated by a padded blank line, in index order.
    const names = [...body.matchAll(/^ {2}Name: +(\S+)$/gm)].map((m) => m[1]);
    expect(names).toEqual(index.manifests.map((m) => `${multi}@${m.digest}`));
    const plats = [...body.matchAll(/^ {2}Platform: +(\S+)$/gm)].map((m) => m[1]);
    expect(plats).toEqual(index.manifests.map((m) => (m.platform === undefined ? '' : `${m.platform.os}/${m.platform.architecture}`)));
    expect(plats).toEqual(['linux/amd64', 'linux/arm64', 'unknown/unknown', 'unknown/unknown']);
    const att = index.manifests[2] as Desc;
    // The attestation block: annotations sorted, keys aligned among themselves (Go tabwriter).
    expect(body).toContain(
      `  Annotations: \n    vnd.docker.reference.digest: ${att.annotations?.['vnd.docker.reference.digest'] ?? '?'}\n    vnd.docker.reference.type:   attestation-manifest\n`,
    );
    // Rows before a flushed "Annotations:" pad to its width (13 + 1 + 1), as buildx's do.
    expect(body).toMatch(/^ {2}MediaType: {3}application/m);
  });

  test('--format {{json .Manifest}}, {{json .Image}} (per platform), {{json .Provenance}} and {{.Manifest.Digest}}', async () => {
    const index = JSON.parse(skopeoRaw(multi).toString()) as Index;
    const m = await kilnIn(['imagetools', 'inspect', multi, '--format', '{{json .Manifest}}']);
    expect(m.code, m.stderr).toBe(0);
    const mj = JSON.parse(m.stdout) as { digest: string; size: number; manifests: Desc[]; schemaVersion: number };
    expect(mj.digest).toBe(skopeoDigest(multi));
    expect(mj.schemaVersion).toBe(2);
    expect(mj.manifests.map((x) => x.digest)).toEqual(index.manifests.map((x) => x.digest));
    expect(m.stdout).toMatch(/^{\n {2}"schemaVersion": 2,\n {2}"mediaType": /);

    const img = await kilnIn(['imagetools', 'inspect', multi, '--format', '{{json .Image}}']);
    expect(img.code, img.stderr).toBe(0);
    const ij = JSON.parse(img.stdout) as Record<string, { architecture: string; os: string; rootfs: { diff_ids: string[] } }>;
    expect(Object.keys(ij)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(ij['linux/arm64']?.architecture).toBe('arm64');
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', '--override-arch', 'amd64', `docker://${multi}`], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] } };
    expect(ij['linux/amd64']?.rootfs.diff_ids).toEqual(cfg.rootfs.diff_ids);

    const one = await kilnIn(['imagetools', 'inspect', amd, '--format', '{{json .Image}}']);
    expect((JSON.parse(one.stdout) as { architecture: string }).architecture).toBe('amd64');
    const idx = await kilnIn(['imagetools', 'inspect', multi, '--format', '{{json (index .Image "linux/arm64").RootFS.DiffIDs}}']);
    expect(idx.code, idx.stderr).toBe(0);
    const armCfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', '--override-arch', 'arm64', `docker://${multi}`], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] } };
    expect(JSON.parse(idx.stdout)).toEqual(armCfg.rootfs.diff_ids);

    const prov = await kilnIn(['imagetools', 'inspect', multi, '--format', '{{json .Provenance}}']);
    expect(prov.code, prov.stderr).toBe(0);
    const pj = JSON.parse(prov.stdout) as Record<string, { SLSA?: { buildType?: string } }>;
    expect(Object.keys(pj)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(pj['linux/amd64']?.SLSA?.buildType).toBe('https://mobyproject.org/buildkit@v1');

    const dg = await kilnIn(['imagetools', 'inspect', amd, '--format', '{{println .Manifest.Digest}}']);
    expect(dg.stdout).toBe(`${skopeoDigest(amd)}\n`);
  });

  test('create merges two single-platform images of two repositories into one index, mounting their blobs', async () => {
    const target = `${reg.host}/team/merged:${t}`;
    const r = await kiln(['imagetools', 'create', '-t', target, amd, arm]);
    expect(r.code, r.stderr).toBe(0);
    const digest = skopeoDigest(target);
    expect(r.stdout).toBe(`${target}@${digest}\n`);
    expect(r.stderr).toMatch(/blob\(s\) mounted/);
    const index = JSON.parse(skopeoRaw(target).toString()) as Index;
    expect(index.manifests.map((m) => m.digest)).toEqual([skopeoDigest(amd), skopeoDigest(arm)]);
    expect(index.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);
    // Docker media types in, a Docker manifest list out (buildx's rule); OCI sources give an OCI index.
    const allDocker = index.manifests.every((m) => m.mediaType.startsWith('application/vnd.docker.'));
    expect(index.mediaType).toBe(allDocker ? 'application/vnd.docker.distribution.manifest.list.v2+json' : 'application/vnd.oci.image.index.v1+json');
    // Every blob is in the target repository: skopeo copies the arm64 image out of it.
    const out = join(sb.dir, `merged-${t}`);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${target}`, `oci:${out}:x`], { stdio: 'pipe' });
    const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${out}:x`], { encoding: 'utf8' })) as { Architecture: string };
    expect(inspected.Architecture).toBe('arm64');
  });

  test('create to another registry streams the blobs; the index bytes are the dry run bytes', async () => {
    const target = `${reg2.host}/copy/merged:${t}`;
    const dryRun = await kilnIn(['imagetools', 'create', '--dry-run', '-t', target, amd, arm]);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    const dry = dryRun.stdoutBytes;
    const r = await kilnIn(['imagetools', 'create', '-t', target, amd, arm]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/[1-9]\d* uploaded/);
    expect(skopeoRaw(target).equals(dry.subarray(0, dry.length - 1))).toBe(true);
    expect(dry.subarray(dry.length - 1).toString()).toBe('\n');
    const out = join(sb.dir, `copied-${t}`);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${target}`, `oci:${out}:x`], { stdio: 'pipe' });
  });

  test('create reads manifests and blobs through the source host\'s mirrors (config file); a push never goes to a mirror', async () => {
    // upstream.invalid does not resolve: everything must come from the mirror, the first registry.
    const cfg = join(sb.dir, `mirror-${t}.toml`);
    await writeFile(cfg, `[registry."upstream.invalid:5000"]\nmirrors = ["${reg.host}"]\n`);
    const target = `${reg2.host}/mirrored/merged:${t}`;
    const r = await kilnIn(['--config', cfg, 'imagetools', 'create', '-t', target, `upstream.invalid:5000/team/amd:${t}`, `upstream.invalid:5000/other/arm:${t}`]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(skopeoRaw(target).toString()) as Index).manifests.map((m) => m.digest).sort()).toEqual([skopeoDigest(amd), skopeoDigest(arm)].sort());
  });

  test('a 96 MB layer is copied between registries as a stream, not held in memory', async () => {
    const TIME = '/usr/bin/time';
    if (spawnSync(TIME, ['-f', '%M', 'true']).status !== 0) throw new Error(`${TIME} not found: install it with \`apt-get install -y time\``);
    const ctx = join(sb.dir, `big-${t}`);
    await writeTree(ctx, { Dockerfile: 'FROM scratch\nCOPY big.bin /big.bin\n' });
    execFileSync('sh', ['-c', `head -c ${96 << 20} /dev/urandom > "${join(ctx, 'big.bin')}"`]);
    const big = `${reg.host}/team/big:${t}`;
    const b = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/amd64', '-t', big, '--push']);
    expect(b.code, b.stderr).toBe(0);
    // Peak RSS (KiB) of a dry run (the same process minus the copy) and of the copy.
    const peak = (args: string[]): number => {
      const r = spawnSync(TIME, ['-f', 'PEAK %M', process.execPath, join(repo, 'cli/bin/kiln.js'), ...args], { env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return Number(/PEAK (\d+)/.exec(r.stderr)?.[1]);
    };
    const target = `${reg2.host}/copy/big:${t}`;
    const base = peak(['imagetools', 'create', '--prefer-index=false', '--dry-run', '-t', target, big]);
    const copying = peak(['imagetools', 'create', '--prefer-index=false', '-t', target, big]);
    expect(skopeoDigest(target)).toBe(skopeoDigest(big));
    // Holding the layer would add ~96 MiB; streaming adds the fetch buffers (~30 MiB measured).
    expect(copying - base).toBeLessThan(64 * 1024);
  });

  test('--dry-run prints the index and pushes nothing; an index source is flattened, its attestations kept, index annotations added', async () => {
    const target = `${reg.host}/team/dry:${t}`;
    const r = await kilnIn(['imagetools', 'create', '--dry-run', '-t', target, multi, '--annotation', 'index:org.opencontainers.image.description=two']);
    expect(r.code, r.stderr).toBe(0);
    const index = JSON.parse(r.stdout) as Index;
    const src = JSON.parse(skopeoRaw(multi).toString()) as Index;
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.annotations).toEqual({ 'org.opencontainers.image.description': 'two' });
    expect(index.manifests).toEqual(src.manifests);
    expect(r.stdout.startsWith('{\n  "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.index.v1+json",\n  "manifests": [\n')).toBe(true);
    expect(spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${target}`]).status).not.toBe(0);
    // One index source, no annotation: copied as is (buildx's carbon copy), the same digest.
    const same = await kilnIn(['imagetools', 'create', '-t', target, multi, '--progress', 'quiet']);
    expect(same.code, same.stderr).toBe(0);
    expect(same.stderr).toBe('');
    expect(skopeoDigest(target)).toBe(skopeoDigest(multi));
  });

  test('--append adds sources to the index at the target; digests and descriptors (-f) name manifests of the target repository', async () => {
    const target = `${reg.host}/other/app:${t}`;
    const one = await kilnIn(['imagetools', 'create', '-t', target, arm]);
    expect(one.code, one.stderr).toBe(0);
    // --prefer-index (the default): one manifest still becomes an index.
    expect((JSON.parse(skopeoRaw(target).toString()) as Index).manifests.map((m) => m.digest)).toEqual([skopeoDigest(arm)]);
    const two = await kilnIn(['imagetools', 'create', '--append', '-t', target, amd, '--annotation', 'manifest-descriptor[linux/amd64]:org.example.note=x']);
    expect(two.code, two.stderr).toBe(0);
    const index = JSON.parse(skopeoRaw(target).toString()) as Index;
    expect(index.manifests.map((m) => m.digest)).toEqual([skopeoDigest(arm), skopeoDigest(amd)]);
    // Docker manifests only: a Docker manifest list, which has no annotations (buildx drops them silently; kiln warns).
    expect(index.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(two.stderr).toContain('kiln: warning: annotation org.example.note dropped');
    expect(index.manifests.every((m) => m.annotations === undefined)).toBe(true);
    // With an OCI source (the attested index) the annotation lands on the amd64 descriptors only.
    const oci = await kilnIn(['imagetools', 'create', '--dry-run', multi, '--annotation', 'manifest-descriptor[linux/amd64]:org.example.note=x']);
    expect(oci.code, oci.stderr).toBe(0);
    const ociIndex = JSON.parse(oci.stdout) as Index;
    expect(ociIndex.manifests.map((m) => m.annotations?.['org.example.note'])).toEqual(['x', undefined, undefined, undefined]);
    // The same, from a bare digest and a descriptor file (both resolved in the one repository given).
    const desc = join(sb.dir, `desc-${t}.json`);
    await writeTree(sb.dir, { [`desc-${t}.json`]: JSON.stringify({ digest: skopeoDigest(amd), platform: { os: 'linux', architecture: 'amd64' } }) });
    const fromDigests = await kilnIn(['imagetools', 'create', '--dry-run', '-t', target, skopeoDigest(arm), '-f', desc]);
    expect(fromDigests.code, fromDigests.stderr).toBe(0);
    expect((JSON.parse(fromDigests.stdout) as Index).manifests.map((m) => m.digest)).toEqual([skopeoDigest(amd), skopeoDigest(arm)]);
    // --prefer-index=false with one manifest: a plain re-tag, the manifest's own digest.
    const copy = `${reg.host}/other/retag:${t}`;
    expect((await kilnIn(['imagetools', 'create', '--prefer-index=false', '-t', copy, arm])).code).toBe(0);
    expect(skopeoDigest(copy)).toBe(skopeoDigest(arm));
  });

  test('errors have KLN086x codes and no stack trace', async () => {
    const unknown = await kiln(['imagetools', 'inspect', `${reg.host}/team/nope:${t}`]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^kiln: error KLN0861: .*team\/nope/m);
    noStack(unknown.stderr);
    const unknownSrc = await kilnIn(['imagetools', 'create', '-t', `${reg.host}/team/x:${t}`, amd, `${reg.host}/team/nope:${t}`]);
    expect(unknownSrc.stderr).toContain('KLN0861');
    const dup = await kilnIn(['imagetools', 'create', '-t', `${reg.host}/team/dup:${t}`, multi, arm]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/KLN0863: two different manifests for platform linux\/arm64/);
    noStack(dup.stderr);
    expect(spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/team/dup:${t}`]).status).not.toBe(0);
    const daemonTarget = await kilnIn(['imagetools', 'create', '-t', 'docker-daemon:app:1', amd]);
    expect(daemonTarget.code).toBe(1);
    expect(daemonTarget.stderr).toContain('KLN0864');
    noStack(daemonTarget.stderr);
    const noTag = await kilnIn(['imagetools', 'create', amd]);
    expect(noTag.stderr).toContain('KLN0860');
    // a registry target named by a digest the result does not have (buildx ValidateTargetDigest): refused, nothing pushed
    const wrongDigest = await kilnIn(['imagetools', 'create', '-t', `${reg.host}/team/pinned@sha256:${'0'.repeat(64)}`, amd, arm]);
    expect(wrongDigest.stderr).toMatch(/KLN0860: target .*team\/pinned@sha256:0{64} requested digest sha256:0{64} but produced sha256:[0-9a-f]{64}/);
    expect(wrongDigest.code).toBe(1);
    const produced = /produced (sha256:[0-9a-f]{64})/.exec(wrongDigest.stderr)?.[1] ?? '';
    expect(spawnSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/team/pinned@${produced}`]).status).not.toBe(0);
    const appendMissing = await kilnIn(['imagetools', 'create', '--append', '-t', `${reg.host}/team/absent:${t}`, amd]);
    expect(appendMissing.stderr).toMatch(/KLN0861: --append/);
    const badTpl = await kilnIn(['imagetools', 'inspect', amd, '--format', '{{json .Manifest']);
    expect(badTpl.stderr).toContain('KLN0860');
    // a descriptor file that is not one: the error names the file (it said only "invalid source descriptor")
    const descFile = join(sb.dir, `desc-${t}.json`);
    await writeFile(descFile, '{bad');
    const badDesc = await kilnIn(['imagetools', 'create', '--dry-run', '-f', descFile]);
    expect(badDesc.stderr).toMatch(new RegExp(`KLN0860: -f ${descFile.replace(/[.]/g, '\\.')}: invalid source descriptor: not JSON`));
    expect(badDesc.code).toBe(1);
    const badAnn = await kilnIn(['imagetools', 'create', '--dry-run', amd, '--annotation', 'manifest:a=b']);
    expect(badAnn.stderr).toContain('KLN0860');
    const down = await kilnIn(['imagetools', 'inspect', '127.0.0.1:1/team/amd:1']);
    expect(down.stderr).toContain('KLN0862');
    noStack(down.stderr);
  });

  test('oci-layout:// sources and targets: layouts by skopeo and by kiln\'s oci exporter inspected (summary, --raw, --format with range) and combined into a registry index; a registry index written into a layout that skopeo and umoci read', async () => {
    // a layout by skopeo (Docker manifests converted to OCI), one by kiln's exporter (name x:1 → tag 1)
    const bySkopeo = join(sb.dir, `skopeo-${t}`);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${arm}`, `oci:${bySkopeo}:arm`], { stdio: 'pipe' });
    const byKiln = join(sb.dir, `kiln-${t}`);
    const b = await kiln(['build', join(sb.dir, `it-${t}`), '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/amd64', '--output', `type=oci,dest=${byKiln},tar=false,name=x:1`]);
    expect(b.code, b.stderr).toBe(0);
    const entry = (dir: string, tag: string): Desc => {
      const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Index;
      const e = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
      if (e === undefined) throw new Error(`no ${tag} in ${dir}`);
      return e;
    };
    const blob = (dir: string, digest: string): Buffer => readFileSync(join(dir, 'blobs/sha256', digest.slice('sha256:'.length)));
    const armDesc = entry(bySkopeo, 'arm');
    const amdDesc = entry(byKiln, '1');

    const summary = await kiln(['imagetools', 'inspect', `oci-layout://${bySkopeo}:arm`]);
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toBe(`Name:      oci-layout://${bySkopeo}:arm\nMediaType: ${armDesc.mediaType}\nDigest:    ${armDesc.digest}\n`);
    // a relative path (the caller cwd), --raw: the blob's bytes; by digest too
    const raw = await runKilnBytes(['imagetools', 'inspect', '--raw', `oci-layout://skopeo-${t}:arm`], sb.dir);
    expect(raw.equals(blob(bySkopeo, armDesc.digest))).toBe(true);
    const byDigest = await kilnIn(['imagetools', 'inspect', `oci-layout://${bySkopeo}@${armDesc.digest}`, '--format', '{{json .Image}}']);
    expect((JSON.parse(byDigest.stdout) as { architecture: string }).architecture).toBe('arm64');
    // kiln's exporter wrote an index (a single platform and no attestations: BuildKit's oci exporter writes the manifest…)
    const fromKiln = await kilnIn(['imagetools', 'inspect', `oci-layout://${byKiln}:1`, '--format', '{{range .Manifest.Manifests}}{{.Platform.Architecture}} {{.Digest}}{{println}}{{else}}{{.Manifest.Digest}}{{end}}']);
    expect(fromKiln.code, fromKiln.stderr).toBe(0);
    const kilnRoot = JSON.parse(blob(byKiln, amdDesc.digest).toString()) as { manifests?: Desc[] };
    expect(fromKiln.stdout).toBe(kilnRoot.manifests === undefined ? amdDesc.digest : kilnRoot.manifests.map((m) => `${m.platform?.architecture ?? ''} ${m.digest}\n`).join(''));

    // both layouts into one registry index: every blob uploaded from the layout files
    const target = `${reg.host}/team/fromlayouts:${t}`;
    const created = await kiln(['imagetools', 'create', '-t', target, `oci-layout://${byKiln}:1`, `oci-layout://${bySkopeo}:arm`]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toMatch(new RegExp(`copying sha256:[0-9a-f]{64} from oci-layout://${bySkopeo} to ${target.replaceAll('.', '\\.')}`));
    expect(created.stderr).toMatch(/[1-9]\d* uploaded/);
    const index = JSON.parse(skopeoRaw(target).toString()) as Index;
    expect(index.manifests.map((m) => m.platform?.architecture).sort()).toEqual(['amd64', 'arm64']);
    expect(index.manifests.find((m) => m.platform?.architecture === 'arm64')?.digest).toBe(armDesc.digest);
    const pulled = join(sb.dir, `fromlayouts-${t}`);
    execFileSync('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${target}`, `oci:${pulled}:x`], { stdio: 'pipe' });
    execFileSync('umoci', ['unpack', '--image', `${pulled}:x`, `${pulled}.bundle`], { stdio: 'pipe' });
    expect(readFileSync(join(`${pulled}.bundle`, 'rootfs/a-arm64.txt'), 'utf8')).toBe(`${t}\n`);

    // that registry index into a layout (created when missing): the same bytes, tagged, every blob there
    // (an OCI index: skopeo finds only OCI media types in a layout's index.json)
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    const out = join(sb.dir, `out-${t}`);
    const dryRun = await kilnIn(['imagetools', 'create', '--dry-run', target]);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    const dry = dryRun.stdoutBytes;
    const toLayout = await kilnIn(['imagetools', 'create', '-t', `oci-layout://${out}:merged`, target]);
    expect(toLayout.code, toLayout.stderr).toBe(0);
    const merged = entry(out, 'merged');
    expect(toLayout.stdout).toBe(`oci-layout://${out}:merged@${merged.digest}\n`);
    expect(toLayout.stderr).toMatch(/blob\(s\) written/);
    expect(blob(out, merged.digest).equals(dry.subarray(0, dry.length - 1))).toBe(true);
    expect(merged.digest).toBe(skopeoDigest(target));
    expect(execFileSync('skopeo', ['inspect', '--raw', `oci:${out}:merged`]).equals(blob(out, merged.digest))).toBe(true);
    const amdOut = join(sb.dir, `out-amd-${t}`);
    execFileSync('skopeo', ['copy', '--override-arch', 'amd64', `oci:${out}:merged`, `oci:${amdOut}:x`], { stdio: 'pipe' });
    execFileSync('umoci', ['unpack', '--image', `${amdOut}:x`, `${amdOut}.bundle`], { stdio: 'pipe' });
    expect(readFileSync(join(`${amdOut}.bundle`, 'rootfs/a-amd64.txt'), 'utf8')).toBe(`${t}\n`);
    // layout to layout, a plain copy of one manifest under another tag: the source's digest, its tag moved on a second run
    const copy = await kilnIn(['imagetools', 'create', '--prefer-index=false', '-t', `oci-layout://${out}:merged`, `oci-layout://${bySkopeo}:arm`]);
    expect(copy.code, copy.stderr).toBe(0);
    expect(entry(out, 'merged').digest).toBe(armDesc.digest);
    expect((JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as Index).manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'merged')).toHaveLength(1);

    // kiln processes writing one layout at once each keep the others' tags (index.json is updated under the layout's lock)
    const shared = join(sb.dir, `shared-${t}`);
    const writers = await Promise.all(['a', 'b', 'c'].map((tag) => kiln(['imagetools', 'create', '--prefer-index=false', '-t', `oci-layout://${shared}:${tag}`, `oci-layout://${bySkopeo}:arm`])));
    for (const w of writers) expect(w.code, w.stderr).toBe(0);
    expect(['a', 'b', 'c'].map((tag) => entry(shared, tag).digest)).toEqual([armDesc.digest, armDesc.digest, armDesc.digest]);

    // refusals: no layout, no such tag, a digest target the result does not have (nothing written), --local
    const none = await kilnIn(['imagetools', 'inspect', `oci-layout://${sb.dir}/nope-${t}`]);
    expect(none.stderr).toMatch(/kiln: error KLN0866: .*is not an OCI layout/);
    noStack(none.stderr);
    const noTag = await kilnIn(['imagetools', 'inspect', `oci-layout://${bySkopeo}:v9`]);
    expect(noTag.stderr).toContain('KLN0861');
    expect(noTag.stderr).toContain('tags: arm');
    const wrongDigest = await kilnIn(['imagetools', 'create', '-t', `oci-layout://${sb.dir}/never-${t}@sha256:${'0'.repeat(64)}`, amd, arm]);
    expect(wrongDigest.stderr).toContain('KLN0860');
    expect(existsSync(join(sb.dir, `never-${t}`))).toBe(false);
    const local = await kilnIn(['imagetools', 'inspect', '--local', `oci-layout://${bySkopeo}:arm`]);
    expect(local.stderr).toContain('KLN0860');
  });

  test('served by kiln daemon (Node and Perl clients): the client cwd resolves -f, the output is the in-process one', async () => {
    const socket = join(sb.dir, `itd-${t}`, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const work = join(sb.dir, `itd-work-${t}`);
      await writeTree(work, { 'src.json': JSON.stringify({ digest: skopeoDigest(arm) }) });
      const env = { KILN_HOST: `unix://${socket}`, KILN_ROOT: sb.root };
      for (const launcher of [[process.execPath, join(repo, 'cli/bin/kiln.js')], [join(repo, 'cli/bin/kiln')]]) {
        const inspected = spawnSync(launcher[0] as string, [...launcher.slice(1), 'imagetools', 'inspect', '--raw', amd], { env: { ...process.env, PATH: sb.path, ...env } });
        expect(inspected.status, inspected.stderr.toString()).toBe(0);
        expect(inspected.stdout.equals(skopeoRaw(amd))).toBe(true);
        const created = spawnSync(launcher[0] as string, [...launcher.slice(1), 'imagetools', 'create', '--dry-run', '-t', `${reg.host}/other/arm:x`, '-f', 'src.json'], { cwd: work, env: { ...process.env, PATH: sb.path, ...env } });
        expect(created.status, created.stderr.toString()).toBe(0);
        expect((JSON.parse(created.stdout.toString()) as Index).manifests.map((m) => m.digest)).toEqual([skopeoDigest(arm)]);
        await expect.poll(() => d.log().split('\n').filter((l) => l.includes(`client pid ${created.pid} →`)).length, { timeout: 10_000 }).toBe(1);
        expect(d.log()).toContain(`client pid ${inspected.pid} →`);
      }
    } finally {
      const gone = d.exited;
      d.child.kill('SIGTERM');
      await gone;
    }
  });

  test('a registry with basic auth: the caller Docker config’s credentials serve copies, mounts and inspect; without them KLN0862', async () => {
    const password = `pw-${t}`;
    const htpasswd = join(sb.dir, `htpasswd-${t}`);
    const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], q($2b$05$) . $ARGV[1])', password, 'kilnkilnkilnkilnkilnku'], { encoding: 'utf8' });
    await writeFile(htpasswd, `alice:${hash}\n`);
    const authReg = await startRegistry({ htpasswd });
    try {
      const cfg = join(sb.dir, `docker-alice-${t}`);
      await mkdir(cfg, { recursive: true });
      await writeFile(join(cfg, 'config.json'), JSON.stringify({ auths: { [authReg.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } } }));
      const withCreds = { env: { KILN_DAEMON: '0', DOCKER_CONFIG: cfg } };
      const first = `${authReg.host}/priv/app:${t}`;
      const a = await runKiln(sb, ['imagetools', 'create', '-t', first, amd, arm], withCreds);
      expect(a.code, a.stderr).toBe(0);
      // Same (authenticated) registry, another repository: mounted, with pull on the source and push on the target.
      const second = `${authReg.host}/priv2/app:${t}`;
      const b = await kilnIn(['imagetools', 'create', '-t', second, first], { DOCKER_CONFIG: cfg });
      expect(b.code, b.stderr).toBe(0);
      expect(b.stderr).toMatch(/[1-9]\d* blob\(s\) mounted, 0 uploaded/);
      const i = await kilnIn(['imagetools', 'inspect', second], { DOCKER_CONFIG: cfg });
      expect(i.stdout).toContain(`  Name:      ${second}@${skopeoDigest(amd)}`);
      const refused = await kilnIn(['imagetools', 'inspect', second], { DOCKER_CONFIG: join(sb.dir, 'nobody') });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/KLN0862: .*authentication required/);
      expect(`${a.stdout}${a.stderr}${b.stderr}${refused.stderr}`).not.toContain(password);
    } finally {
      await authReg.stop();
    }
  });

  test('inspect --local reads the kiln image store', async () => {
    const name = `localonly-${t}:1`;
    const ctx = join(sb.dir, `it-${t}`);
    const b = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', name]);
    expect(b.code, b.stderr).toBe(0);
    const digest = /: (sha256:[a-f0-9]{64})/.exec(b.stderr)?.[1];
    const r = await kilnIn(['imagetools', 'inspect', '--local', '--root', sb.root, name]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Name: +docker\\.io/library/${name}\nMediaType: +\\S+\nDigest: +${digest ?? 'x'}\n$`));
    const missing = await kilnIn(['imagetools', 'inspect', '--local', '--root', sb.root, `absent-${t}`]);
    expect(missing.stderr).toContain('KLN0861');
  });
});

async function runKilnBytes(args: string[], cwd?: string): Promise<Buffer> {
  const { spawn } = await import('node:child_process');
  const { kilnBin } = await import('./build-helpers.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], { env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' }, stdio: ['ignore', 'pipe', 'inherit'], ...(cwd === undefined ? {} : { cwd }) });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`kiln ${args.join(' ')} exited ${String(code)}`))));
  });
}
