import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { kilnBin, parseRawJson, runKiln, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// `kiln bake` of targets that share one local context: each build syncs the context as its own
// local source (its own session), so the steps below it have digests of their own; the solver
// still runs a step they share once, because their cache keys meet once the context's checksum
// is known (BuildKit's edge merging).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

function bake(cwd: string, args: readonly string[]): Promise<KilnRun> {
  return new Promise((resolve, reject) => {
    // the outputs are beside the working directory: buildx's fs.write entitlement
    const child = spawn(process.execPath, [kilnBin, 'bake', '--root', sb.root, '--allow', 'fs.write=../out', ...args], { cwd, env: { ...process.env, PATH: sb.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr: Buffer.concat(err).toString(), stderrBytes: Buffer.concat(err) }));
  });
}

/**
 * Targets a and b: two Dockerfiles that share `FROM busybox`, `COPY . /src` and `shared` (a RUN
 * that appends to a file in a cache mount only this test uses, and writes a random stamp: two
 * runs would differ), then a step of their own. Both build the same context, `.`.
 */
async function project(t: string, shared: string): Promise<string> {
  const dir = join(sb.dir, `shared-ctx-${t}`);
  // b's shared step is on line 4, a's on line 3: each failure report names its own.
  const own = (name: string): string => ['FROM busybox', 'COPY . /src', ...(name === 'b' ? ['# b'] : []), shared, `RUN echo ${name} > /who`, ''].join('\n');
  await writeTree(join(dir, 'ctx'), {
    'a.Dockerfile': own('a'),
    'b.Dockerfile': own('b'),
    'hello.txt': `hello ${t}\n`,
    'docker-bake.hcl': [
      'group "default" { targets = ["a", "b"] }',
      'target "a" {',
      '  context = "."',
      '  dockerfile = "a.Dockerfile"',
      '  output = ["type=local,dest=../out/a"]',
      '}',
      'target "b" {',
      '  context = "."',
      '  dockerfile = "b.Dockerfile"',
      '  output = ["type=local,dest=../out/b"]',
      '}',
      '',
    ].join('\n'),
  });
  // a grant covers an existing directory (buildx: one that does not exist yet grants only itself)
  await mkdir(join(dir, 'out'));
  return dir;
}

test('two targets with the same local context: the RUN below COPY . /src runs once and both outputs hold its result; the progress shows it once', async () => {
  const t = token();
  const run = `RUN --mount=type=cache,id=count-${t},target=/count echo ran-${t} >> /count/runs && sleep 1 && cat /proc/sys/kernel/random/uuid > /stamp`;
  const dir = await project(t, run);
  const r = await bake(join(dir, 'ctx'), ['--progress', 'rawjson']);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  const stampA = await readFile(join(dir, 'out/a/stamp'), 'utf8');
  const stampB = await readFile(join(dir, 'out/b/stamp'), 'utf8');
  expect(stampA).toMatch(/^[0-9a-f-]{36}\n$/);
  expect(stampB).toBe(stampA);
  expect(await readFile(join(dir, 'out/a/who'), 'utf8')).toBe('a\n');
  expect(await readFile(join(dir, 'out/b/who'), 'utf8')).toBe('b\n');
  expect(await readFile(join(dir, 'out/b/src/hello.txt'), 'utf8')).toBe(`hello ${t}\n`);
  // One vertex for the shared RUN in bake's merged stream, shown as run (not CACHED) and done.
  const shared = parseRawJson(r.stderr).filter((v) => v.name.includes(`echo ran-${t}`));
  expect(shared).toHaveLength(1);
  expect(shared[0]).toMatchObject({ cached: false });
  expect(shared[0]?.completed).toBeGreaterThan(0);
  // The cache mount the RUN appends to says how often it ran: read it back with a later build.
  await writeTree(join(dir, 'count'), { Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=count-${t},target=/count cp /count/runs /runs\n` });
  const count = await runKiln(sb, ['build', join(dir, 'count'), '--root', sb.root, '--output', `type=local,dest=${join(dir, 'out/count')}`]);
  expect(count.stderr).not.toContain('kiln: error');
  expect(await readFile(join(dir, 'out/count/runs'), 'utf8')).toBe(`ran-${t}\n`);
}, 180_000);

test('a shared RUN that fails fails both targets, each with its own Dockerfile line, and runs once', async () => {
  const t = token();
  const dir = await project(t, `RUN echo failing-${t} && sleep 1 && exit 3`);
  // defer-error: no target is cancelled because the other failed; each fails on its own.
  const r = await bake(join(dir, 'ctx'), ['--progress', 'plain', '--execution', 'defer-error']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('KLN0857');
  expect(r.stderr).toMatch(/2 targets failed: a, b/);
  const report = (target: string): string => r.stderr.slice(r.stderr.indexOf(`target ${target} failed:`));
  expect(r.stderr).toContain('target a failed:');
  expect(r.stderr).toContain('target b failed:');
  expect(report('a')).toMatch(/a\.Dockerfile:3/);
  expect(report('b')).toMatch(/b\.Dockerfile:4/);
  expect(report('a')).toMatch(/exit code:? 3/);
  expect(report('b')).toMatch(/exit code:? 3/);
  // The step's output appears in the progress once: it ran once.
  expect(r.stderr.match(new RegExp(`^#\\d+ [\\d.]+ failing-${t}$`, 'gm'))).toHaveLength(1);
}, 180_000);
