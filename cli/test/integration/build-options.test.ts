import { execFileSync } from 'node:child_process';
import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// buildx's `--label`, `--add-host`, `--network` and `--pull` through `kiln build`, with real runc.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

test('--label sets image labels over the Dockerfile LABEL; --add-host reaches /etc/hosts of every RUN', async () => {
  const t = token();
  const ctx = join(sb.dir, `opts-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nLABEL a=dockerfile keep=yes\nRUN cat /etc/hosts > /hosts && echo ${t}\n` });
  const oci = join(sb.dir, `opts-${t}.tar`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--label', 'a=cli', '--label', 'org.example.b=two words', '--add-host', 'db.internal:10.1.2.3', '--add-host', 'cache=10.1.2.4', '-o', `type=oci,dest=${oci}`]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${oci}`], { encoding: 'utf8' })) as { Labels: Record<string, string> };
  expect(inspected.Labels).toEqual({ a: 'cli', keep: 'yes', 'org.example.b': 'two words' });
  const out = join(sb.dir, `opts-out-${t}`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--add-host', 'db.internal:10.1.2.3', '--add-host', 'cache=10.1.2.4', '-o', `type=local,dest=${out}`])).code).toBe(0);
  const hosts = await readFile(join(out, 'hosts'), 'utf8');
  expect(hosts).toMatch(/^10\.1\.2\.3\s+db\.internal$/m);
  expect(hosts).toMatch(/^10\.1\.2\.4\s+cache$/m);
}, 120_000);

test('--network none isolates RUN steps; --network host needs --allow network.host', async () => {
  const t = token();
  const ctx = join(sb.dir, `net-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN ls /sys/class/net > /nets && echo ${t}\n` });
  const none = join(sb.dir, `net-none-${t}`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--network', 'none', '-o', `type=local,dest=${none}`])).code).toBe(0);
  expect((await readFile(join(none, 'nets'), 'utf8')).trim().split('\n')).toEqual(['lo']);
  const refused = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--network', 'host']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('network.host');
  const host = join(sb.dir, `net-host-${t}`);
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--network', 'host', '--allow', 'network.host', '-o', `type=local,dest=${host}`])).code).toBe(0);
  expect((await readFile(join(host, 'nets'), 'utf8')).trim().split('\n').length).toBeGreaterThan(1);
  const bad = await runKiln(sb, ['build', ctx, '--root', sb.root, '--network', 'bridge']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid --network "bridge"');
}, 120_000);

test('--pull skips the local image store: an image only kiln has locally is looked up in its registry', async () => {
  const ctx = join(sb.dir, `pull-${token()}`);
  await writeTree(ctx, { Dockerfile: 'FROM busybox\n' });
  expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet'])).code).toBe(0);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--pull']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/registry-1\.docker\.io|docker\.io/);
}, 120_000);

test('COPY from the build context gives files owned by 0:0 whoever owns them on the host, as buildx sends a context', async () => {
  const t = token();
  const ctx = join(sb.dir, `owner-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nCOPY app /app\nRUN stat -c '%u:%g %a %n' /app /app/run.sh > /owners && echo ${t}\n`, 'app/run.sh': '#!/bin/sh\n' });
  execFileSync('chown', ['-R', '1000:1000', join(ctx, 'app')]);
  execFileSync('chmod', ['4750', join(ctx, 'app', 'run.sh')]);
  const out = join(sb.dir, `owner-out-${t}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', `type=local,dest=${out}`]);
  expect(r.code).toBe(0);
  expect((await readFile(join(out, 'owners'), 'utf8')).trim().split('\n')).toEqual(['0:0 755 /app', '0:0 4750 /app/run.sh']);
}, 120_000);

test('--ulimit, --shm-size and --cgroup-parent reach the RUN containers', async () => {
  const t = token();
  const ctx = join(sb.dir, `limits-${t}`);
  await writeTree(ctx, {
    Dockerfile: `FROM busybox\nRUN (ulimit -Sn; ulimit -Hn; df -k /dev/shm | tail -1 | awk '{print $2}'; grep -c kiln-parent-${t} /proc/self/cgroup) > /limits && echo ${t}\n`,
  });
  const out = join(sb.dir, `limits-out-${t}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--ulimit', 'nofile=1024:2048', '--shm-size', '32m', '--cgroup-parent', `kiln-parent-${t}`, '-o', `type=local,dest=${out}`]);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  const [soft, hard, shmKb, cgroups] = (await readFile(join(out, 'limits'), 'utf8')).trim().split('\n');
  expect([soft, hard, shmKb]).toEqual(['1024', '2048', String(32 * 1024)]);
  expect(Number(cgroups)).toBeGreaterThan(0);
  // runc makes the parent cgroup and leaves it (empty) behind: remove it from every hierarchy.
  execFileSync('sh', ['-c', `for d in /sys/fs/cgroup/*/kiln-parent-${t} /sys/fs/cgroup/kiln-parent-${t}; do [ -d "$d" ] && rmdir "$d"; done; true`]);
  const bad = await runKiln(sb, ['build', ctx, '--root', sb.root, '--ulimit', 'nofile=x']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid ulimit "nofile=x"');
}, 120_000);

test('a Dockerfile that is a symlink builds from its target (and its .dockerignore next to it), as buildx loads it', async () => {
  const t = token();
  const ctx = join(sb.dir, `dfsymlink-${t}`);
  await writeTree(ctx, {
    'docker/Dockerfile.real': `FROM busybox\nCOPY . /ctx\nRUN echo ${t} > /id && ls /ctx > /listing\n`,
    'docker/Dockerfile.real.dockerignore': 'secret.txt\n',
    'secret.txt': 'no\n',
    'kept.txt': 'yes\n',
  });
  await symlink('docker/Dockerfile.real', join(ctx, 'Dockerfile'));
  await symlink('docker/Dockerfile.real.dockerignore', join(ctx, 'Dockerfile.dockerignore'));
  const out = join(sb.dir, `dfsymlink-out-${t}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`]);
  expect(r.code, r.stderr.slice(-1500)).toBe(0);
  expect(await readFile(join(out, 'id'), 'utf8')).toBe(`${t}\n`);
  const listing = (await readFile(join(out, 'listing'), 'utf8')).split('\n');
  expect(listing).toContain('kept.txt');
  expect(listing).not.toContain('secret.txt');
});

test('without -f a lowercase dockerfile is the build file when there is no Dockerfile, as BuildKit reads it', async () => {
  const t = token();
  const ctx = join(sb.dir, `lower-${t}`);
  await writeTree(ctx, { dockerfile: `FROM busybox\nRUN echo ${t} > /id\n`, 'kiln.build.ts': 'not used\n' });
  const out = join(sb.dir, `lower-out-${t}`);
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', `type=local,dest=${out}`]);
  expect(r.code, r.stderr.slice(-1500)).toBe(0);
  expect(await readFile(join(out, 'id'), 'utf8')).toBe(`${t}\n`);
});

test('--annotation puts buildx annotations on the index, its manifests, their descriptors and index.json; a bad type is refused, naming the flag', async () => {
  const t = token();
  const ctx = join(sb.dir, `annot-${t}`);
  await writeTree(ctx, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: t });
  const oci = join(sb.dir, `annot-${t}.tar`);
  const r = await runKiln(sb, [
    'build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/amd64,linux/arm64', '-o', `type=oci,dest=${oci}`,
    '--annotation', 'index:org.opencontainers.image.title=app, one',
    '--annotation', 'plain=every-manifest',
    '--annotation', 'manifest[linux/arm64]:only=arm',
    '--annotation', 'manifest-descriptor,index-descriptor:both=yes',
  ]);
  expect(r.stderr).not.toContain('WARNING');
  expect(r.code).toBe(0);
  const blob = (digest: string): Record<string, unknown> => JSON.parse(execFileSync('tar', ['-xOf', oci, `blobs/sha256/${digest.slice(7)}`], { encoding: 'utf8' })) as Record<string, unknown>;
  type Desc = { digest: string; annotations?: Record<string, string>; platform?: { architecture: string } };
  const layout = JSON.parse(execFileSync('tar', ['-xOf', oci, 'index.json'], { encoding: 'utf8' })) as { manifests: Desc[] };
  const root = layout.manifests[0] as Desc;
  expect(root.annotations?.['both']).toBe('yes');
  const index = blob(root.digest) as { annotations?: Record<string, string>; manifests: Desc[] };
  expect(index.annotations).toEqual({ 'org.opencontainers.image.title': 'app, one' });
  const byArch = new Map(index.manifests.map((d) => [d.platform?.architecture, d]));
  for (const arch of ['amd64', 'arm64']) {
    const d = byArch.get(arch) as Desc;
    expect(d.annotations?.['both']).toBe('yes');
    const m = blob(d.digest) as { annotations?: Record<string, string> };
    expect(m.annotations).toEqual(arch === 'arm64' ? { plain: 'every-manifest', only: 'arm' } : { plain: 'every-manifest' });
  }
  const bad = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', `type=oci,dest=${oci}`, '--annotation', 'layer:x=y']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('invalid --annotation "layer:x=y": unknown annotation type "layer"');
  const none = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-o', `type=local,dest=${join(sb.dir, `annot-local-${t}`)}`, '--annotation', 'x=y']);
  expect(none.code).toBe(0);
  expect(none.stderr).toContain('WARNING: --annotation applies to image outputs');
}, 120_000);

test('--load (buildx: into Docker) is refused before anything runs, with what kiln offers instead; the store is unchanged', async () => {
  const t = token();
  const ctx = join(sb.dir, `load-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /x\n` });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--load', '-t', `load-${t}:1`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('--load is not applicable: kiln has no Docker daemon');
  expect(r.stderr).toContain('type=docker,dest=FILE.tar');
  expect(r.stderr).not.toContain(`RUN echo ${t}`);
  expect((await runKiln(sb, ['images', '--root', sb.root])).stdout).not.toContain(`load-${t}`);
}, 120_000);

test('--cache-to type=local,dest=FILE is refused before anything runs (a local cache is a directory); the file is untouched', async () => {
  const t = token();
  const ctx = join(sb.dir, `cacheto-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /x\n`, 'cache.tar': 'not a dir' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--cache-to', `type=local,dest=${join(ctx, 'cache.tar')}`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`kiln: error KLN0710: invalid --cache-to "type=local,dest=${join(ctx, 'cache.tar')}": ${join(ctx, 'cache.tar')} is not a directory`);
  expect(r.stderr).not.toContain(`RUN echo ${t}`);
  expect(await readFile(join(ctx, 'cache.tar'), 'utf8')).toBe('not a dir');
}, 120_000);

test('a context with a project.toml that lacks its # syntax=kiln/buildpacks line: the missing-Dockerfile error says how to pick buildpacks', async () => {
  const ctx = join(sb.dir, `project-${token()}`);
  await writeTree(ctx, { 'project.toml': '[io.buildpacks]\nbuilder = "kt/builder"\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`cannot read Dockerfile ${join(ctx, 'Dockerfile')}: no such file`);
  expect(r.stderr).toContain(`hint: ${join(ctx, 'project.toml')} is a buildpacks project only with "# syntax=kiln/buildpacks" as its first line, or --frontend kiln/buildpacks`);
}, 60_000);

test('FROM scratch exports only the layers the build made, as BuildKit: COPY onto scratch is one layer with one history entry; metadata alone is no layer', async () => {
  const t = token();
  const ctx = join(sb.dir, `scratch-${t}`);
  await writeTree(ctx, { Dockerfile: 'FROM scratch\nCOPY x /x\nLABEL l=1\n', x: `${t}\n`, 'meta/Dockerfile': 'FROM scratch\nLABEL only=metadata\n' });
  const image = async (dir: string): Promise<{ layers: unknown[]; diffIds: string[]; history: { created_by?: string; empty_layer?: boolean }[] }> => {
    const out = join(sb.dir, `scratch-${t}-${dir.length}.tar`);
    const r = await runKiln(sb, ['build', dir, '--root', sb.root, '--progress', 'quiet', '-o', `type=oci,dest=${out}`]);
    expect(r.stderr).not.toContain('kiln: error');
    const manifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${out}`], { encoding: 'utf8' })) as { layers: unknown[] };
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--raw', `oci-archive:${out}`], { encoding: 'utf8' })) as { rootfs: { diff_ids: string[] }; history: { created_by?: string; empty_layer?: boolean }[] };
    return { layers: manifest.layers, diffIds: config.rootfs.diff_ids, history: config.history };
  };
  const copied = await image(ctx);
  expect(copied.layers).toHaveLength(1);
  expect(copied.diffIds).toHaveLength(1);
  expect(copied.history.filter((h) => h.empty_layer !== true).map((h) => h.created_by)).toEqual(['COPY x /x # buildkit']);
  const meta = await image(join(ctx, 'meta'));
  expect(meta.layers).toHaveLength(0);
  expect(meta.diffIds).toEqual([]);
}, 120_000);
