import { execFileSync } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { startRegistry } from '../../../runtime/test/helpers/registry.js';
import { kilnBin, runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// `kiln images`, `save`, `push` and `rmi` on what `kiln build -t` stored, checked with skopeo and
// a real docker-registry.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

test('an image built with -t is listed, saved as OCI and Docker tarballs, pushed, and removed', async () => {
  const t = token();
  const ctx = join(sb.dir, `img-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /id\n` });
  const built = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '-t', `app-${t}:1`]);
  expect(built.code).toBe(0);
  const digest = /image docker\.io\/library\/app-\S+: (sha256:[a-f0-9]{64})/.exec(built.stderr)?.[1];
  expect(digest).toBeDefined();

  const list = await runKiln(sb, ['images', '--root', sb.root, '--digests']);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(new RegExp(`^docker\\.io/library/app-${t}:1\\s+${digest ?? ''}\\s+\\S+ ?[kKMG]?B`, 'm'));
  // The FROM pinned busybox as busybox@DIGEST in the store: beside busybox:latest that row is
  // listed only with --all.
  expect(list.stdout).toMatch(/^docker\.io\/library\/busybox:latest\s/m);
  expect(list.stdout).not.toContain('docker.io/library/busybox@sha256:');
  const every = await runKiln(sb, ['images', '--root', sb.root, '--all']);
  expect(every.stdout).toMatch(/^docker\.io\/library\/busybox@sha256:[a-f0-9]{64}\s/m);
  expect(every.stdout).toContain(`docker.io/library/app-${t}:1`);

  const oci = join(sb.dir, `img-${t}.oci.tar`);
  expect((await runKiln(sb, ['save', `app-${t}:1`, '-o', oci, '--root', sb.root])).code).toBe(0);
  expect((JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${oci}`], { encoding: 'utf8' })) as { Digest: string }).Digest).toBe(digest);
  const docker = join(sb.dir, `img-${t}.docker.tar`);
  expect((await runKiln(sb, ['save', `app-${t}:1`, '-o', docker, '--format', 'docker', '--root', sb.root])).code).toBe(0);
  expect((JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${docker}`], { encoding: 'utf8' })) as { Layers: string[] }).Layers.length).toBeGreaterThan(1);
  // As docker save: without -o (or -o -) the tarball goes to stdout, byte for byte the file's.
  const piped = join(sb.dir, `img-${t}.piped.tar`);
  execFileSync('sh', ['-c', `"${process.execPath}" "${kilnBin}" save app-${t}:1 --root "${sb.root}" > "${piped}"`], { env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' }, stdio: 'pipe' });
  expect(execFileSync('cmp', [piped, oci]).length).toBe(0);

  const registry = await startRegistry();
  try {
    const pushed = await runKiln(sb, ['push', `app-${t}:1`, `${registry.host}/team/app:${t}`, '--root', sb.root]);
    expect(pushed.stderr).toBe('');
    expect(pushed.code).toBe(0);
    const remote = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/team/app:${t}`], { encoding: 'utf8' })) as { Digest: string };
    expect(remote.Digest).toBe(digest);
  } finally {
    await registry.stop();
  }

  expect((await runKiln(sb, ['rmi', `app-${t}:1`, '--root', sb.root])).stdout).toContain(`Untagged: docker.io/library/app-${t}:1`);
  expect((await runKiln(sb, ['images', '--root', sb.root])).stdout).not.toContain(`app-${t}`);
  const missing = await runKiln(sb, ['rmi', `app-${t}:1`, '--root', sb.root]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('KLN0701');
}, 180_000);

test('SIGTERM stops a push that is waiting on its registry: exit 130 with the interrupt named', async () => {
  // A registry that takes connections and never answers: the push waits until it is stopped.
  const sockets: Socket[] = [];
  let connected!: () => void;
  const accepted = new Promise<void>((r) => (connected = r));
  const server = createServer((s) => {
    sockets.push(s);
    connected();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const run = runKiln(sb, ['push', 'busybox', `127.0.0.1:${port}/stuck/busybox:1`, '--root', sb.root], { env: { KILN_DAEMON: '0' }});
    await accepted;
    execFileSync('pkill', ['-TERM', '-f', `127.0.0.1:${port}/stuck/busybox`]);
    const r = await run;
    expect(r.stderr).toContain('KLN0705: interrupted (SIGTERM)');
    expect(r.code).toBe(130);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}, 60_000);
