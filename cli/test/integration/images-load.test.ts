import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { kilnBin, repo, runKiln, runKilnInProcess, startDaemon, token, useSandbox, writeTree, type KilnSandbox, type TestDaemon } from './build-helpers.js';

// `kiln load`, `kiln pull` and `kiln tag`: archives from kiln save, skopeo (the independent
// producer, from a real docker-registry) and hand-made broken ones; pulls from a real
// docker-registry (a multi-platform index with --platform), then builds FROM what came in with
// the registry stopped; the daemon serving load from its client's stdin.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const CONFORMANCE = join(repo, '../shared/conformance/images');
/** Digests from the conformance README, never from kiln's encoder. */
async function readmeDigest(folder: string): Promise<string> {
  const readme = await readFile(join(CONFORMANCE, 'README.md'), 'utf8');
  const m = new RegExp('\\| `' + folder + '/` \\|[^\\n]*?`(sha256:[a-f0-9]{64})`').exec(readme);
  if (m?.[1] === undefined) throw new Error(`no digest for ${folder} in README`);
  return m[1];
}

const kiln = (args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) => runKiln(sb, args, { ...opts, env: { KILN_DAEMON: '0', ...opts.env } });
const kilnIn = (args: string[]) => runKilnInProcess(sb, args, { env: { KILN_DAEMON: '0' } });
/** `kiln ARGS` with a shell pipeline feeding its stdin (binary input). */
function kilnPiped(feed: string, args: string, env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', `${feed} | "${process.execPath}" "${kilnBin}" ${args}`], { env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0', ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const skopeo = (...args: string[]): string => execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const noStack = (stderr: string): void => expect(stderr).not.toMatch(/^\s+at /m);

/** Waits (up to 10 s) for `ok`: the daemon's log arrives on a pipe this process reads between awaits. */
async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(ok()).toBe(true);
}

async function images(root: string): Promise<Map<string, string>> {
  const r = await runKilnInProcess(sb, ['images', '--digests', '--root', root], { env: { KILN_DAEMON: '0' } });
  expect(r.code).toBe(0);
  return new Map(r.stdout.split('\n').slice(1).filter((l) => l !== '').map((l) => l.split(/\s+/) as [string, string]));
}

/** Builds FROM `base` in `root` (RUN in a real container) and returns what the container wrote. */
async function runFrom(root: string, base: string): Promise<string> {
  const t = token();
  const ctx = join(sb.dir, `from-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM ${base}\nRUN echo ran-${t} > /out.txt && ls /bin/busybox >> /out.txt\nFROM scratch\nCOPY --from=0 /out.txt /\n` });
  const r = await kiln(['build', ctx, '--root', root, '--progress', 'plain', '-o', `type=local,dest=${join(ctx, 'out')}`]);
  expect(r.stderr).not.toMatch(/KLN\d{4}/);
  expect(r.code).toBe(0);
  return readFile(join(ctx, 'out/out.txt'), 'utf8');
}

describe('kiln save → rmi → load round trips', () => {
  test.for(['oci', 'docker'] as const)('%s archive: same digest back under the same name, and a build FROM it', { timeout: 180_000 }, async (format) => {
    const t = token();
    const ctx = join(sb.dir, `rt-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /id\n` });
    expect((await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', `rt-${t}:1`])).code).toBe(0);
    const name = `docker.io/library/rt-${t}:1`;
    const digest = (await images(sb.root)).get(name);
    expect(digest).toMatch(/^sha256:/);
    const tarball = join(sb.dir, `rt-${t}.${format}.tar`);
    expect((await kilnIn(['save', name, '-o', tarball, '--format', format, '--root', sb.root])).code).toBe(0);
    expect((await kilnIn(['rmi', name, '--root', sb.root])).code).toBe(0);
    expect((await images(sb.root)).has(name)).toBe(false);

    const loaded = await kiln(['load', '-i', tarball, '--root', sb.root]);
    expect(loaded.stderr).toBe('');
    expect(loaded.code).toBe(0);
    expect(loaded.stdout).toBe(`Loaded image: ${name}\n`);
    expect((await images(sb.root)).get(name)).toBe(digest);
    const out = await runFrom(sb.root, `rt-${t}:1`);
    expect(out).toMatch(/^ran-t\w+\n\/bin\/busybox\n$/);
  });
});

describe('with a docker-registry', () => {
  let reg: TestRegistry;
  const t = token();
  let bb: string;
  beforeAll(async () => {
    reg = await startRegistry();
    bb = `${reg.host}/team/bb:${t}`;
    const pushed = await kiln(['push', 'busybox', bb, '--root', sb.root]);
    expect(pushed.code).toBe(0);
    // The multi-platform index of the conformance images, pushed as it is (digest kept).
    skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${join(CONFORMANCE, 'files')}:latest`, `docker://${reg.host}/fx/files:${t}`);
  }, 120_000);
  afterAll(async () => {
    await reg.stop();
  });

  test('skopeo docker-archive (legacy form) and oci-archive load into an empty root, named, and build FROM them', async () => {
    const root = join(sb.dir, `skopeo-root-${t}`);
    const dockerTar = join(sb.dir, `sk-${t}.docker.tar`);
    const ociTar = join(sb.dir, `sk-${t}.oci.tar`);
    skopeo('copy', '--src-tls-verify=false', `docker://${bb}`, `docker-archive:${dockerTar}:${reg.host}/team/bb:legacy`);
    skopeo('copy', '--src-tls-verify=false', `docker://${bb}`, `oci-archive:${ociTar}:localhost/sk/bb:oci`);
    // skopeo writes Docker's legacy form: <hex>.tar layers, <id>/layer.tar symlinks, no index.json.
    const listing = execFileSync('tar', ['-tvf', dockerTar], { encoding: 'utf8' });
    expect(listing).toMatch(/^l.* [a-f0-9]{64}\/layer\.tar -> \.\.\/[a-f0-9]{64}\.tar$/m);
    expect(listing).toMatch(/ manifest\.json$/m);
    expect(listing).not.toMatch(/index\.json|blobs\//);

    const d = await kiln(['load', '-i', dockerTar, '--root', root]);
    expect(d.stderr).toBe('');
    expect(d.stdout).toBe(`Loaded image: ${reg.host}/team/bb:legacy\n`);
    const o = await kilnIn(['load', '--input', ociTar, '--root', root]);
    expect(o.stdout).toBe('Loaded image: localhost/sk/bb:oci\n');
    // The OCI archive keeps skopeo's manifest digest; the legacy one gets a manifest written for it.
    const ociDigest = JSON.parse(skopeo('inspect', `oci-archive:${ociTar}`)).Digest as string;
    const got = await images(root);
    expect(got.get('localhost/sk/bb:oci')).toBe(ociDigest);
    expect(got.get(`${reg.host}/team/bb:legacy`)).toMatch(/^sha256:[a-f0-9]{64}$/);
    // The root holds nothing else and no registry has these names: the builds can only use what was loaded.
    expect(await runFrom(root, `${reg.host}/team/bb:legacy`)).toMatch(/\/bin\/busybox\n$/);
    expect(await runFrom(root, 'localhost/sk/bb:oci')).toMatch(/\/bin\/busybox\n$/);
  }, 180_000);

  test('kiln pull reads the config file as FROM does: a docker.io name comes from its mirror', async () => {
    const root = join(sb.dir, `mirror-root-${t}`);
    expect((await kilnIn(['push', 'busybox', `${reg.host}/library/mirrored-${t}:1`, '--root', sb.root])).code).toBe(0);
    const cfg = join(sb.dir, `mirror-${t}.toml`);
    await writeFile(cfg, `[registry."docker.io"]\n  mirrors = ["${reg.host}"]\n`);
    const r = await kiln(['--config', cfg, 'pull', `mirrored-${t}:1`, '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^Digest: sha256:[a-f0-9]{64}\\nStatus: Downloaded newer image for docker\\.io/library/mirrored-${t}:1\\n`));
    expect((await images(root)).has(`docker.io/library/mirrored-${t}:1`)).toBe(true);
  }, 60_000);

  test('kiln pull --platform of another platform than a single-manifest image has: pulled and named, with docker pull\'s warning', async () => {
    // busybox here is one manifest of the host's platform: no index to choose a platform from.
    const root = join(sb.dir, `other-platform-${t}`);
    const host = `${process.arch === 'arm64' ? 'linux/arm64' : 'linux/amd64'}`;
    const other = host === 'linux/amd64' ? 'linux/arm64' : 'linux/amd64';
    const r = await kilnIn(['pull', bb, '--platform', other, '--root', root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`WARNING: image with reference ${bb} was found but its platform (${host}) does not match the specified platform (${other})\n`);
    expect(r.stdout).toMatch(/^Digest: sha256:[a-f0-9]{64}\n/);
    expect((await images(root)).has(bb)).toBe(true);
    const same = await kilnIn(['pull', bb, '--platform', host, '--root', root]);
    expect(same.code).toBe(0);
    expect(same.stderr).toBe('');
  }, 60_000);

  test('kiln pull: an image into an empty root, then a build FROM it with the registry stopped; a multi-platform index with --platform', async () => {
    const root = join(sb.dir, `pull-root-${t}`);
    const p = await kiln(['pull', bb, '--root', root]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const registryDigest = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${bb}`)).Digest as string;
    expect(p.stdout).toBe(`Digest: ${registryDigest}\nStatus: Downloaded newer image for ${bb}\n${bb}\n`);
    const again = await kilnIn(['pull', bb, '--root', root]);
    expect(again.stdout).toContain(`Status: Image is up to date for ${bb}\n`);

    const files = `${reg.host}/fx/files:${t}`;
    const arm = await kilnIn(['pull', files, '--platform', 'linux/arm64', '--root', root]);
    expect(arm.code).toBe(0);
    expect(arm.stdout).toContain(`Digest: ${await readmeDigest('files')}\n`);
    // Only arm64's manifest and layer came (README: amd64's layer f4da4d…, arm64's ff596a…).
    const blob = (hex: string) => existsSync(join(root, 'content/blobs/sha256', hex));
    expect(blob('ff596afb9ed5ee2632ae7e7051f2b512b6676be30bbaa9d23aeacc163e934a25')).toBe(true);
    expect(blob('f4da4d5940300df7f961a948d3956979f8e81e9511bcd6016e9efb0ab87cf9de')).toBe(false);
    const bad = await kilnIn(['pull', files, '--platform', 'linux/s390x', '--root', root]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^kiln: error KLN0873: pull .*fx\/files/m);
    noStack(bad.stderr);

    await reg.stop();
    expect(await runFrom(root, bb)).toMatch(/\/bin\/busybox\n$/);
    const ctx = join(sb.dir, `files-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM ${files}\n` });
    const r = await kiln(['build', ctx, '--root', root, '--platform', 'linux/arm64', '--progress', 'plain', '-o', `type=local,dest=${join(ctx, 'out')}`]);
    expect(r.code).toBe(0);
    expect(await readFile(join(ctx, 'out/etc/platform'), 'utf8')).toBe('linux/arm64\n');
    // And a registry that is gone is a KLN0873 naming the image.
    const gone = await kilnIn(['pull', `${reg.host}/team/none:1`, '--root', root]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/KLN0873: pull .*team\/none:1/);
  }, 240_000);
});

test('kiln pull --all-platforms takes every platform', async () => {
  const reg = await startRegistry();
  try {
    const files = `${reg.host}/fx/files:all`;
    skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${join(CONFORMANCE, 'files')}:latest`, `docker://${files}`);
    const root = join(sb.dir, `all-${token()}`);
    const r = await kilnIn(['pull', files, '--all-platforms', '--root', root]);
    expect(r.code).toBe(0);
    for (const hex of ['ff596afb9ed5ee2632ae7e7051f2b512b6676be30bbaa9d23aeacc163e934a25', 'f4da4d5940300df7f961a948d3956979f8e81e9511bcd6016e9efb0ab87cf9de']) {
      expect(existsSync(join(root, 'content/blobs/sha256', hex))).toBe(true);
    }
    const both = await kilnIn(['pull', files, '--all-platforms', '--platform', 'linux/arm64', '--root', root]);
    expect(both.stderr).toContain('KLN0707');
  } finally {
    await reg.stop();
  }
}, 120_000);

test('kiln tag: a second name, by name or by the digest kiln images shows; a bad target is KLN0871', async () => {
  const t = token();
  const before = await images(sb.root);
  const digest = before.get('docker.io/library/busybox:latest') ?? '';
  expect((await kiln(['tag', 'busybox', `localhost:5000/team/bb:${t}`, '--root', sb.root])).code).toBe(0);
  expect((await kilnIn(['tag', digest.slice('sha256:'.length, 'sha256:'.length + 12), `short-${t}`, '--root', sb.root])).code).toBe(0);
  const after = await images(sb.root);
  expect(after.get(`localhost:5000/team/bb:${t}`)).toBe(digest);
  expect(after.get(`docker.io/library/short-${t}:latest`)).toBe(digest);
  expect(await runFrom(sb.root, `short-${t}`)).toMatch(/\/bin\/busybox\n$/);
  const names = (await images(sb.root)).size;
  const bad = await kilnIn(['tag', 'busybox', 'Not/Valid', '--root', sb.root]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^kiln: error KLN0871: TARGET "Not\/Valid" is not a valid image reference/m);
  // a digest is the image's own: a name claiming another one would be listed (docker tag refuses it)
  const pinned = await kilnIn(['tag', 'busybox', `busybox@sha256:${'1'.repeat(64)}`, '--root', sb.root]);
  expect(pinned.code).toBe(1);
  expect(pinned.stderr).toMatch(/^kiln: error KLN0871: TARGET "busybox@sha256:1{64}" is a digest reference/m);
  expect(pinned.stderr).toContain('drop the @digest (e.g. busybox:latest)');
  const missing = await kilnIn(['tag', `nothere-${t}`, 'x', '--root', sb.root]);
  expect(missing.stderr).toContain('KLN0701');
  expect((await images(sb.root)).size).toBe(names);
}, 120_000);

describe('kiln load from stdin', () => {
  test('gzip on stdin, through a process and through the daemon (both clients); a terminal is refused', async () => {
    const t = token();
    const tarball = join(sb.dir, `stdin-${t}.tar`);
    expect((await kilnIn(['tag', 'busybox', `stdin-${t}:a`, '--root', sb.root])).code).toBe(0);
    expect((await kilnIn(['save', `stdin-${t}:a`, '-o', tarball, '--format', 'docker', '--root', sb.root])).code).toBe(0);
    expect((await kilnIn(['rmi', `stdin-${t}:a`, '--root', sb.root])).code).toBe(0);
    const plain = kilnPiped(`gzip -c "${tarball}"`, `load --root "${sb.root}"`);
    expect(plain.stderr).toBe('');
    expect(plain.stdout).toBe(`Loaded image: docker.io/library/stdin-${t}:a\n`);

    const reg = await startRegistry();
    expect((await kilnIn(['push', 'busybox', `${reg.host}/d/bb:${t}`, '--root', sb.root])).code).toBe(0);
    const socket = join(sb.dir, `run-${t}`, 'kilnd.sock');
    const daemon: TestDaemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      for (const [i, launcher] of [`"${process.execPath}" "${kilnBin}"`, `"${join(repo, 'cli/bin/kiln')}"`].entries()) {
        expect((await kilnIn(['rmi', `stdin-${t}:a`, '--root', sb.root])).code).toBe(0);
        // -i /dev/stdin is the client's stdin too, not the daemon's.
        const r = spawnSync('sh', ['-c', `gzip -c "${tarball}" | ${launcher} load ${i === 1 ? '-i /dev/stdin ' : ''}--root "${sb.root}"`], { env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` }, encoding: 'utf8' });
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(`Loaded image: docker.io/library/stdin-${t}:a\n`);
        await waitFor(() => (daemon.log().match(/started load for client/g)?.length ?? 0) === i + 1);
        // A tag and a pull are served too.
        const env = { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` };
        const tag = spawnSync('sh', ['-c', `${launcher} tag stdin-${t}:a stdin-${t}:b --root "${sb.root}"`], { env, encoding: 'utf8' });
        expect(tag.status).toBe(0);
        await waitFor(() => (daemon.log().match(/started tag for client/g)?.length ?? 0) === i + 1);
        const pull = spawnSync('sh', ['-c', `${launcher} pull ${reg.host}/d/bb:${t} --root "${sb.root}"`], { env, encoding: 'utf8' });
        // Its blobs are here already; the name is new the first time only.
        expect(pull.stdout).toContain(`Status: ${i === 0 ? 'Downloaded newer image' : 'Image is up to date'} for ${reg.host}/d/bb:${t}\n`);
        await waitFor(() => (daemon.log().match(/started pull for client/g)?.length ?? 0) === i + 1);
        // stdin a terminal (script gives the command a pseudo-terminal): refused before reading.
        const tty = spawnSync('script', ['-qec', `${launcher} load --root "${sb.root}"`, '/dev/null'], { env: { ...process.env, PATH: sb.path, KILN_HOST: `unix://${socket}` }, encoding: 'utf8', timeout: 30_000 });
        expect(tty.stdout).toMatch(/kiln: error KLN0872: kiln load reads an archive from standard input, which is a terminal/);
        expect(tty.status).toBe(1);
      }
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
      await reg.stop();
    }
    const tty = spawnSync('script', ['-qec', `"${process.execPath}" "${kilnBin}" load --root "${sb.root}"`, '/dev/null'], { env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' }, encoding: 'utf8', timeout: 30_000 });
    expect(tty.stdout).toContain('KLN0872');
  }, 180_000);
});

describe('bad archives', () => {
  /** An OCI layout directory of one hand-made image with a unique config, tarred by the system tar. */
  async function layout(t: string, edit: (dir: string, d: { manifest: string; config: string; layer: string }) => Promise<void> = async () => undefined): Promise<{ tar: string; config: string; manifest: string }> {
    const dir = join(sb.dir, `bad-${t}`);
    await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
    execFileSync('sh', ['-c', `mkdir -p "${dir}.rootfs" && echo ${t} > "${dir}.rootfs/id" && tar -C "${dir}.rootfs" -cf "${dir}.layer" id`]);
    const layer = await readFile(`${dir}.layer`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: [`T=${t}`] }, rootfs: { type: 'layers', diff_ids: [`sha256:${sha(layer)}`] } }));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha(config)}`, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(layer)}`, size: layer.length }] }));
    for (const b of [layer, config, manifest]) await writeFile(join(dir, 'blobs/sha256', sha(b)), b);
    await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { 'io.containerd.image.name': `docker.io/library/bad-${t}:1` } }] }));
    await edit(dir, { manifest: sha(manifest), config: sha(config), layer: sha(layer) });
    execFileSync('tar', ['-C', dir, '-cf', `${dir}.tar`, '.']);
    return { tar: `${dir}.tar`, config: sha(config), manifest: sha(manifest) };
  }
  const leftovers: string[] = [];

  test.for([
    ['not a tar', async (t: string) => { const f = join(sb.dir, `nottar-${t}`); await writeFile(f, 'hello '.repeat(200)); return f; }, 'KLN0870', /: not a tar archive|is not a tar archive/],
    ['truncated', async (t: string) => { const { tar } = await layout(t); const f = `${tar}.cut`; await writeFile(f, (await readFile(tar)).subarray(0, 3000)); return f; }, 'KLN0870', /is truncated: it ends in entry \.?\/?blobs\/sha256\/[a-f0-9]{64}|is truncated/],
    ['a blob that is not its digest', async (t: string) => (await layout(t, async (dir, d) => { await writeFile(join(dir, 'blobs/sha256', d.config), `{"tampered":"${t}"}`); })).tar, 'KLN0870', /entry blobs\/sha256\/[a-f0-9]{64}: its content does not have the digest its name says/],
    ['a manifest naming a missing blob', async (t: string) => { const r = await layout(t, async (dir, d) => { await import('node:fs/promises').then((f) => f.rm(join(dir, 'blobs/sha256', d.layer))); }); leftovers.push(r.config, r.manifest); return r.tar; }, 'KLN0870', /needs its layer 1 sha256:[a-f0-9]{64}, which the archive does not contain/],
    ['a name that is not a reference', async (t: string) => { const r = await layout(t, async (dir) => { const p = join(dir, 'index.json'); await writeFile(p, (await readFile(p, 'utf8')).replace(`docker.io/library/bad-${t}:1`, 'UPPER/Case:1')); }); leftovers.push(r.config, r.manifest); return r.tar; }, 'KLN0871', /annotation io\.containerd\.image\.name "UPPER\/Case:1" is not a valid image reference/],
  ] as const)('%s: a KLN error naming the entry, nothing named', { timeout: 60_000 }, async ([, make, code, message]) => {
    const t = token();
    const file = await make(t);
    const before = await images(sb.root);
    const r = await kilnIn(['load', '-i', file, '--root', sb.root]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^kiln: error ${code}: `));
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^hint: /m);
    noStack(r.stderr);
    expect(await images(sb.root)).toEqual(before);
  });

  test('kiln prune removes what failed loads left in the content store, and keeps loaded images', async () => {
    expect(leftovers.length).toBe(4);
    const blobDir = join(sb.root, 'content/blobs/sha256');
    for (const hex of leftovers) expect(existsSync(join(blobDir, hex))).toBe(true);
    // Older than prune's minimum age (a minute), as if the failed loads were long ago.
    const old = new Date(Date.now() - 3_600_000);
    for (const f of await readdir(blobDir)) await utimes(join(blobDir, f), old, old);
    const pruned = await kiln(['prune', '--root', sb.root]);
    expect(pruned.code).toBe(0);
    for (const hex of leftovers) expect(existsSync(join(blobDir, hex))).toBe(false);
    // Loaded and built images are whole still: a build FROM busybox runs.
    expect(await runFrom(sb.root, 'busybox')).toMatch(/\/bin\/busybox\n$/);
  }, 120_000);
});
