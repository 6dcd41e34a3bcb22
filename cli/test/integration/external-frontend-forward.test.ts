import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { LocalSnapshotter } from '@kiln/runtime';
import { processesMatching, repo, runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';
import { frontendBundle, multiStageDockerfile, pushNodeFrontend, pushShellImage, readOci } from './external-frontend-image.js';

// A frontend image that forwards: `kiln build --frontend <A>` on a Dockerfile whose `# syntax=<B>`
// names another frontend image. kiln runs A (cli/dist/frontend.cjs in runc, no `cmdline` option:
// the gateway did no selection for an image), A's Dockerfile frontend forwards as BuildKit's does
// (LLBBridge Solve{Frontend: gateway.v0, FrontendOpt: opts + source + cmdline, FrontendInputs}),
// kiln runs B in a second container for that Solve, and B's result comes back through A's Return.
// The image must equal the in-process build of the same Dockerfile.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let registry: TestRegistry;
let outerRef = '';
let innerRef = '';
let hangingRef = '';

/** Written to stderr by each frontend (through the image's NODE_OPTIONS): its name and its source/cmdline options. */
function banner(name: string): string {
  return String.raw`
const env = process.env;
const opts = Object.keys(env).filter((k) => k.startsWith('BUILDKIT_FRONTEND_OPT_')).map((k) => env[k]);
process.stderr.write('kiln-forward-test ${name}: source=' + (opts.find((o) => o.startsWith('source=')) || 'source=-').slice(7) + ' cmdline=' + (opts.find((o) => o.startsWith('cmdline=')) || 'cmdline=-').slice(8) + '\n');
`;
}

const CAPS = 'moby.buildkit.frontend.inputs,moby.buildkit.frontend.contexts';

beforeAll(async () => {
  const bundle = frontendBundle(repo);
  registry = await startRegistry();
  const work = join(sb.dir, 'images');
  await mkdir(work);
  outerRef = `${registry.host}/kiln-frontend-outer:test`;
  innerRef = `${registry.host}/kiln-frontend-inner:test`;
  await pushNodeFrontend(work, outerRef, bundle, banner('outer'), CAPS);
  await pushNodeFrontend(work, innerRef, bundle, banner('inner'), CAPS);
  hangingRef = `${registry.host}/kiln-frontend-forward-hanging:test`;
  await pushShellImage(work, hangingRef, 'echo nested-frontend-waiting >&2; sleep 1017; echo never', CAPS);
}, 300_000);

afterAll(async () => {
  await registry?.stop();
});

test('--frontend <A> with # syntax=<B>: A forwards to gateway.v0, B builds, the image equals the in-process build', async () => {
  const t = token();
  const fwd = join(sb.dir, `fwd-${t}`);
  const own = join(sb.dir, `own-${t}`);
  const syntax = `${innerRef} --some-flag`;
  await writeTree(fwd, { Dockerfile: multiStageDockerfile(`# syntax=${syntax}`, t), 'hello.txt': 'hello forward\n' });
  await writeTree(own, { Dockerfile: multiStageDockerfile('# syntax=docker/dockerfile:1', t), 'hello.txt': 'hello forward\n' });
  const epoch = ['--build-arg', 'SOURCE_DATE_EPOCH=1700000000'];

  const forwarded = await runKiln(sb, ['build', fwd, '--root', sb.root, '--progress=plain', '--frontend', outerRef, ...epoch, '-o', `type=oci,dest=${fwd}.tar`]);
  expect(forwarded.stderr).not.toMatch(/error/i);
  expect(forwarded.code).toBe(0);
  // A ran as the image the build named (source only); B got the forward's source and cmdline.
  expect(forwarded.stderr).toContain(`kiln-forward-test outer: source=${outerRef} cmdline=-`);
  expect(forwarded.stderr).toContain(`kiln-forward-test inner: source=${innerRef} cmdline=${syntax}`);
  expect(forwarded.stderr).toContain(`docker-image://${innerRef}@sha256:`);

  const inProcess = await runKiln(sb, ['build', own, '--root', sb.root, '--progress=plain', ...epoch, '-o', `type=oci,dest=${own}.tar`]);
  expect(inProcess.code).toBe(0);
  const a = readOci(`${fwd}.tar`);
  const b = readOci(`${own}.tar`);
  expect(a.config).toBe(b.config);
  expect(a.manifestDigest).toBe(b.manifestDigest);
  expect(JSON.parse(a.config)).toMatchObject({ config: { Env: expect.arrayContaining(['GREETING=hi']), Cmd: ['cat', '/srv/out.txt'] } });
}, 300_000);

test('a # syntax= naming the very image the frontend runs from forwards once: the forwarded run (cmdline set) builds', async () => {
  const t = token();
  const ctx = join(sb.dir, `loop-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile(`# syntax=${outerRef}`, t), 'hello.txt': 'x\n' });
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '--frontend', outerRef, '-o', `type=local,dest=${ctx}.out`]);
  expect(r.code).toBe(0);
  expect(r.stderr.match(/kiln-forward-test outer:/g)?.length).toBe(2);
  expect(r.stderr).toContain(`kiln-forward-test outer: source=${outerRef} cmdline=${outerRef}`);
}, 300_000);

test('Ctrl-C while A waits for the nested frontend B it forwarded to: exit 130, both containers are killed, nothing of them stays', async () => {
  const t = token();
  const ctx = join(sb.dir, `hang-${t}`);
  await writeTree(ctx, { Dockerfile: multiStageDockerfile(`# syntax=${hangingRef}`, t), 'hello.txt': 'x\n' });
  let sent = false;
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress=plain', '--frontend', outerRef], {
    onStderr: (text, child) => {
      if (!sent && text.includes('nested-frontend-waiting')) {
        sent = true;
        child.kill('SIGINT');
      }
    },
  });
  expect(sent).toBe(true);
  expect(r.code).toBe(130);
  expect(r.stderr).toContain('interrupted');
  // A ran (its banner) and forwarded to B, which was running when the build was interrupted.
  expect(r.stderr).toContain(`kiln-forward-test outer: source=${outerRef} cmdline=-`);
  await expect.poll(() => processesMatching('sleep 1017'), { timeout: 10_000 }).toEqual([]);
  expect(await readdir(join(sb.root, 'executor')).catch(() => [])).toEqual([]);
  const snapshots = new LocalSnapshotter({ root: sb.root });
  await snapshots.init();
  expect((await snapshots.list()).filter((s) => s.kind === 'active').map((s) => s.id)).toEqual([]);
}, 300_000);
