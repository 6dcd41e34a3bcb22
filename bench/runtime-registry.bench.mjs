// Push/pull throughput of a 50 MB layer against a local docker-registry (127.0.0.1, plain http),
// next to `skopeo copy` of the same image as a reference. Needs `npm run build` first.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ContentStore,
  MediaTypes,
  RegistryClient,
  packUstar,
  pushImage,
  writeImage,
  writeOciLayoutDir,
} from '../runtime/dist/index.js';

const exec = promisify(execFile);
const SIZE = 50 * 1024 * 1024;

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRegistry(dir) {
  const port = await freePort();
  const cfg = join(dir, 'registry.yml');
  await writeFile(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'registry')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      await r.body?.cancel();
      if (r.ok) return { host: `127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill('SIGKILL');
  throw new Error('docker-registry did not start (apt-get install -y docker-registry)');
}

async function time(fn) {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function run() {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-bench-registry-'));
  const reg = await startRegistry(dir);
  try {
    const store = await ContentStore.open(join(dir, 'a'));
    const data = randomBytes(SIZE);
    // An uncompressed layer holding one incompressible 50 MB file.
    const w = await store.openWriter();
    for await (const c of packUstar([{ header: { name: 'blob.bin', type: 'file', mode: 0o644, size: SIZE, mtime: new Date(0) }, data }])) await w.write(c);
    const layer = await w.commit();
    const img = await writeImage(store, [{ descriptor: { mediaType: MediaTypes.ociLayer, ...layer }, diffID: layer.digest }], { os: 'linux', architecture: 'amd64' });
    const mb = layer.size / 1e6;
    const rows = [];
    const client = new RegistryClient();
    const push = await time(() => pushImage(client, store, img.manifest, [`${reg.host}/bench/mono:1`]));
    rows.push(['kiln push (monolithic PUT)', push]);
    const chunked = await time(() => pushImage(client, store, img.manifest, [`${reg.host}/bench/chunked:1`], { chunkSize: 8 * 1024 * 1024 }));
    rows.push(['kiln push (8 MiB PATCH chunks)', chunked]);
    const pull = await time(async () => {
      const fresh = await ContentStore.open(join(dir, 'b'));
      await new RegistryClient().pull(`${reg.host}/bench/mono:1`, fresh);
    });
    rows.push(['kiln pull (verify + fsync into store)', pull]);
    const mount = await time(() => pushImage(client, store, img.manifest, [`${reg.host}/bench/mounted:1`], { mountFrom: [`${reg.host}/bench/mono`] }));
    rows.push(['kiln push (cross-repo mount)', mount]);
    await writeOciLayoutDir(store, join(dir, 'layout'), [{ descriptor: img.manifest, names: ['v1'] }]);
    const skPush = await time(() => exec('skopeo', ['copy', '--dest-tls-verify=false', `oci:${join(dir, 'layout')}:v1`, `docker://${reg.host}/bench/skopeo:1`]));
    rows.push(['skopeo copy oci: → docker:// (reference)', skPush]);
    const skPull = await time(() => exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/bench/mono:1`, `dir:${join(dir, 'skopeo-pull')}`]));
    rows.push(['skopeo copy docker:// → dir: (reference)', skPull]);
    process.stdout.write(`\nlayer: ${mb.toFixed(1)} MB incompressible, registry on 127.0.0.1 (plain http)\n\n| case | seconds | MB/s |\n| --- | ---: | ---: |\n`);
    for (const [name, s] of rows) process.stdout.write(`| ${name} | ${s.toFixed(3)} | ${name.includes('mount') ? '—' : (mb / s).toFixed(0)} |\n`);
  } finally {
    reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
