#!/usr/bin/env node
// `npm run demo`: a real, offline multi-stage build with kiln.
//  1. checks prerequisites (root, runc, busybox-static, overlayfs tools);
//  2. compiles the TypeScript packages if needed (tsc -b) and the CLI bundle (cli/scripts/bundle.mjs);
//  3. creates the busybox base image from the host's static busybox in the demo kiln root
//     (.kiln-demo/ in the repo, or $KILN_ROOT), under the name `busybox` — no registry needed:
//     kiln resolves `FROM busybox` from its own image store first;
//  4. builds examples/demo (two independent stages in parallel, a final stage that copies from
//     both and RUNs a script) into kiln's image store and an OCI tarball;
//  5. shows the result: skopeo's view of the OCI tarball, the files the image adds, and the
//     image's CMD run in a runc container.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const root = process.env.KILN_ROOT || join(repo, '.kiln-demo');
const example = join(repo, 'examples', 'demo');
const ociTar = join(root, 'out', 'kiln-demo.oci.tar');
const imageName = 'kiln-demo:latest';

const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const fail = (msg, hint) => {
  process.stderr.write(`demo: ${msg}\n${hint ? `hint: ${hint}\n` : ''}`);
  process.exit(1);
};
const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

step('checking prerequisites');
if (process.platform !== 'linux') fail('kiln runs builds with runc and overlayfs: Linux only');
if (process.getuid?.() !== 0) fail('the demo runs containers with runc and mounts overlayfs: run it as root', 'sudo npm run demo');
const missing = [];
if (!has('runc')) missing.push('runc');
if (!existsSync('/bin/busybox')) missing.push('busybox-static');
if (missing.length > 0) fail(`missing: ${missing.join(', ')}`, `apt-get install -y ${missing.join(' ')}`);
const skopeo = has('skopeo');
console.log(`root ok, runc ok, busybox-static ok${skopeo ? ', skopeo ok' : ' (skopeo not installed: apt-get install -y skopeo for the inspect step)'}`);
console.log(`kiln root: ${relative(process.cwd(), root) || root}${process.env.KILN_ROOT ? ' (KILN_ROOT)' : ''}`);

// Incremental: a no-op when dist/ is up to date, a rebuild after a checkout changed the sources.
step('compiling kiln (tsc -b, then the CLI bundle)');
const tscBin = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(tscBin)) fail('node_modules is missing', 'run npm ci first');
const tsc = spawnSync(process.execPath, [tscBin, '-b'], { cwd: repo, stdio: 'inherit' });
if (tsc.status !== 0) fail('tsc -b failed');
const bundle = spawnSync(process.execPath, [join(repo, 'cli', 'scripts', 'bundle.mjs')], { cwd: repo, stdio: 'inherit' });
if (bundle.status !== 0) fail('bundling the CLI failed');

const runtime = await import(join(repo, 'runtime', 'dist', 'index.js'));
step('creating the busybox base image from /bin/busybox');
mkdirSync(root, { recursive: true });
const content = await runtime.ContentStore.open(root);
const images = await runtime.ImageStore.open(root);
const base = await images.get('docker.io/library/busybox:latest');
if (base === undefined) {
  const img = await runtime.createBusyboxImage(content, { names: ['docker.io/library/busybox:latest'], images });
  console.log(`busybox -> ${img.manifest.digest} (${img.applets.length} applets, one ${img.layer.size}-byte layer)`);
} else {
  console.log(`busybox already in the kiln store: ${base.target.digest}`);
}

step(`kiln build examples/demo -t ${imageName} --output type=oci,dest=${relative(repo, ociTar)}`);
mkdirSync(join(root, 'out'), { recursive: true });
const t0 = Date.now();
const build = spawnSync(
  process.execPath,
  [join(repo, 'cli', 'bin', 'kiln.js'), 'build', example, '--root', root, '--progress', 'plain', '-t', imageName, '--output', `type=oci,dest=${ociTar},name=${imageName}`, '--output', `type=image,name=${imageName}`],
  { stdio: 'inherit' },
);
if (build.status !== 0) fail(`kiln build failed (exit ${build.status})`);
console.log(`build finished in ${((Date.now() - t0) / 1000).toFixed(2)}s (run \`npm run demo\` again: every step is CACHED)`);

step('the OCI tarball');
console.log(`${relative(process.cwd(), ociTar)}: ${(statSync(ociTar).size / 1024).toFixed(0)} KiB`);
if (skopeo) {
  const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${ociTar}`], { encoding: 'utf8' }));
  const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${ociTar}`], { encoding: 'utf8' }));
  console.log(`skopeo inspect: digest ${info.Digest}, ${info.Os}/${info.Architecture}, ${info.Layers.length} layers, created ${info.Created}`);
  console.log(`config: Cmd ${JSON.stringify(cfg.config?.Cmd)}, WorkingDir ${JSON.stringify(cfg.config?.WorkingDir ?? '')}`);
  for (const h of cfg.history ?? []) console.log(`  history: ${h.created_by ?? ''}${h.empty_layer ? ' (no layer)' : ''}`);
}

step(`files under /app in ${imageName}, and its CMD run in a runc container`);
const rec = await images.mustGet(`docker.io/library/${imageName}`);
const img = await runtime.resolveImage(runtime.storeFetcher(content), rec.target, runtime.hostPlatform());
const snapshotter = new runtime.LocalSnapshotter({ root });
let parent;
let chain;
for (const [i, layer] of img.manifest.layers.entries()) {
  const diffID = img.config.rootfs.diff_ids[i];
  chain = chain === undefined ? diffID : `sha256:${(await import('node:crypto')).createHash('sha256').update(`${chain} ${diffID}`).digest('hex')}`;
  const id = `layer-${chain.replace('sha256:', '')}`;
  const exists = await snapshotter.stat(id).then(() => true, () => false);
  if (!exists) await runtime.unpackLayer(snapshotter, id, parent, await content.readStream(layer.digest), { expectedDiffID: diffID });
  parent = id;
}
const runId = `demo-run-${process.pid}`;
await snapshotter.prepare(runId, parent);
try {
  const view = await snapshotter.mount(runId);
  try {
    execFileSync('ls', ['-l', join(view.path, 'app')], { stdio: 'inherit' });
  } finally {
    await view.release();
  }
  const executor = new runtime.RuncExecutor({ root });
  const cmd = [...(img.config.config?.Entrypoint ?? []), ...(img.config.config?.Cmd ?? [])];
  console.log(`$ ${cmd.join(' ')}`);
  const res = await executor.run({
    rootfs: await snapshotter.mounts(runId),
    process: { args: cmd, env: img.config.config?.Env ?? [], cwd: img.config.config?.WorkingDir || '/' },
    onOutput: (l) => console.log(l.line),
  });
  if (res.exitCode !== 0) fail(`the image's command exited with ${res.exitCode}`);
} finally {
  await snapshotter.remove(runId).catch(() => undefined);
}
console.log(`\n${bold('demo complete')}: inspect further with \`skopeo inspect oci-archive:${relative(process.cwd(), ociTar)}\` or \`node cli/bin/kiln.js du --root ${relative(process.cwd(), root) || root}\``);
