// Dockerfile → LLB: a generated 2,000-instruction, 20-stage Dockerfile.
//  1. in-process convertDockerfile (image resolution cached: one lookup served from memory),
//  2. the whole `node cli/bin/kiln.js llb` process against a loopback docker-registry
//     (process start, parse, registry lookups, conversion, JSON output).
// BuildKit v0.11.6's dockerfile2llb takes about 0.73 s for (2) on this machine.
// Run `npm run build` first; (2) needs docker-registry and skopeo.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { convertDockerfile, parseDockerfile } from '../frontends/dockerfile/dist/index.js';

const exec = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const busybox = fileURLToPath(new URL('../../shared/conformance/images/busybox', import.meta.url));
const KILN = join(repo, 'cli/bin/kiln.js');

/** 20 stages × 100 instructions (FROM included) = 2,000; the last stage copies from all others. */
export function generateDockerfile(stages = 20, perStage = 100) {
  const lines = ['ARG REGISTRY=localhost:5000', 'ARG VERSION=1.0'];
  for (let s = 0; s < stages; s++) {
    lines.push(`FROM \${REGISTRY}/busybox AS stage${s}`);
    let n = 1;
    const add = (l) => {
      if (n < perStage) {
        lines.push(l);
        n++;
      }
    };
    add('ARG VERSION');
    add(`ENV STAGE=${s} APP_HOME=/app/${s}`);
    add('WORKDIR $APP_HOME');
    if (s === stages - 1) for (let p = 0; p < stages - 1; p++) add(`COPY --from=stage${p} /app/${p}/out /imported/${p}/`);
    for (let i = 0; n < perStage; i++) {
      switch (i % 10) {
        case 0: add(`RUN echo "step ${i} of $STAGE" > out-${i}.txt && ls -la /app`); break;
        case 1: add(`COPY src/file-${s}-${i}.txt config/ ./data/${i}/`); break;
        case 2: add(`ENV VAR_${i}=value-${i}-\${VERSION}`); break;
        case 3: add(`RUN --mount=type=cache,target=/root/.cache,id=c${s} --mount=type=bind,source=src,target=/src cp /src/* . || true`); break;
        case 4: add(`LABEL org.example.step${i}="stage ${s} step ${i}"`); break;
        case 5: add(`RUN <<EOF\nset -e\necho heredoc ${i}\nmkdir -p out\nEOF`); break;
        case 6: add(`EXPOSE ${8000 + i}/tcp`); break;
        case 7: add(i % 20 === 7 ? 'USER app' : 'USER root'); break;
        case 8: add(`ADD --chown=app:app assets/a-${i}.tar.gz /opt/assets/`); break;
        default: add(`RUN ["/bin/sh", "-c", "echo exec form ${i} >> out/log"]`);
      }
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The busybox fixture's digest and config, read once from its OCI layout. */
function busyboxResolver() {
  const blob = (d) => readFileSync(join(busybox, 'blobs', ...d.split(':')));
  const index = JSON.parse(readFileSync(join(busybox, 'index.json'), 'utf8'));
  const top = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'latest');
  const manifest = JSON.parse(blob(top.digest).toString('utf8'));
  const config = blob(manifest.config.digest);
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    resolveImageConfig() {
      calls++;
      return Promise.resolve({ digest: top.digest, config });
    },
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${ms.toFixed(1)} ms`;

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startRegistry(dir) {
  const port = await freePort();
  const cfg = join(dir, 'registry.yml');
  await writeFile(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const child = spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.ok) return { host: `127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('docker-registry did not start');
}

export async function run() {
  const text = generateDockerfile();
  const parsed = parseDockerfile(text);
  const instructions = parsed.stages.reduce((n, s) => n + 1 + s.commands.length, 0);
  process.stdout.write(`generated Dockerfile: ${instructions} instructions, ${parsed.stages.length} stages, ${text.length} bytes\n\n`);

  // 1. in-process conversion
  const resolver = busyboxResolver();
  const opts = { metaResolver: resolver, targetPlatform: 'linux/amd64', buildPlatforms: ['linux/amd64'], sessionId: 'bench' };
  let res;
  for (let i = 0; i < 3; i++) res = await convertDockerfile(text, opts);
  const times = [];
  const parseTimes = [];
  for (let i = 0; i < 15; i++) {
    let t = performance.now();
    parseDockerfile(text);
    parseTimes.push(performance.now() - t);
    t = performance.now();
    res = await convertDockerfile(text, opts);
    times.push(performance.now() - t);
  }
  process.stdout.write('| measurement | median | min |\n| --- | --- | --- |\n');
  process.stdout.write(`| parse only (parseDockerfile) | ${fmt(median(parseTimes))} | ${fmt(Math.min(...parseTimes))} |\n`);
  process.stdout.write(`| in-process convertDockerfile (${res.definition.def.length} ops) | ${fmt(median(times))} | ${fmt(Math.min(...times))} |\n`);

  // 2. the whole CLI process against a loopback registry
  if (!existsSync('/usr/bin/docker-registry') || !existsSync(KILN)) {
    process.stdout.write('| kiln llb process | skipped: needs /usr/bin/docker-registry, skopeo and `npm run build` | |\n');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-bench-df-'));
  const reg = await startRegistry(dir);
  try {
    await exec('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', `oci:${busybox}:latest`, `docker://${reg.host}/busybox:latest`]);
    await writeFile(join(dir, 'Dockerfile'), text);
    const args = [KILN, 'llb', dir, '--build-arg', `REGISTRY=${reg.host}`, '--platform', 'linux/amd64', '--session-id', 'bench'];
    // The process rows never use a kiln daemon, even when one runs on the default socket.
    process.env.KILN_DAEMON = '0';
    const first = await exec('node', args, { maxBuffer: 1 << 28 });
    const ops = first.stdout.split('\n').filter((l) => l !== '').length;
    // wall time, plus CPU time (user+sys, via /usr/bin/time when present): CPU time is less
    // sensitive to other load on the machine than wall time.
    const timed = async (argv) => {
      const useTime = existsSync('/usr/bin/time');
      const t = performance.now();
      const r = useTime ? await exec('/usr/bin/time', ['-f', '%U %S', ...argv], { maxBuffer: 1 << 28 }) : await exec(argv[0], argv.slice(1), { maxBuffer: 1 << 28 });
      const wall = performance.now() - t;
      const cpu = useTime ? r.stderr.trim().split('\n').pop().split(' ').reduce((a, b) => a + Number(b) * 1000, 0) : NaN;
      return { wall, cpu };
    };
    const kiln = [];
    const boot = [];
    for (let i = 0; i < 7; i++) {
      kiln.push(await timed(['node', ...args]));
      boot.push(await timed(['node', '-e', '0']));
    }
    const row = (label, xs) =>
      `| ${label} | ${fmt(median(xs.map((x) => x.wall)))} | ${fmt(Math.min(...xs.map((x) => x.wall)))} | ${fmt(median(xs.map((x) => x.cpu)))} |\n`;
    process.stdout.write('\n| process | median wall | min wall | median CPU (user+sys) |\n| --- | --- | --- | --- |\n');
    process.stdout.write(row(`whole \`node cli/bin/kiln.js llb\` process, loopback registry (${ops} ops)`, kiln));
    process.stdout.write(row('bare `node -e 0` start-up, same moment (load indicator)', boot));
    // 3. the same command as a client of a running `kiln daemon` (started, and used once, untimed)
    const sock = join(dir, 'kilnd.sock');
    const daemon = spawn(process.execPath, [KILN, 'daemon', '--root', join(dir, 'root'), '--addr', `unix://${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      await new Promise((resolve, reject) => {
        let log = '';
        daemon.stderr.on('data', (d) => {
          log += d;
          if (log.includes('serving ')) resolve();
        });
        daemon.once('exit', (c) => reject(new Error(`kiln daemon exited ${c}: ${log}`)));
      });
      const launcher = join(repo, 'cli/bin/kiln');
      const viaDaemon = args.slice(1);
      delete process.env.KILN_DAEMON;
      process.env.KILN_HOST = `unix://${sock}`;
      const check = await exec(launcher, viaDaemon, { maxBuffer: 1 << 28 });
      if (check.stdout !== first.stdout) throw new Error('kiln llb through the daemon printed something else');
      const warm = [];
      for (let i = 0; i < 7; i++) warm.push(await timed([launcher, ...viaDaemon]));
      process.stdout.write(row('the same `kiln llb` as a client of a running `kiln daemon` (same output)', warm));
    } finally {
      delete process.env.KILN_HOST;
      daemon.kill('SIGTERM');
    }
    process.stdout.write('| BuildKit v0.11.6 dockerfile2llb, whole process (reference, idle machine) | 730 ms | | |\n');
    process.stdout.write(`\nload average at the end: ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
  } finally {
    reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
