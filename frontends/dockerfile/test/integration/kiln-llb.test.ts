/**
 * `kiln llb` end to end: the built CLI (node cli/bin/kiln.js) resolves base images from a real
 * docker-registry holding the conformance fixture images, and prints LLB whose op digests are
 * BuildKit v0.11.6's (digests.txt) and writes its image config (image-config.json).
 *
 * The conformance Dockerfiles name `localhost:5000/…`, so the registry listens on
 * 127.0.0.1:5000 and the expected values come straight from the conformance data. When port
 * 5000 is taken, the registry gets a free port, the references are rewritten to it, and the
 * expectation is the in-process conversion through the independent OCI-layout resolver.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test as base } from 'vitest';
import { convertDockerfile } from '@kiln/dockerfile';
import { createHash } from 'node:crypto';
import { layoutResolver } from '../helpers/oci-layout-resolver.js';
import { buildCliOnce } from '../../../../scripts/test-cli-build.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../../', import.meta.url));
const conformance = join(repo, '../shared/conformance');
const casesDir = join(conformance, 'dockerfile2llb');
const imagesDir = join(conformance, 'images');
const KILN = join(repo, 'cli/bin/kiln.js');

interface Registry {
  readonly host: string;
  /** True when it serves as `localhost:5000`, the name the conformance data uses. */
  readonly exact: boolean;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

async function startRegistry(): Promise<Registry> {
  const binary = '/usr/bin/docker-registry';
  if (!existsSync(binary)) throw new Error(`${binary} not found: install it with \`apt-get install -y docker-registry\``);
  const exact = await portFree(5000);
  const port = exact ? 5000 : await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'kiln-llb-registry-'));
  const cfg = join(dir, 'config.yml');
  await writeFile(
    cfg,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child: ChildProcess = spawn(binary, ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: exact ? 'localhost:5000' : `127.0.0.1:${port}`,
    exact,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Push the fixture layouts with skopeo, digests preserved (checked against the images README). */
async function pushFixtures(host: string): Promise<void> {
  const readme = readFileSync(join(imagesDir, 'README.md'), 'utf8');
  const pushes: [string, string, boolean][] = [
    ['busybox', 'latest', false],
    ['busybox', '1.35', false],
    ['busybox-onbuild', 'latest', false],
    ['busybox-health', 'latest', false],
    ['files', 'latest', true],
  ];
  for (const [name, tag, all] of pushes) {
    const src = `oci:${join(imagesDir, name)}:${name === 'busybox' ? 'latest' : tag}`;
    await run('skopeo', ['copy', '--quiet', '--preserve-digests', ...(all ? ['--all'] : []), '--dest-tls-verify=false', src, `docker://${host.replace('localhost', '127.0.0.1')}/${name}:${tag}`]);
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host.replace('localhost', '127.0.0.1')}/${name}:${tag}`], { encoding: 'buffer' });
    const digest = `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
    expect(readme).toContain(`\`${name}/\``);
    expect(readme).toContain(digest);
  }
}


const test = base.extend<{ registry: Registry }>({
  registry: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      buildCliOnce();
      const r = await startRegistry();
      try {
        await pushFixtures(r.host);
        await use(r);
      } finally {
        await r.stop();
      }
    },
    { scope: 'file' },
  ],
});

interface Args {
  buildArgs?: Record<string, string>;
  target?: string;
  platform?: string;
}

async function kiln(args: readonly string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [KILN, ...args], { cwd, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const CASES = ['user', 'multistage-copy-from-stage', 'copy-from-image-and-index', 'onbuild-inherited', 'from-platform-flag', 'target-platform', 'build-arg-override'];

describe('kiln llb against a docker-registry', () => {
  test.for(CASES)('%s', async (name, { registry }) => {
    const dir = join(casesDir, name);
    const args = (existsSync(join(dir, 'args.json')) ? JSON.parse(readFileSync(join(dir, 'args.json'), 'utf8')) : {}) as Args;
    const work = await mkdtemp(join(tmpdir(), 'kiln-llb-'));
    try {
      let dockerfile = readFileSync(join(dir, 'Dockerfile'), 'utf8');
      if (!registry.exact) dockerfile = dockerfile.replaceAll('localhost:5000', registry.host);
      await mkdir(join(work, 'ctx'));
      await writeFile(join(work, 'ctx', 'Dockerfile'), dockerfile);
      const cli = [
        'llb', 'ctx', '--session-id', 'kiln-conformance', '--image-config', join(work, 'image.json'),
        ...(args.target === undefined ? [] : ['--target', args.target]),
        ...(args.platform === undefined ? [] : ['--platform', args.platform]),
        ...Object.entries(args.buildArgs ?? {}).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
      ];
      const res = await kiln(cli, work);
      // Build-check warnings (BuildKit's linter) may be printed; nothing else.
      expect(res.stderr.split('\n').filter((l) => l !== '' && !/^WARNING: ctx\/Dockerfile:\d+:\d+: \w+: /.test(l))).toEqual([]);
      expect(res.code).toBe(0);
      const got = res.stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { Digest: string }).Digest);
      const config = JSON.parse(await readFile(join(work, 'image.json'), 'utf8')) as unknown;
      if (registry.exact) {
        expect(new Set(got)).toEqual(new Set(readFileSync(join(dir, 'digests.txt'), 'utf8').split('\n').filter((l) => l !== '')));
        expect(config).toEqual(JSON.parse(readFileSync(join(dir, 'image-config.json'), 'utf8')));
      } else {
        const expected = await convertDockerfile(dockerfile, {
          buildArgs: args.buildArgs ?? {},
          ...(args.target === undefined ? {} : { target: args.target }),
          ...(args.platform === undefined ? {} : { targetPlatform: args.platform }),
          buildPlatforms: ['linux/amd64'],
          sessionId: 'kiln-conformance',
          metaResolver: layoutResolver(imagesDir, registry.host),
        });
        expect(new Set(got)).toEqual(new Set(expected.definition.def.map((b) => `sha256:${createHash('sha256').update(b).digest('hex')}`)));
        expect(config).toEqual(expected.imageConfig);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  test('a bad Dockerfile prints FILE:LINE:COL with the line, exits 1, no stack', async ({ registry }) => {
    const work = await mkdtemp(join(tmpdir(), 'kiln-llb-'));
    try {
      await writeFile(join(work, 'bad.Dockerfile'), `FROM ${registry.host}/busybox AS a\nCOPY --from=b /x /x\nFROM ${registry.host}/busybox AS b\nCOPY --from=a /y /y\n`);
      const res = await kiln(['llb', '-f', 'bad.Dockerfile', '.'], work);
      expect(res.code).toBe(1);
      expect(res.stdout).toBe('');
      const lines = res.stderr.split('\n');
      expect(lines[0]).toBe('bad.Dockerfile:4:1: circular dependency detected on stage: a [KLN0502]');
      expect(lines[1]).toBe('  4 | COPY --from=a /y /y');
      expect(res.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  test('an image missing from the registry names the FROM line', async ({ registry }) => {
    const work = await mkdtemp(join(tmpdir(), 'kiln-llb-'));
    try {
      await writeFile(join(work, 'Dockerfile'), `FROM ${registry.host}/busybox\nFROM ${registry.host}/nothing-here:1\nRUN true\n`);
      const res = await kiln(['llb', '--format', 'dot', '.'], work);
      expect(res.code).toBe(1);
      expect(res.stderr.split('\n')[0]).toMatch(/^Dockerfile:2:1: .*nothing-here:1.*\[KLN0503\]$/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
