import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { processesMatching, repo, runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { frontendBundle, multiStageDockerfile, pushNodeFrontend, pushShellImage, readOci } from './external-frontend-image.js';

// `# syntax=<image>` and `--frontend <image>` run a frontend image in a runc container and serve it
// LLBBridge over its stdin/stdout (gateway.v0), as buildkitd does. The frontend image holds the
// host's node (+ the libraries ldd lists) and kiln's standalone frontend bundle
// (cli/dist/frontend.cjs); it is pushed to a real docker-registry on 127.0.0.1 once per file.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let registry: TestRegistry;
let frontendRef = '';
let brokenRef = '';
let hangingRef = '';

/** Written to stderr by the frontend before it starts (through the image's NODE_OPTIONS): what it was given. */
const BANNER = String.raw`
const fs = require('fs');
const env = process.env;
const opts = Object.keys(env).filter((k) => k.startsWith('BUILDKIT_FRONTEND_OPT_')).map((k) => env[k].split('=')[0]).sort().join(',');
let meta = 'missing';
try { meta = fs.statSync('/run/config/buildkit/metadata/frontend.bin').size + ' bytes'; } catch {}
let writable = 'no';
try { fs.writeFileSync('/run/config/buildkit/metadata/frontend.bin', 'x'); writable = 'yes'; } catch {}
process.stderr.write('kiln-test-frontend: product=' + env.BUILDKIT_EXPORTEDPRODUCT + ' session=' + (env.BUILDKIT_SESSION_ID ? 'set' : 'unset') +
  ' workers=' + JSON.parse(env.BUILDKIT_WORKERS)[0].id + ' opts=' + opts + ' frontend.bin=' + meta + ' writable=' + writable + '\n');
process.stderr.write('kiln-test-frontend-env: ' + Object.keys(env).filter((k) => !k.startsWith('BUILDKIT_FRONTEND_OPT_')).sort().join(',') +
  ' leaked=' + Object.values(env).some((v) => v.includes('kiln-leak-')) + '\n');
`;

const CAPS = 'moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts';

beforeAll(async () => {
  const bundle = frontendBundle(repo);
  registry = await startRegistry();
  const work = join(sb.dir, 'images');
  await mkdir(work);
  frontendRef = `${registry.host}/kiln-frontend:test`;
  await pushNodeFrontend(work, frontendRef, bundle, BANNER, CAPS);
  brokenRef = `${registry.host}/kiln-frontend-broken:test`;
  await pushShellImage(work, brokenRef, 'echo starting >&2; echo oops >&2; exit 3', CAPS);
  hangingRef = `${registry.host}/kiln-frontend-hanging:test`;
  await pushShellImage(work, hangingRef, 'echo frontend-waiting >&2; sleep 1013; echo never', CAPS);
}, 300_000);

afterAll(async () => {
  await registry?.stop();
});

test('# syntax=<image>: the frontend runs in a container and the image equals the in-process build', async () => {
  const t = token();
  const ext = join(sb.dir, `ext-${t}`);
  const own = join(sb.dir, `own-${t}`);
  await writeTree(ext, { Dockerfile: multiStageDockerfile(`# syntax=${frontendRef}`, t), 'hello.txt': 'hello external\n' });
  await writeTree(own, { Dockerfile: multiStageDockerfile('# syntax=docker/dockerfile:1', t), 'hello.txt': 'hello external\n' });
  const epoch = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000'];

  const external = await runKiln(sb, ['build', ext, '--root', sb.root, '--progress=plain', ...epoch, '-o', `type=oci,dest=${ext}.tar`]);
  expect(external.stderr).not.toMatch(/error/i);
  expect(external.code).toBe(0);
  const inProcess = await runKiln(sb, ['build', own, '--root', sb.root, '--progress=plain', ...epoch, '-o', `type=oci,dest=${own}.tar`]);
  expect(inProcess.code).toBe(0);

  const a = readOci(`${ext}.tar`);
  const b = readOci(`${own}.tar`);
  expect(a.diffIds.length).toBe(3);
  expect(a.diffIds).toEqual(b.diffIds);
  expect(a.config).toBe(b.config);
  expect(a.manifestDigest).toBe(b.manifestDigest);
  expect(JSON.parse(a.config)).toMatchObject({ config: { Env: expect.arrayContaining(['GREETING=hi']), WorkingDir: '/srv', Cmd: ['cat', '/srv/out.txt'] } });

  // Progress: the frontend image is pulled as a step, and its stderr shows under [frontend];
  // it saw buildkitd's environment and a read-only frontend.bin.
  expect(external.stderr).toContain(`docker-image://${frontendRef}@sha256:`);
  expect(external.stderr).toMatch(/\[frontend\]/);
  const banner = /kiln-test-frontend: (.*)/.exec(external.stderr)?.[1] ?? '';
  expect(banner).toMatch(/^product=buildkit session=set workers=kiln opts=\S*cmdline,\S*filename,\S*source\S* frontend\.bin=\d+ bytes writable=no$/);
  expect(inProcess.stderr).not.toContain('kiln-test-frontend');
  // the frontend's writable root and its container are gone
  expect(await readdir(join(sb.root, 'executor')).catch(() => [])).toEqual([]);
  const snapshots = new LocalSnapshotter({ root: sb.root });
  await snapshots.init();
  expect((await snapshots.list()).filter((s) => s.kind === 'active').map((s) => s.id)).toEqual([]);
}, 300_000);

test('--frontend <image> runs the image for a Dockerfile without a syntax line', async () => {
  const t = token();
  const ctx = join(sb.dir, `flag-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile('# plain', t), 'hello.txt': 'hello flag\n' });
  // Nothing of kiln's own environment, its secrets or its ssh agent reaches the frontend (buildkitd
  // passes the image Env and BUILDKIT_* only).
  await writeFile(join(sb.dir, `secret-${t}`), 'kiln-leak-secret');
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '--frontend', frontendRef, '--secret', `id=s,src=${join(sb.dir, `secret-${t}`)}`, '-o', `type=local,dest=${ctx}.out`], {
    env: { KILN_LEAK_PROBE: 'kiln-leak-host', SSH_AUTH_SOCK: '/tmp/kiln-leak-agent.sock' },
  });
  expect(r.code).toBe(0);
  expect(await readFile(join(`${ctx}.out`, 'srv/out.txt'), 'utf8')).toBe(`HELLO FLAG\n${t}\n`);
  expect(r.stderr).toMatch(/kiln-test-frontend: .*opts=\S*source/);
  expect(/kiln-test-frontend-env: (.*)/.exec(r.stderr)?.[1]).toBe('BUILDKIT_EXPORTEDPRODUCT,BUILDKIT_SESSION_ID,BUILDKIT_WORKERS,HOME,NODE_OPTIONS,PATH leaked=false');
}, 300_000);

test('--call=outline and --call=targets,format=json through a frontend image answer as in process (metadata-only results over LLBBridge)', async () => {
  const t = token();
  const ctx = join(sb.dir, `call-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM scratch AS base\n# app the app ${t}\nFROM base AS app\n# V the version\nARG V=1\nRUN --mount=type=secret,id=tok --mount=type=ssh true\n` });
  for (const call of ['--call=outline', '--call=outline,format=json', '--call=targets,format=json']) {
    const external = await runKiln(sb, ['build', ctx, '--root', sb.root, '--frontend', frontendRef, call, '--build-arg', 'V=2']);
    const inProcess = await runKiln(sb, ['build', ctx, '--root', sb.root, call, '--build-arg', 'V=2']);
    expect(external.code).toBe(0);
    expect(external.stderr).toMatch(/kiln-test-frontend: .*opts=\S*requestid/);
    expect(external.stdout).toBe(inProcess.stdout);
  }
  const text = await runKiln(sb, ['build', ctx, '--root', sb.root, '--frontend', frontendRef, '--call=outline', '--build-arg', 'V=2']);
  expect(text.stdout).toBe(`TARGET:      app\nDESCRIPTION: the app ${t}\n\nBUILD ARG   VALUE   DESCRIPTION\nV           2       the version\n\nSECRET   REQUIRED\ntok      \n\nSSH       REQUIRED\ndefault   \n\n`);
}, 300_000);

test('a named context with the frontend image\'s name wins: --build-context NAME=docker-image://REF runs REF', async () => {
  const t = token();
  const ctx = join(sb.dir, `named-${t}`);
  // example.invalid resolves nowhere: only the named context can make this build work
  await writeTree(ctx, { Dockerfile: multiStageDockerfile('# syntax=example.invalid/frontend:1', t), 'hello.txt': 'named\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '--build-context', `example.invalid/frontend:1=docker-image://${frontendRef}`, '-o', `type=local,dest=${ctx}.out`]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(`docker-image://${frontendRef}@sha256:`);
  expect(r.stderr).toContain('kiln-test-frontend: ');
  expect(await readFile(join(`${ctx}.out`, 'srv/out.txt'), 'utf8')).toBe(`NAMED\n${t}\n`);
}, 300_000);

test('a frontend image from an OCI layout directory runs offline: --build-context NAME=oci-layout://DIR:TAG', async () => {
  const t = token();
  const layout = join(sb.dir, `layout-${t}`);
  execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${frontendRef}`, `oci:${layout}:fe`]);
  const ctx = join(sb.dir, `layout-ctx-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile('# syntax=example.invalid/offline-frontend:1', t), 'hello.txt': 'offline\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '--build-context', `example.invalid/offline-frontend:1=oci-layout://${layout}:fe`, '-o', `type=local,dest=${ctx}.out`]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain('kiln-test-frontend: ');
  expect(await readFile(join(`${ctx}.out`, 'srv/out.txt'), 'utf8')).toBe(`OFFLINE\n${t}\n`);
}, 300_000);

test('a frontend that exits without returning fails the build, naming the image and its last stderr line', async () => {
  const t = token();
  const ctx = join(sb.dir, `broken-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile(`# syntax=${brokenRef}`, t), 'hello.txt': 'x\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(new RegExp(`error KLN0611: frontend ${brokenRef.replace(/[.]/g, '\\.')}@sha256:[0-9a-f]{64} exited with status 3 without returning a result: oops`));
  // its stderr was shown as it came, under the frontend step
  expect(r.stderr).toMatch(/starting[\s\S]*oops/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}, 300_000);

test('errors through the frontend: a failing RUN keeps its Dockerfile line, command and output', async () => {
  const t = token();
  const run = join(sb.dir, `fail-${t}`);
  await writeTree(run, { Dockerfile: `# syntax=${frontendRef}\nFROM busybox\nRUN echo about-to-fail-${t} && exit 7\n` });
  const r = await runKiln(sb, ['build', run, '--root', sb.root, '--progress=plain']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/error \S+: Dockerfile:3:1: process "\/bin\/sh -c echo about-to-fail-\S+ && exit 7" did not complete successfully: exit code: 7/);
  expect(r.stderr).toContain(`> about-to-fail-${t}`);
}, 300_000);

/** The error block `kiln build` printed: from `kiln: error` to the end, without the codes before the first colon. */
function errorBlock(stderr: string): string {
  const at = stderr.lastIndexOf('kiln: error');
  return at < 0 ? '' : stderr.slice(at).replace(/^kiln: error[^:]*: /, '').trimEnd();
}

test('a Dockerfile error through the frontend is the frontend Return error (KLN0610) shown as in process: FILE:LINE:COL, its code, the line, the hint', async () => {
  const t = token();
  const bad = join(sb.dir, `bad-${t}`);
  const own = join(sb.dir, `bad-own-${t}`);
  // Line 1 differs (the syntax line); the error is on line 3, column 5, in both.
  await writeTree(bad, { Dockerfile: `# syntax=${frontendRef}\nFROM busybox\nRUN --mount=type=cach,target=/c true\n` });
  await writeTree(own, { Dockerfile: '# syntax=docker/dockerfile:1\nFROM busybox\nRUN --mount=type=cach,target=/c true\n' });
  const b = await runKiln(sb, ['build', bad, '--root', sb.root, '--progress=plain']);
  const inProcess = await runKiln(sb, ['build', own, '--root', sb.root, '--progress=plain']);
  expect(b.code).toBe(1);
  expect(inProcess.code).toBe(1);
  expect(b.stderr).toContain('kiln: error KLN0610: Dockerfile:3:5: unsupported mount type "cach" (did you mean "cache"?) [KLN0412]\n  3 | RUN --mount=type=cach,target=/c true\n    |     ^\n');
  expect(errorBlock(inProcess.stderr)).toMatch(/^Dockerfile:3:5: unsupported mount type "cach"[^\n]*\n  3 \| RUN --mount/);
  expect(errorBlock(b.stderr)).toBe(errorBlock(inProcess.stderr));
}, 300_000);

test('an image that does not exist fails clearly', async () => {
  const t = token();
  const ctx = join(sb.dir, `missing-${t}`);
  const missing = `${registry.host}/no-such-frontend:1`;
  await writeTree(ctx, { Dockerfile: multiStageDockerfile(`# syntax=${missing}`, t), 'hello.txt': 'x\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain']);
  expect(r.code).toBe(1);
  // At the directive, with its line and a caret (the frontend name is the Dockerfile's first line).
  expect(r.stderr).toContain(`error KLN0607: Dockerfile:1:1: cannot resolve frontend image ${missing}\n  1 | # syntax=${missing}\n    | ^\n`);
}, 300_000);

test('Ctrl-C while the frontend runs: exit 130, its container is killed, nothing of it stays', async () => {
  const t = token();
  const ctx = join(sb.dir, `hang-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile(`# syntax=${hangingRef}`, t), 'hello.txt': 'x\n' });
  let sent = false;
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain'], {
    onStderr: (text, child) => {
      if (!sent && text.includes('frontend-waiting')) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  expect(sent).toBe(true);
  expect(r.code).toBe(130);
  expect(r.stderr).toContain('interrupted');
  await expect.poll(() => processesMatching('sleep 1013'), { timeout: 10_000 }).toEqual([]);
  expect(await readdir(join(sb.root, 'executor')).catch(() => [])).toEqual([]);
  const snapshots = new LocalSnapshotter({ root: sb.root });
  await snapshots.init();
  expect((await snapshots.list()).filter((s) => s.kind === 'active').map((s) => s.id)).toEqual([]);
}, 300_000);
