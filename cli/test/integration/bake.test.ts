import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { LocalSnapshotter } from '@kiln/runtime';
import { kilnBin, parseRawJson, processesMatching, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// `kiln bake` end to end: real runc, the busybox base image, several targets in one engine.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** Runs `kiln bake …` in `cwd` (bake files and contexts resolve against it, as buildx's). */
function bake(cwd: string, args: readonly string[], env: Record<string, string> = {}, onStderr?: (text: string, child: ChildProcess) => void): Promise<KilnRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, 'bake', '--root', sb.root, ...args], { cwd, env: { ...process.env, PATH: sb.path, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      onStderr?.(Buffer.concat(err).toString(), child);
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr: Buffer.concat(err).toString(), stderrBytes: Buffer.concat(err) }));
  });
}

/** `kiln images` of the sandbox root. */
async function runKilnImages(): Promise<string> {
  const r = await runKiln(sb, ['images', '--root', sb.root]);
  expect(r.code).toBe(0);
  return r.stdout;
}

/** A project whose targets a and b share the stage `shared` (its RUN writes a random uuid: two runs would differ). */
async function project(t: string): Promise<string> {
  const dir = join(sb.dir, `bake-${t}`);
  await writeTree(dir, {
    Dockerfile: [
      'FROM busybox AS shared',
      `RUN echo shared-${t} && cat /proc/sys/kernel/random/uuid > /stamp`,
      'FROM busybox AS build-a',
      'ARG MSG=a-default',
      `RUN echo "$MSG" > /msg && echo a-${t}`,
      'FROM scratch AS a',
      'COPY --from=shared /stamp /stamp',
      'COPY --from=build-a /msg /msg',
      'FROM scratch AS b',
      'COPY --from=shared /stamp /stamp',
      'COPY b.txt /b.txt',
      'FROM busybox AS bad',
      `RUN echo failing-${t} && exit 3`,
      '',
    ].join('\n'),
    'b.txt': 'from b\n',
  });
  return dir;
}

test('a JSON bake file: two targets run at once, the shared stage runs once, each target exports; --set overrides', async () => {
  const t = token();
  const dir = await project(t);
  await writeTree(dir, {
    'docker-bake.json': JSON.stringify({
      group: { default: { targets: ['a', 'b'] } },
      target: {
        base: { context: '.', args: { MSG: 'from-file' } },
        a: { inherits: ['base'], target: 'a', output: ['type=local,dest=out/a'] },
        b: { inherits: ['base'], target: 'b', output: ['type=local,dest=out/b'] },
      },
    }),
  });
  const before = await sb.containersStarted();
  const r = await bake(dir, ['--progress', 'plain', '--set', 'a.args.MSG=from-set']);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  // Two containers: the shared RUN once, build-a's RUN once.
  expect((await sb.containersStarted()) - before).toBe(2);
  const stampA = await readFile(join(dir, 'out/a/stamp'), 'utf8');
  expect(stampA).toMatch(/^[0-9a-f-]{36}\n$/);
  expect(await readFile(join(dir, 'out/b/stamp'), 'utf8')).toBe(stampA);
  expect(await readFile(join(dir, 'out/a/msg'), 'utf8')).toBe('from-set\n');
  expect(await readFile(join(dir, 'out/b/b.txt'), 'utf8')).toBe('from b\n');
  // One progress stream; each step line names its target; the shared RUN's output shows once.
  expect(r.stderr).toMatch(/\[(a|b)\] \[shared 2\/2\] RUN echo shared-/);
  expect(r.stderr).toMatch(/\[a\] \[build-a 2\/2\] RUN echo/);
  expect(r.stderr.split('\n').filter((l) => l.includes(`shared-${t}`) && !l.includes('RUN')).length).toBe(1);
  expect(r.stderr).toMatch(/\[a\] local .*out\/a/);
}, 240_000);

test('--print shows the resolved definition as buildx does and builds nothing', async () => {
  const t = token();
  const dir = await project(t);
  await writeTree(dir, {
    'docker-bake.json': JSON.stringify({
      group: { default: { targets: ['all'] }, all: { targets: ['a', 'b'] } },
      target: {
        base: { args: { MSG: 'x', NOPE: null }, tags: ['base:1'], 'cache-from': ['type=local,src=c1'] },
        a: { inherits: ['base'], target: 'a', tags: ['a:1'], 'cache-from': ['type=local,src=c2'] },
        b: { inherits: ['base'], target: 'b', dockerfile: 'other.Dockerfile' },
      },
    }),
  });
  const before = await sb.containersStarted();
  const r = await bake(dir, ['--print', '--set', '*.platform=linux/amd64', '--set', 'b.tags+=b:extra']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual({
    group: { all: { targets: ['a', 'b'] }, default: { targets: ['all'] } },
    target: {
      a: { context: '.', dockerfile: 'Dockerfile', args: { MSG: 'x' }, tags: ['a:1'], 'cache-from': ['type=local,src=c1', 'type=local,src=c2'], target: 'a', platforms: ['linux/amd64'] },
      b: { context: '.', dockerfile: 'other.Dockerfile', args: { MSG: 'x' }, tags: ['base:1', 'b:extra'], 'cache-from': ['type=local,src=c1'], target: 'b', platforms: ['linux/amd64'] },
    },
  });
  expect(await sb.containersStarted()).toBe(before);
  // buildx's key order: context before dockerfile before args.
  expect(r.stdout.indexOf('"context"')).toBeLessThan(r.stdout.indexOf('"dockerfile"'));
}, 60_000);

test('--execution defer-error: the independent target finishes and exports past a failure, sharing a step the failed one also used; the dependent does not start', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-defer-error-${t}`);
  // bad fails in a stage of its own while the stage it shares with good is still running. good's
  // whole build is a step of bad's (bad, first to start, computed its key): good needs shared
  // through it, and shared must go on when bad leaves it. slowbad, bad's alone, is stopped then.
  const sync = `--mount=type=cache,id=sync-${t},target=/sync`;
  await writeTree(dir, {
    Dockerfile: [
      'FROM busybox AS shared',
      `RUN echo shared-${t} && sleep 2 && cat /proc/sys/kernel/random/uuid > /stamp`,
      'FROM busybox AS slowbad',
      `RUN ${sync} touch /sync/slowbad && echo slowbad-${t} && sleep 20 && touch /done`,
      'FROM busybox AS failer',
      `RUN ${sync} for i in $(seq 1 200); do [ -f /sync/slowbad ] && break; sleep 0.05; done; echo failing-${t} && exit 3`,
      'FROM scratch AS good',
      'COPY --from=shared /stamp /stamp',
      'FROM good AS bad',
      'COPY --from=failer /bin/busybox /x',
      'COPY --from=slowbad /done /done',
      '',
    ].join('\n'),
    'docker-bake.hcl': [
      'target "good" {\n  target = "good"\n  output = ["type=local,dest=out/good"]\n}',
      'target "bad" {\n  target = "bad"\n  output = ["type=local,dest=out/bad"]\n}',
      'target "app" {',
      '  contexts = { base = "target:bad" }',
      `  dockerfile-inline = "FROM base\\nRUN echo app-ran-${t}\\n"`,
      '  output = ["type=local,dest=out/app"]',
      '}',
    ].join('\n'),
  });
  const before = await sb.containersStarted();
  const r = await bake(dir, ['good', 'bad', 'app', '--execution', 'defer-error', '--metadata-file', 'meta.json', '--progress', 'plain']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('target bad failed:');
  expect(r.stderr).toMatch(/exit code:? 3/);
  expect(r.stderr).toContain('target app did not start: its context "base" is target "bad", which failed');
  expect(r.stderr).toContain('kiln: error KLN0857: 1 target failed: bad; 1 not started: app (--execution defer-error)');
  expect(r.stderr).not.toContain(`app-ran-${t}`);
  // The shared RUN ran once, to its end, for good; failer's and slowbad's RUNs are the others.
  expect((await sb.containersStarted()) - before).toBe(3);
  expect(processesMatching(`slowbad-${t} && sleep 20`)).toEqual([]);
  // slowbad shows as cancelled when bad leaves it, not only once good is done too.
  const slowbad = /#(\d+) \[bad\] \[slowbad 2\/2\] RUN/.exec(r.stderr)?.[1];
  const shared = /#(\d+) \[\w+\] \[shared 2\/2\] RUN/.exec(r.stderr)?.[1];
  expect(r.stderr.indexOf(`#${slowbad} CANCELED`)).toBeGreaterThan(0);
  expect(r.stderr.indexOf(`#${slowbad} CANCELED`)).toBeLessThan(r.stderr.indexOf(`#${shared} DONE`));
  expect(await readFile(join(dir, 'out/good/stamp'), 'utf8')).toMatch(/^[0-9a-f-]{36}\n$/);
  await expect(stat(join(dir, 'out/bad'))).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(stat(join(dir, 'out/app'))).rejects.toMatchObject({ code: 'ENOENT' });
  // As buildx: with defer-error the metadata file is written, with the targets that succeeded.
  expect(Object.keys(JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as object)).toEqual(['good']);
  // buildx's closing step, one line per target.
  expect(r.stderr).toMatch(/#\d+ \[internal\] target results\n/);
  expect(r.stderr).toMatch(/#\d+ app: not started /);
  expect(r.stderr).toMatch(/#\d+ bad: failed /);
  expect(r.stderr).toMatch(/#\d+ good: succeeded /);
  expect(await runKilnImages()).not.toContain('kiln.local/bake/');
}, 240_000);

test('errors: no bake file, an unknown target, --load, a bad --set', async () => {
  const dir = join(sb.dir, `bake-err-${token()}`);
  await writeTree(dir, { 'x.txt': '' });
  const none = await bake(dir, []);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain('KLN0850');
  await writeTree(dir, { 'docker-bake.json': JSON.stringify({ target: { app: {} } }) });
  const unknown = await bake(dir, ['nope']);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain('KLN0853: failed to find target "nope"');
  expect(unknown.stderr).toContain('hint: defined: app');
  const load = await bake(dir, ['app', '--load']);
  expect(load.code).toBe(1);
  expect(load.stderr).toContain('KLN0855: --load is not applicable');
  const set = await bake(dir, ['app', '--set', 'app.colour=red']);
  expect(set.code).toBe(1);
  expect(set.stderr).toContain('KLN0854: unknown --set key "colour"');
  expect(set.stderr).not.toMatch(/\n\s+at /);
}, 60_000);

test('docker-bake.hcl: a variable from the environment, a matrix, dockerfile-inline and a target: context built first', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-hcl-${t}`);
  await writeTree(dir, {
    'docker-bake.hcl': [
      'variable "GREETING" { default = "hello" }',
      'group "default" { targets = ["app", "variant"] }',
      'target "base" {',
      '  dockerfile-inline = <<EOT',
      'FROM busybox',
      `RUN echo base-${t} && echo "\${GREETING}" > /greeting`,
      'EOT',
      '}',
      'target "app" {',
      '  contexts = { base = "target:base" }',
      '  dockerfile-inline = <<-EOT',
      '    FROM base',
      '    RUN cat /greeting > /app.txt',
      '    FROM scratch',
      '    COPY --from=0 /app.txt /',
      '    EOT',
      '  output = ["type=local,dest=out/app"]',
      '}',
      'target "variant" {',
      '  name = "variant-${v}"',
      '  matrix = { v = ["x", "y"] }',
      '  args = { V = v }',
      '  dockerfile-inline = "FROM busybox AS b\\nARG V\\nRUN echo $V > /v\\nFROM scratch\\nCOPY --from=b /v /v\\n"',
      '  output = ["type=local,dest=out/${v}"]',
      '}',
    ].join('\n'),
  });
  // The private image is kiln's own: resolving it asks no registry (a mirror of kiln.local sees
  // every request that would go there; kiln.local itself cost a DNS lookup, 2 s here).
  const asked: string[] = [];
  const mirror = createServer((req, res) => {
    asked.push(`${req.method ?? ''} ${req.url ?? ''}`);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
  await writeTree(dir, { 'kiln.toml': `[registry."kiln.local"]\n  mirrors = ["127.0.0.1:${(mirror.address() as AddressInfo).port}"]\n` });
  const r = await bake(dir, ['--progress', 'plain'], { GREETING: 'from-env', KILN_CONFIG: join(dir, 'kiln.toml') }).finally(() => mirror.close());
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(asked).toEqual([]);
  expect(await readFile(join(dir, 'out/app/app.txt'), 'utf8')).toBe('from-env\n');
  expect(await readFile(join(dir, 'out/x/v'), 'utf8')).toBe('x\n');
  expect(await readFile(join(dir, 'out/y/v'), 'utf8')).toBe('y\n');
  // The linked target ran (named in progress) and left no image behind in the store.
  expect(r.stderr).toMatch(/\[base\] \[2\/2\] RUN echo base-/);
  const images = await runKilnImages();
  expect(images).not.toContain('kiln.local/bake/');
  // --print lists the linked target as buildx does (output cacheonly) and the matrix targets.
  const p = await bake(dir, ['--print']);
  const printed = JSON.parse(p.stdout) as { target: Record<string, { output?: string[] }> };
  expect(Object.keys(printed.target).sort()).toEqual(['app', 'base', 'variant-x', 'variant-y']);
  expect(printed.target['base']?.output).toEqual(['type=cacheonly']);
}, 240_000);

test('a target: context that fails after its private image was written (a --cache-to it cannot write) leaves no private image', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-linkfail-${t}`);
  // A registry nobody serves: the export fails after the build (a local dest that is no
  // directory is refused before anything runs).
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await writeTree(dir, {
    'docker-bake.hcl': [
      'target "base" {',
      `  dockerfile-inline = "FROM busybox\\nRUN echo base-${t} > /b\\n"`,
      `  cache-to = ["type=registry,ref=127.0.0.1:${port}/c/cache"]`,
      '}',
      'target "app" {',
      '  contexts = { base = "target:base" }',
      '  dockerfile-inline = "FROM base\\nRUN cat /b\\n"',
      '}',
    ].join('\n'),
  });
  const r = await bake(dir, ['app', '--progress', 'plain']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('target base failed:');
  expect(r.stderr).toContain('target app did not start');
  expect(await runKilnImages()).not.toContain('kiln.local/bake/');
}, 60_000);

test('HCL errors print FILE:LINE:COL, the problem and a hint, no stack trace', async () => {
  const dir = join(sb.dir, `bake-hclerr-${token()}`);
  await writeTree(dir, { 'docker-bake.hcl': 'target "app" {\n  tags = ["app:${TAGG}"]\n}\nvariable "TAG" { default = "1" }\n' });
  const r = await bake(dir, ['app']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('kiln: error KLN0852: docker-bake.hcl:2:18: unknown variable "TAGG"');
  expect(r.stderr).toContain('hint: defined: TAG');
  expect(r.stderr).not.toMatch(/\n\s+at /);
}, 60_000);

test('BUILDX_BAKE_FILE_RELATIVE_PATHS=1 resolves the context against the bake file; by default it is the working directory', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-rel-${t}`);
  await writeTree(dir, {
    'sub/docker-bake.hcl': 'target "default" {\n  context = "ctx"\n  output = ["type=local,dest=out"]\n}\n',
    'sub/ctx/Dockerfile': 'FROM scratch\nCOPY f /f\n',
    'sub/ctx/f': `${t}\n`,
  });
  const cwdRelative = await bake(dir, ['-f', 'sub/docker-bake.hcl']);
  expect(cwdRelative.code).toBe(1);
  expect(cwdRelative.stderr).toMatch(/ctx.*no such|no such.*ctx/i);
  const fileRelative = await bake(dir, ['-f', 'sub/docker-bake.hcl', '--progress', 'quiet'], { BUILDX_BAKE_FILE_RELATIVE_PATHS: '1' });
  expect(fileRelative.stderr).not.toContain('error');
  expect(fileRelative.code).toBe(0);
  // Outputs still resolve against the working directory, as buildx's.
  expect(await readFile(join(dir, 'out/f'), 'utf8')).toBe(`${t}\n`);
}, 120_000);

test('--list, --var, --metadata-file, annotations on image outputs, --check', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-flags-${t}`);
  await writeTree(dir, {
    Dockerfile: `FROM busybox AS img\nRUN echo ${t} > /t\n`,
    'Dockerfile.lint': 'from busybox as build\nRUN true\n',
    'docker-bake.hcl': [
      'variable "TAG" {',
      '  default = "dev"',
      '  description = "the image tag"',
      '}',
      'variable "DEBUG" { default = false }',
      'group "default" {',
      '  description = "everything"',
      '  targets = ["img"]',
      '}',
      'target "img" {',
      '  description = "the image"',
      '  tags = ["example/img:${TAG}"]',
      '  annotations = ["org.opencontainers.image.title=img ${TAG}", "manifest,manifest-descriptor:org.example.both=yes"]',
      '  output = ["type=oci,dest=img.tar"]',
      '}',
      'target "lint" {',
      '  dockerfile = "Dockerfile.lint"',
      '}',
    ].join('\n'),
  });
  const list = await bake(dir, ['--list', 'targets']);
  expect(list.code).toBe(0);
  // buildx's table: a group's members after its description, tab-aligned (Go's tabwriter)
  expect(list.stdout).toBe('TARGET\tDESCRIPTION\ndefault\teverything (img)\nimg\tthe image\nlint\t\n');
  const vars = await bake(dir, ['--list', 'variables', '--var', 'TAG=v9'], { DEBUG: 'true' });
  expect(vars.stdout.split('\n').map((l) => l.replace(/\s+/g, ' ').trim())).toEqual(['VARIABLE TYPE VALUE DESCRIPTION', 'DEBUG bool true', 'TAG string v9 the image tag', '']);

  const r = await bake(dir, ['--var', 'TAG=v2', '--metadata-file', 'meta.json', '--progress', 'quiet'], { TAG: 'from-env' });
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  expect(Object.keys(meta)).toEqual(['img']);
  expect(meta['img']?.['image.name']).toBe('docker.io/example/img:v2');
  expect(meta['img']?.['containerimage.digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${join(dir, 'img.tar')}`], { encoding: 'utf8' })) as { annotations?: Record<string, string> };
  expect(raw.annotations).toMatchObject({ 'org.opencontainers.image.title': 'img v2', 'org.example.both': 'yes' });

  const check = await bake(dir, ['lint', '--check']);
  expect(check.code).toBe(1);
  expect(check.stdout).toMatch(/^lint:\n/);
  expect(check.stdout).toMatch(/FromAsCasing|ConsistentInstructionCasing/);
}, 240_000);

test('a compose.yaml (the default lookup): its services with a build section are built, a bake override file adds outputs', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-compose-${t}`);
  await writeTree(dir, {
    'compose.yaml': [
      'services:',
      '  cache:',
      '    image: redis',
      '  api:',
      '    build:',
      '      context: api',
      '      args:',
      '        NAME: ${API_NAME:-api}',
      '  worker:',
      '    build: worker',
      '',
    ].join('\n'),
    'docker-bake.override.hcl': 'target "api" { output = ["type=local,dest=out/api"] }\ntarget "worker" {\n  output = ["type=local,dest=out/worker"]\n  platforms = ["linux/amd64", "linux/arm64"]\n}\n',
    'api/Dockerfile': `FROM busybox AS b\nARG NAME\nRUN echo "$NAME ${t}" > /name\nFROM scratch\nCOPY --from=b /name /name\n`,
    'worker/Dockerfile': 'FROM scratch\nCOPY w.txt /w.txt\n',
    'worker/w.txt': 'worker\n',
  });
  const r = await bake(dir, ['--progress', 'plain'], { API_NAME: 'from-env' });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  expect(await readFile(join(dir, 'out/api/name'), 'utf8')).toBe(`from-env ${t}\n`);
  // Two platforms: one build, a directory per platform (as kiln build --platform A,B).
  expect(await readFile(join(dir, 'out/worker/linux_amd64/w.txt'), 'utf8')).toBe('worker\n');
  expect(await readFile(join(dir, 'out/worker/linux_arm64/w.txt'), 'utf8')).toBe('worker\n');
  const p = await bake(dir, ['--print']);
  expect(Object.keys((JSON.parse(p.stdout) as { target: object }).target)).toEqual(['api', 'worker']);
}, 240_000);

test('Ctrl-C stops every target: exit 130, one interrupt report, no container left', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-sigint-${t}`);
  await writeTree(dir, {
    'docker-bake.hcl': [
      'group "default" { targets = ["slow1", "slow2"] }',
      'target "slow1" { dockerfile-inline = "FROM busybox\\nRUN echo started1-' + t + ' && sleep 60 && echo done1-' + t + '\\n" }',
      'target "slow2" { dockerfile-inline = "FROM busybox\\nRUN echo started2-' + t + ' && sleep 60 && echo done2-' + t + '\\n" }',
    ].join('\n'),
  });
  let sent = false;
  const r = await bake(dir, ['--progress', 'plain'], {}, (text, child) => {
    if (!sent && text.includes(`started1-${t}\n`) && text.includes(`started2-${t}\n`)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  expect(sent).toBe(true);
  expect(r.code).toBe(130);
  expect(r.stderr.match(/interrupted/g)?.length).toBe(1);
  expect(r.stderr).not.toContain('target slow1 failed');
  await expect.poll(() => processesMatching(`-${t} && sleep 60`), { timeout: 10_000 }).toEqual([]);
}, 120_000);

test('with a kiln daemon serving the root, kiln bake runs in it (the caller\'s cwd and files), and a later build there is cached', async () => {
  const t = token();
  const dir = await project(t);
  await writeTree(dir, { 'docker-bake.json': JSON.stringify({ target: { a: { target: 'a', output: ['type=local,dest=out/a'] }, b: { target: 'b', output: ['type=local,dest=out/b'] } }, group: { default: { targets: ['a', 'b'] } } }) });
  const socket = join(sb.dir, `bake-daemon-${t}.sock`);
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const env = { KILN_HOST: `unix://${socket}` };
    const r = await bake(dir, ['--progress', 'quiet'], env);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    expect(await readFile(join(dir, 'out/b/stamp'), 'utf8')).toBe(await readFile(join(dir, 'out/a/stamp'), 'utf8'));
    // The daemon logs a command after it answered it.
    await expect.poll(() => d.log(), { timeout: 10_000 }).toContain('bake: client pid');
    // The daemon serves kiln build on the same root, from the cache bake filled.
    const built = await runKiln(sb, ['build', dir, '--root', sb.root, '--target', 'a', '--progress', 'plain', '-o', `type=local,dest=${join(dir, 'out/daemon')}`], { env });
    expect(built.code).toBe(0);
    expect(d.log()).toContain('build');
    expect(await readFile(join(dir, 'out/daemon/stamp'), 'utf8')).toBe(await readFile(join(dir, 'out/a/stamp'), 'utf8'));
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 240_000);

test('fail-fast (the default): the first failure cancels the running target at once (its container and snapshots go), the dependent does not start; exit 1 naming them', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-failfast-${t}`);
  // A cache mount both targets use lets bad fail only once slow's container runs.
  const sync = `--mount=type=cache,id=sync-${t},target=/sync`;
  await writeTree(dir, {
    'docker-bake.hcl': [
      'target "bad" {',
      `  dockerfile-inline = "FROM busybox\\nRUN ${sync} for i in $(seq 1 200); do [ -f /sync/started ] && break; sleep 0.05; done; echo bad-${t} && exit 4\\n"`,
      '}',
      'target "app" {',
      '  contexts = { base = "target:bad" }',
      `  dockerfile-inline = "FROM base\\nRUN echo app-ran-${t}\\n"`,
      '}',
      'target "slow" {',
      `  dockerfile-inline = "FROM busybox\\nRUN ${sync} touch /sync/started && echo started-slow-${t} && sleep 20 && echo done-slow-${t} > /done\\n"`,
      '  output = ["type=local,dest=out/slow"]',
      '}',
    ].join('\n'),
  });
  let startedAt = 0;
  const r = await bake(dir, ['app', 'slow', '--progress', 'plain'], {}, (text) => {
    if (startedAt === 0 && text.includes(`started-slow-${t}\n`)) startedAt = Date.now();
  });
  const took = Date.now() - startedAt;
  expect(startedAt).toBeGreaterThan(0);
  expect(r.code).toBe(1);
  // Cancelled, not waited for: far less than the 20 s sleep after slow's container started.
  expect(took).toBeLessThan(8_000);
  expect(r.stderr).toContain('target bad failed:');
  expect(r.stderr).toMatch(/exit code:? 4/);
  expect(r.stderr).not.toContain('target slow failed');
  // slow's RUN shows as cancelled (BuildKit's CANCELED), not as an error.
  const slowRun = /#(\d+) \[slow\] \[stage-0 2\/2\] RUN/.exec(r.stderr)?.[1];
  expect(r.stderr).toContain(`#${slowRun} CANCELED`);
  expect(r.stderr).toContain('target app did not start: its context "base" is target "bad", which failed');
  expect(r.stderr).not.toContain(`app-ran-${t}`);
  expect(r.stderr).toContain('kiln: error KLN0857: 1 target failed: bad; 1 cancelled: slow; 1 not started: app (--execution fail-fast)');
  expect(r.stderr).toContain('hint: --execution defer-error');
  expect(r.stderr).toMatch(/#\d+ slow: aborted /);
  await expect(stat(join(dir, 'out/slow'))).rejects.toMatchObject({ code: 'ENOENT' });
  // The container is gone, and so are its snapshot and mounts; no private image is left.
  expect(processesMatching(`started-slow-${t} && sleep 20`)).toEqual([]);
  const snapshots = new LocalSnapshotter({ root: sb.root });
  await snapshots.init();
  expect((await snapshots.list()).filter((x) => x.kind === 'active').map((x) => x.id)).toEqual([]);
  expect(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(sb.root))).toEqual([]);
  expect(await runKilnImages()).not.toContain('kiln.local/bake/');
}, 240_000);

test('--execution defer-output: nothing is exported when a target fails (rawjson shows the target results); when all succeed, exports start after every target solved', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-defer-output-${t}`);
  // bad fails only after good's RUN is done, leaving good a second to export were it not held.
  const sync = `--mount=type=cache,id=sync-${t},target=/sync`;
  await writeTree(dir, {
    'docker-bake.hcl': [
      'target "good" {',
      `  dockerfile-inline = "FROM busybox AS b\\nRUN ${sync} echo good-${t} > /g && touch /sync/good\\nFROM scratch\\nCOPY --from=b /g /g\\n"`,
      '  output = ["type=local,dest=out/good"]',
      '}',
      'target "bad" {',
      `  dockerfile-inline = "FROM busybox\\nRUN ${sync} for i in $(seq 1 200); do [ -f /sync/good ] && break; sleep 0.05; done; sleep 1; exit 5\\n"`,
      '  output = ["type=local,dest=out/bad"]',
      '}',
      // later reads good's result (a target: context): good's image is made before the barrier.
      'target "later" {',
      '  contexts = { fromgood = "target:good" }',
      `  dockerfile-inline = "FROM busybox AS b\\nCOPY --from=fromgood /g /g\\nRUN sleep 1 && cat /g > /l && echo later-${t} >> /l\\nFROM scratch\\nCOPY --from=b /l /l\\n"`,
      '  output = ["type=local,dest=out/later"]',
      '}',
    ].join('\n'),
  });
  const failed = await bake(dir, ['good', 'bad', '--execution', 'defer-output', '--metadata-file', 'meta.json', '--progress', 'rawjson']);
  expect(failed.code).toBe(1);
  await expect(stat(join(dir, 'out/good'))).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(stat(join(dir, 'out/bad'))).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(stat(join(dir, 'meta.json'))).rejects.toMatchObject({ code: 'ENOENT' });
  expect(failed.stderr).toContain('kiln: error KLN0857: 1 target failed: bad; 1 cancelled: good (--execution defer-output)');
  const results = parseRawJson(failed.stderr).find((v) => v.name === '[internal] target results');
  expect(results?.completed).toBeDefined();
  const statuses = failed.stderr
    .split('\n')
    .filter((l) => l.startsWith('{"statuses"'))
    .flatMap((l) => (JSON.parse(l) as { statuses: { id: string; vertex: string }[] }).statuses)
    .filter((x) => x.vertex === results?.digest)
    .map((x) => x.id);
  expect(statuses).toEqual(['bad: failed', 'good: aborted']);

  const ok = await bake(dir, ['good', 'later', '--execution', 'defer-output', '--progress', 'rawjson']);
  expect(ok.code).toBe(0);
  expect(await readFile(join(dir, 'out/good/g'), 'utf8')).toBe(`good-${t}\n`);
  expect(await readFile(join(dir, 'out/later/l'), 'utf8')).toBe(`good-${t}\nlater-${t}\n`);
  // good solved at once (cached) but wrote its own output only once later's RUN was done.
  const vertices = parseRawJson(ok.stderr);
  const laterRun = vertices.find((v) => v.name.includes('RUN sleep 1 && cat /g'));
  const goodExport = vertices.find((v) => v.name.startsWith('[good] copying files to'));
  expect(laterRun?.completed).toBeDefined();
  expect(goodExport?.started).toBeGreaterThanOrEqual(laterRun?.completed ?? Infinity);
  expect(ok.stderr).not.toContain('target results');
  expect(await runKilnImages()).not.toContain('kiln.local/bake/');
}, 240_000);
