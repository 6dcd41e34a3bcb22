import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { runKiln, startDaemon, token, useSandbox, writeTree, type KilnSandbox, type TestDaemon } from './build-helpers.js';

// Registry credentials from the caller's Docker config (DOCKER_CONFIG or ~/.docker/config.json),
// against a real docker-registry that requires basic auth (htpasswd, bcrypt made by crypt(3)).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let registry: TestRegistry;
let withCreds: string;
let noCreds: string;
const PASSWORD = `pw-${token()}`;

beforeAll(async () => {
  const htpasswd = join(sb.dir, 'htpasswd');
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], q($2b$05$) . $ARGV[1])', PASSWORD, 'kilnkilnkilnkilnkilnku'], { encoding: 'utf8' });
  await writeFile(htpasswd, `alice:${hash}\n`);
  registry = await startRegistry({ htpasswd });
  withCreds = join(sb.dir, 'docker-alice');
  noCreds = join(sb.dir, 'docker-nobody');
  await mkdir(withCreds, { recursive: true });
  await mkdir(noCreds, { recursive: true });
  await writeFile(join(withCreds, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`alice:${PASSWORD}`).toString('base64') } } }));
}, 60_000);

afterAll(async () => {
  await registry.stop();
});

const inspect = (ref: string): { Digest?: string } => JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--creds', `alice:${PASSWORD}`, `docker://${ref}`], { encoding: 'utf8' })) as { Digest?: string };

test('push and pull use the credentials of the caller Docker config; without them the registry refuses, and the password is never printed', async () => {
  const t = token();
  const ctx = join(sb.dir, `auth-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /marker\n` });
  const ref = `${registry.host}/private/app:${t}`;

  const refused = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push'], { env: { DOCKER_CONFIG: noCreds, KILN_DAEMON: '0' } });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/unauthori[sz]ed|credentials/i);

  const pushed = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push'], { env: { DOCKER_CONFIG: withCreds, KILN_DAEMON: '0' } });
  expect(pushed.stderr).not.toContain('kiln: error');
  expect(pushed.code).toBe(0);
  expect(inspect(ref).Digest).toMatch(/^sha256:/);
  expect(refused.stderr + pushed.stderr).not.toContain(PASSWORD);

  // FROM the private image: resolved and pulled with the caller's credentials.
  const child = join(sb.dir, `auth-child-${t}`);
  await writeTree(child, { Dockerfile: `FROM ${ref}\nRUN cat /marker > /copied\n` });
  const out = join(sb.dir, `auth-out-${t}`);
  const pulled = await runKiln(sb, ['build', child, '--root', join(sb.dir, `fresh-root-${t}`), '--progress', 'plain', '-o', `type=local,dest=${out}`], { env: { DOCKER_CONFIG: withCreds, KILN_DAEMON: '0' } });
  expect(pulled.stderr).not.toContain('kiln: error');
  expect(pulled.code).toBe(0);
}, 180_000);

test('through kiln daemon each client brings its own Docker config', async () => {
  const socket = join(sb.dir, `auth-daemon-${token()}`, 'kilnd.sock');
  const daemon: TestDaemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const t = token();
    const ctx = join(sb.dir, `auth-d-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /marker\n` });
    const ref = `${registry.host}/private/daemon:${t}`;
    const env = { KILN_HOST: `unix://${socket}` };
    const refused = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push'], { env: { ...env, DOCKER_CONFIG: noCreds } });
    expect(refused.code).toBe(1);
    const pushed = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push'], { env: { ...env, DOCKER_CONFIG: withCreds } });
    expect(pushed.code).toBe(0);
    expect(inspect(ref).Digest).toMatch(/^sha256:/);
    expect(daemon.log().split('\n').filter((l) => l.includes('build: client pid'))).toHaveLength(2);
  } finally {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
}, 180_000);

test('credential helpers: credsStore answers for the registry, a missing helper is a clear error', async () => {
  const t = token();
  const helperDir = join(sb.dir, `helpers-${t}`);
  await mkdir(helperDir, { recursive: true });
  // A docker-credential-helpers program: the server address on stdin, JSON credentials out.
  await writeFile(
    join(helperDir, 'docker-credential-kilntest'),
    `#!/bin/sh\nread -r server || true\nif [ "$server" = "${registry.host}" ]; then printf '{"ServerURL":"%s","Username":"alice","Secret":"${PASSWORD}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi\n`,
    { mode: 0o755 },
  );
  const helped = join(sb.dir, `docker-helper-${t}`);
  const missing = join(sb.dir, `docker-missing-${t}`);
  await mkdir(helped, { recursive: true });
  await mkdir(missing, { recursive: true });
  await writeFile(join(helped, 'config.json'), JSON.stringify({ credsStore: 'kilntest', auths: { [registry.host]: {} } }));
  await writeFile(join(missing, 'config.json'), JSON.stringify({ credHelpers: { [registry.host]: 'nosuchhelper' } }));
  const ctx = join(sb.dir, `auth-helper-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} > /marker\n` });
  const ref = `${registry.host}/private/helper:${t}`;
  const path = `${helperDir}:${sb.path}`;

  const pushed = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push'], { env: { DOCKER_CONFIG: helped, PATH: path, KILN_DAEMON: '0' } });
  expect(pushed.stderr).not.toContain('kiln: error');
  expect(pushed.code).toBe(0);
  expect(inspect(ref).Digest).toMatch(/^sha256:/);
  expect(pushed.stderr).not.toContain(PASSWORD);

  // Through a daemon: the helper comes from the client's PATH and config, not the daemon's.
  const socket = join(sb.dir, `helper-daemon-${t}`, 'kilnd.sock');
  const daemon: TestDaemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const viaDaemon = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', `${ref}-d`, '--push'], {
      env: { DOCKER_CONFIG: helped, PATH: path, KILN_HOST: `unix://${socket}` },
    });
    expect(viaDaemon.code).toBe(0);
    expect(inspect(`${ref}-d`).Digest).toMatch(/^sha256:/);
    // The daemon logs a command after it answered it.
    await expect.poll(() => daemon.log(), { timeout: 10_000 }).toContain('build: client pid');
  } finally {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }

  const started = Date.now();
  const failed = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', `${ref}-2`, '--push'], { env: { DOCKER_CONFIG: missing, PATH: path, KILN_DAEMON: '0' } });
  expect(failed.code).toBe(1);
  // the process ends with the error (no helper timeout left behind keeping it alive)
  expect(Date.now() - started).toBeLessThan(30_000);
  expect(failed.stderr).toContain('credential helper docker-credential-nosuchhelper not found in PATH');
}, 180_000);
