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
  parseOutputSpec,
  runExport,
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

/** An image with one uncompressed layer holding an incompressible file of `size` bytes. */
async function makeImage(store, size) {
  const data = randomBytes(size);
  const w = await store.openWriter();
  for await (const c of packUstar([{ header: { name: 'blob.bin', type: 'file', mode: 0o644, size, mtime: new Date(0) }, data }])) await w.write(c);
  const layer = await w.commit();
  const img = await writeImage(store, [{ descriptor: { mediaType: MediaTypes.ociLayer, ...layer }, diffID: layer.digest }], { os: 'linux', architecture: 'amd64' });
  return { ...img, layerSize: layer.size };
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
    const img = await makeImage(store, SIZE);
    const mb = img.layerSize / 1e6;
    const rows = [];
    const client = new RegistryClient();
    const REPS = 3;
    // Each case runs REPS times into fresh repositories / stores; the median is reported.
    const measure = async (name, fn) => {
      const times = [];
      for (let i = 0; i < REPS; i++) times.push(await time(() => fn(i)));
      times.sort((a, b) => a - b);
      rows.push([name, times[Math.floor(REPS / 2)], times[0]]);
    };
    await measure('kiln push (monolithic PUT)', (i) => pushImage(client, store, img.manifest, [`${reg.host}/bench/mono${i}:1`]));
    await measure('kiln push (8 MiB PATCH chunks)', (i) => pushImage(client, store, img.manifest, [`${reg.host}/bench/chunked${i}:1`], { chunkSize: 8 * 1024 * 1024 }));
    await measure('kiln pull (resolve, verify, fsync into store)', async (i) => {
      const fresh = await ContentStore.open(join(dir, `pull${i}`));
      await new RegistryClient().pull(`${reg.host}/bench/mono0:1`, fresh);
    });
    await measure('kiln push (cross-repo mount)', (i) => pushImage(client, store, img.manifest, [`${reg.host}/bench/mounted${i}:1`], { mountFrom: [`${reg.host}/bench/mono0`] }));
    // skopeo gets a fresh layer per run: it would otherwise mount the blobs kiln already pushed.
    const layouts = [];
    for (let i = 0; i < REPS; i++) {
      const own = await makeImage(store, SIZE);
      await writeOciLayoutDir(store, join(dir, `layout${i}`), [{ descriptor: own.manifest, names: ['v1'] }]);
      layouts.push(join(dir, `layout${i}`));
    }
    await measure('skopeo copy oci: → docker:// (reference)', (i) =>
      exec('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layouts[i]}:v1`, `docker://${reg.host}/bench/skopeo${i}:1`]),
    );
    await measure('skopeo copy docker:// → dir: (reference)', (i) =>
      exec('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/bench/mono0:1`, `dir:${join(dir, `skopeo-pull${i}`)}`]),
    );
    process.stdout.write(`\nlayer: ${mb.toFixed(1)} MB incompressible, registry on 127.0.0.1 (plain http), median of ${REPS}\n\n| case | median s | best s | MB/s (median) |\n| --- | ---: | ---: | ---: |\n`);
    for (const [name, med, best] of rows) {
      process.stdout.write(`| ${name} | ${med.toFixed(3)} | ${best.toFixed(3)} | ${name.includes('mount') ? '—' : (mb / med).toFixed(0)} |\n`);
    }
    // Exporter share of "200 MB file exported as an OCI tarball": writing the tarball (temp file, fsync, rename).
    const big = await makeImage(store, 200 * 1024 * 1024);
    const oci = await time(() => runExport(parseOutputSpec(`type=oci,dest=${join(dir, 'big.tar')}`), { image: { descriptor: big.manifest } }, { store }));
    process.stdout.write(`\n| exporter | seconds | MB/s |\n| --- | ---: | ---: |\n| type=oci tarball of a ${(big.layerSize / 1e6).toFixed(0)} MB layer (stored blob → tar, fsync) | ${oci.toFixed(3)} | ${(big.layerSize / 1e6 / oci).toFixed(0)} |\n`);
  } finally {
    reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
