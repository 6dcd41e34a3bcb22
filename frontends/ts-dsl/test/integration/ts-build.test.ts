/**
 * kiln/ts end to end: `kiln build` and `kiln llb` of TypeScript build files through the real
 * CLI, gateway, solver and runc, on the busybox base made from busybox-static. Results are read
 * from `--output type=local` directories and OCI archives (skopeo for the image config).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { fresh, kiln, repo, useSandbox, writeTree, type Sandbox } from './helpers.js';

let sb: Sandbox;

useSandbox((s) => (sb = s));

const noStack = (stderr: string): void => expect(stderr).not.toMatch(/\n\s+at /);

/** Builds `ctx` into a local directory and an OCI archive; returns both and the CLI run. */
async function build(ctx: string, extra: readonly string[] = []) {
  const out = fresh(sb, 'out');
  const oci = `${fresh(sb, 'oci')}.tar`;
  const r = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, '--output', `type=oci,dest=${oci}`, ...extra], sb.dir);
  return { r, out, oci };
}

interface Config {
  config: { Cmd?: string[]; Entrypoint?: string[]; Env?: string[]; ExposedPorts?: Record<string, object>; WorkingDir?: string };
  rootfs: { diff_ids: string[] };
}
const configOf = (oci: string): Config => JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${oci}`], { encoding: 'utf8' })) as Config;

describe('kiln build of a kiln.build.ts', { timeout: 240_000 }, () => {
  test('example 1 (hello): the context kiln.build.ts is picked, the RUN runs in runc, the config inherits the base', async () => {
    const ctx = join(sb.dir, 'hello');
    await writeTree(ctx, {
      'kiln.build.ts': `import { image, sh } from "kiln";\nexport default () => image("kt/busybox").run(sh\`echo hi >/hi\`).image({ cmd: ["cat", "/hi"] });\n`,
    });
    const { r, out, oci } = await build(ctx);
    expect(r.stderr).toContain('/bin/sh -c echo hi >/hi');
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'hi'), 'utf8')).toBe('hi\n');
    const cfg = configOf(oci);
    expect(cfg.config.Cmd).toEqual(['cat', '/hi']);
    expect(cfg.config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    expect(cfg.rootfs.diff_ids).toHaveLength(2);
  });

  test('example 2 (multi-stage with a cache mount) builds what its Dockerfile side-by-side builds', async () => {
    const ctx = join(sb.dir, 'site');
    await writeTree(ctx, {
      'build.sh': 'mkdir -p dist && echo "<h1>site</h1>" > dist/index.html && n=$(cat /cache/n 2>/dev/null || echo 0) && n=$((n+1)) && echo $n > /cache/n && echo $n > dist/builds\n',
      'kiln.build.ts': [
        'import { cache, image, sh, type Ctx } from "kiln";',
        'export default ({ local }: Ctx) => {',
        '  const b = image("kt/busybox").dir("/src").copy(local("context"), ".", ".")',
        '    .run(sh`sh build.sh`, { mounts: { "/cache": cache("site") } });',
        '  return image("kt/busybox").copy(b, "/src/dist", "/www")',
        '    .image({ cmd: ["httpd", "-f", "-p", "8080", "-h", "/www"], exposedPorts: ["8080/tcp"] });',
        '};',
        '',
      ].join('\n'),
      'Dockerfile.side': [
        'FROM kt/busybox AS build',
        'WORKDIR /src',
        'COPY . .',
        'RUN --mount=type=cache,target=/cache sh build.sh',
        'FROM kt/busybox',
        'COPY --from=build /src/dist /www',
        'EXPOSE 8080/tcp',
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        '',
      ].join('\n'),
    });
    const ts = await build(ctx);
    expect(ts.r.stderr).toContain('sh build.sh');
    expect(ts.r.code).toBe(0);
    const df = await build(ctx, ['-f', join(ctx, 'Dockerfile.side')]);
    expect(df.r.code).toBe(0);
    for (const f of ['index.html', 'builds']) {
      expect(await readFile(join(ts.out, 'www', f), 'utf8')).toBe(await readFile(join(df.out, 'www', f), 'utf8'));
    }
    expect(await readFile(join(ts.out, 'www/index.html'), 'utf8')).toBe('<h1>site</h1>\n');
    const [a, b] = [configOf(ts.oci).config, configOf(df.oci).config];
    expect({ Cmd: a.Cmd, Entrypoint: a.Entrypoint, Env: a.Env, ExposedPorts: a.ExposedPorts }).toEqual({ Cmd: b.Cmd, Entrypoint: b.Entrypoint, Env: b.Env, ExposedPorts: b.ExposedPorts });
    expect(a.ExposedPorts).toEqual({ '8080/tcp': {} });
    // the cache mount outlives the build: a changed source runs build.sh again on the same cache
    await writeTree(ctx, { 'extra.txt': 'changed\n' });
    const again = await build(ctx);
    expect(again.r.code).toBe(0);
    expect(await readFile(join(again.out, 'www/builds'), 'utf8')).toBe('2\n');
  });

  test('example 3 (secret + tmpfs + mount output): the secret is used but never in the LLB or the layers', async () => {
    const ctx = join(sb.dir, 'secret');
    const secretValue = 'kiln-ts-secret-7f3a9c';
    await writeTree(ctx, {
      'token.txt': secretValue,
      'kiln.build.ts': [
        'import { image, scratch, secret, sh, tmpfs } from "kiln";',
        'export default () => {',
        '  const dl = image("kt/busybox").run(sh`wc -c < /run/secrets/t > /out/len && echo scratch > /tmp/x && ls /tmp > /out/tmp-list && mount | grep -c " /tmp type tmpfs" > /out/tmpfs`,',
        '    { mounts: { "/out": scratch(), "/tmp": tmpfs(), "/run/secrets/t": secret("t") } }).output("/out");',
        '  return scratch().copy(dl, "/", "/");',
        '};',
        '',
      ].join('\n'),
    });
    const { r, out, oci } = await build(ctx, ['--secret', `id=t,src=${join(ctx, 'token.txt')}`]);
    expect(r.stderr).not.toContain(secretValue);
    expect(r.code).toBe(0);
    expect((await readFile(join(out, 'len'), 'utf8')).trim()).toBe(String(secretValue.length));
    expect(await readFile(join(out, 'tmp-list'), 'utf8')).toBe('x\n');
    expect((await readFile(join(out, 'tmpfs'), 'utf8')).trim()).toBe('1');
    expect(readdirSync(out).sort()).toEqual(['len', 'tmp-list', 'tmpfs']);
    // the LLB names the secret by id only
    const llb = await kiln(['llb', join(ctx, 'kiln.build.ts'), '--format', 'json'], sb.dir);
    expect(llb.code).toBe(0);
    expect(llb.stdout).toContain('"secretOpt":{"ID":"t"');
    expect(llb.stdout).not.toContain(secretValue);
    // and no layer of the image holds it
    const layers = execFileSync('tar', ['-tf', oci], { encoding: 'utf8' }).split('\n').filter((p) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(p));
    expect(layers.length).toBeGreaterThan(0);
    let sawResult = false;
    for (const blob of layers) {
      const bytes = execFileSync('tar', ['-xOf', oci, blob], { maxBuffer: 64 << 20 });
      const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
      expect(plain.includes(secretValue)).toBe(false);
      // the scan does read layer contents: the result's files are found
      sawResult ||= plain.includes('tmp-list');
    }
    expect(sawResult).toBe(true);
  });

  test('example 5 (dynamic fan-out): ctx.solve + readFile drive the graph', async () => {
    const ctx = join(sb.dir, 'fanout');
    await writeTree(ctx, {
      'services.txt': 'alpha\nbeta\n',
      'lib/svc.ts': [
        'import { image, sh, scratch, type State } from "kiln";',
        'export const svc = async (src: State, n: string): Promise<State> =>',
        '  image("kt/busybox").run(sh`mkdir -p /out/srv && echo ${n} > /out/srv/${n} && cat /src/services.txt | wc -l > /out/srv/${n}.count`,',
        '    { mounts: { "/out": scratch(), "/src": src } }).output("/out");',
        '',
      ].join('\n'),
      'kiln.build.ts': [
        'import { image, merge, type Ctx } from "kiln";',
        'import { svc } from "./lib/svc.js";',
        'export default async ({ local, solve }: Ctx) => {',
        '  const src = local("context");',
        '  const names = (await solve(src).readFile("/services.txt")).trim().split("\\n");',
        '  const outs = await Promise.all(names.map((n) => svc(src, n)));',
        '  return merge([image("kt/busybox"), ...outs]).image({ cmd: ["sh", "/start.sh"] });',
        '};',
        '',
      ].join('\n'),
    });
    const { r, out, oci } = await build(ctx);
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'srv/alpha'), 'utf8')).toBe('alpha\n');
    expect(await readFile(join(out, 'srv/beta'), 'utf8')).toBe('beta\n');
    expect((await readFile(join(out, 'srv/beta.count'), 'utf8')).trim()).toBe('2');
    expect(readFileSync(join(out, 'bin/busybox')).length).toBeGreaterThan(100_000);
    expect(configOf(oci).config.Cmd).toEqual(['sh', '/start.sh']);
  });

  test('example 4 (merge of diffs; ctx.platforms gives an image per platform)', async () => {
    const ctx = join(sb.dir, 'platforms');
    await writeTree(ctx, {
      'kiln.build.ts': [
        'import { diff, image, merge, scratch, sh, type Ctx } from "kiln";',
        'export default (ctx: Ctx) => ctx.platforms((p) => {',
        '  const files = scratch().mkfile("/platform", p);',
        '  // only the host platform runs commands here (no emulator)',
        '  if (p !== "linux/amd64") return files.image({ entrypoint: ["/bin/sh"] });',
        '  const base = image("kt/busybox", { platform: p });',
        '  const tool = (n: string) => diff(base, base.run(sh`mkdir -p /opt && echo ${n} > /opt/${n}`));',
        '  return merge([base, tool("a"), tool("b"), files]).image({ entrypoint: ["/bin/sh"] });',
        '});',
        '',
      ].join('\n'),
    });
    const one = await build(ctx);
    expect(one.r.code).toBe(0);
    expect(await readFile(join(one.out, 'opt/a'), 'utf8')).toBe('a\n');
    expect(await readFile(join(one.out, 'opt/b'), 'utf8')).toBe('b\n');
    expect(await readFile(join(one.out, 'platform'), 'utf8')).toBe('linux/amd64');
    expect(readFileSync(join(one.out, 'bin/busybox')).length).toBeGreaterThan(100_000);
    const cfg = configOf(one.oci);
    expect(cfg.config.Entrypoint).toEqual(['/bin/sh']);
    // a merge exports its inputs' layers: the base, each diff, the file
    expect(cfg.rootfs.diff_ids.length).toBeGreaterThanOrEqual(4);
    const two = await build(ctx, ['--platform', 'linux/amd64,linux/arm64']);
    expect(two.r.code).toBe(0);
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${two.oci}`], { encoding: 'utf8' })) as { manifests: { platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(['amd64', 'arm64']);
    const arm = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--override-arch', 'arm64', `oci-archive:${two.oci}`], { encoding: 'utf8' })) as Config & { architecture: string };
    expect(arm.architecture).toBe('arm64');
    expect(arm.config.Entrypoint).toEqual(['/bin/sh']);
    expect(await readFile(join(two.out, 'linux_arm64/platform'), 'utf8')).toBe('linux/arm64');
  });

  test('examples/ts-node-app: check passes; npm stage with a cache mount copied into a slim stage, with the healthcheck, stop signal and port in the raw config', async () => {
    const ctx = join(repo, 'examples/ts-node-app');
    const check = await kiln(['check', ctx], sb.dir);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.code).toBe(0);
    const { r, out, oci } = await build(ctx, ['--build-arg', 'NODE_ENV=staging']);
    expect(r.stderr).toContain('npm ci');
    expect(r.code).toBe(0);
    // copy(…, ".") lands in /app (the working directory), not on it
    expect(await readFile(join(out, 'app/server.js'), 'utf8')).toContain('hello from hello-node');
    expect(await readFile(join(out, 'app/env'), 'utf8')).toBe('staging\n');
    expect(readdirSync(join(out, 'app/node_modules'))).toEqual(['left-pad']);
    // skopeo's view drops Docker's Healthcheck: read the config blob itself
    const blob = (d: string): Buffer => execFileSync('tar', ['-xOf', oci, `blobs/sha256/${d.slice('sha256:'.length)}`], { maxBuffer: 64 << 20 });
    const index = JSON.parse(execFileSync('tar', ['-xOf', oci, 'index.json'], { encoding: 'utf8' })) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(blob(index.manifests[0]?.digest ?? '').toString()) as { config: { digest: string } };
    const cfg = (JSON.parse(blob(manifest.config.digest).toString()) as { config: Record<string, unknown> }).config;
    expect(cfg['Healthcheck']).toEqual({ Test: ['CMD-SHELL', 'test -f /app/server.js'], Interval: 30e9, Timeout: 3e9, Retries: 3 });
    expect(cfg['StopSignal']).toBe('SIGINT');
    expect(cfg['ExposedPorts']).toEqual({ '3000/tcp': {} });
    expect(cfg['Labels']).toEqual({ 'org.opencontainers.image.title': 'hello-node', 'org.opencontainers.image.version': '1.4.0' });
    expect(cfg['Env']).toContain('NODE_ENV=staging');
  });

  test('build args, target and platform reach ctx; -f FILE.ts picks kiln/ts', async () => {
    const ctx = join(sb.dir, 'args');
    await writeTree(ctx, {
      'other.ts': `import { scratch, type Ctx } from "kiln";\nexport default (ctx: Ctx) => scratch().mkfile("/info", JSON.stringify({ args: ctx.args, target: ctx.target, platform: ctx.platform }));\n`,
    });
    const { r, out } = await build(ctx, ['-f', join(ctx, 'other.ts'), '--build-arg', 'GREETING=hello world', '--target', 'release', '--platform', 'linux/amd64']);
    expect(r.code).toBe(0);
    expect(JSON.parse(await readFile(join(out, 'info'), 'utf8'))).toEqual({ args: { GREETING: 'hello world' }, target: 'release', platform: 'linux/amd64' });
  });

  test("the build file's console.log lines show in progress, as an external frontend's stderr does", async () => {
    const ctx = join(sb.dir, 'console');
    await writeTree(ctx, {
      'kiln.build.ts': `import { scratch, type Ctx } from "kiln";\nexport default (ctx: Ctx) => {\n  console.log("planning for", ctx.platform);\n  console.error("second line");\n  return scratch().mkfile("/x", "1");\n};\n`,
    });
    const { r } = await build(ctx);
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    const n = /#(\d+) \[frontend\] output\n/.exec(r.stderr)?.[1];
    expect(n).toBeDefined();
    expect(r.stderr).toMatch(new RegExp(`#${n} \\d+\\.\\d{3} planning for linux/amd64\\n`));
    expect(r.stderr).toMatch(new RegExp(`#${n} \\d+\\.\\d{3} second line\\n`));
    // A build that writes nothing shows no such step.
    const quiet = join(sb.dir, 'quiet');
    await writeTree(quiet, { 'kiln.build.ts': `import { scratch } from "kiln";\nexport default () => scratch().mkfile("/x", "1");\n` });
    expect((await build(quiet)).r.stderr).not.toContain('[frontend] output');
  });

  test('--frontend kiln/ts without -f builds the context kiln.build.ts even next to a Dockerfile', async () => {
    const ctx = join(sb.dir, 'both');
    await writeTree(ctx, {
      Dockerfile: 'FROM kt/busybox\nRUN echo from-dockerfile > /which\n',
      'kiln.build.ts': `import { scratch } from "kiln";\nexport default () => scratch().mkfile("/which", "from-ts\\n");\n`,
    });
    const { r, out } = await build(ctx, ['--frontend', 'kiln/ts']);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'which'), 'utf8')).toBe('from-ts\n');
  });

  test('// syntax=kiln/ts selects the frontend for a file of any name', async () => {
    const ctx = join(sb.dir, 'syntax');
    await writeTree(ctx, { 'build.kiln': `// syntax=kiln/ts\nimport { scratch } from "kiln";\nexport default () => scratch().mkfile("/via", "syntax");\n` });
    const { r, out } = await build(ctx, ['-f', join(ctx, 'build.kiln')]);
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'via'), 'utf8')).toBe('syntax');
  });

  test('an error in the build file shows file:line:column and no stack trace', async () => {
    const ctx = join(sb.dir, 'broken');
    await writeTree(ctx, { 'kiln.build.ts': `import { image } from "kiln";\nexport default () => {\n  const tag = "1.0";\n  throw new Error(\`no release for \${tag}\`);\n};\n` });
    const { r } = await build(ctx);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('KLN0803');
    expect(r.stderr).toContain('kiln.build.ts:4:9: no release for 1.0');
    noStack(r.stderr);
    await writeTree(ctx, { 'kiln.build.ts': `import { readFileSync } from "fs";\nexport default () => readFileSync("/etc/passwd");\n` });
    const b = await build(ctx);
    expect(b.r.code).not.toBe(0);
    expect(b.r.stderr).toMatch(/KLN0802: kiln\.build\.ts:1:30: Node built-in "fs" is not available/);
    noStack(b.r.stderr);
    // a failing command points at its .run() through the Definition's source map
    await writeTree(ctx, { 'kiln.build.ts': `import { image, sh } from "kiln";\nexport default () =>\n  image("kt/busybox")\n    .run(sh\`echo about to fail; exit 3\`);\n` });
    const c = await build(ctx);
    expect(c.r.code).not.toBe(0);
    expect(c.r.stderr).toContain('kiln.build.ts:4:6: process "/bin/sh -c echo about to fail; exit 3" did not complete successfully: exit code: 3');
    expect(c.r.stderr).toContain('  4 |     .run(sh`echo about to fail; exit 3`);');
    noStack(c.r.stderr);
  });
});

describe('kiln llb of a .ts file', { timeout: 120_000 }, () => {
  test('the LLB ops equal the Go client/llb vector (exec-cache-mounts), and --local-unique-id pins local.unique', async () => {
    const ctx = join(sb.dir, 'llb');
    await writeTree(ctx, {
      'vector.ts': [
        'import { cache, image } from "kiln";',
        'const bb = () => image("localhost:5000/busybox");',
        'export default () => bb().run("ls /c1 /c2 /c3", { mounts: {',
        '  "/c1": cache("cache-shared"), "/c2": cache("cache-private", { sharing: "private" }),',
        '  "/c3": cache("cache-locked", { sharing: "locked", from: bb(), path: "/etc" }) } });',
        '',
      ].join('\n'),
      'local.ts': `import { local } from "kiln";\nexport default () => local("context", { include: ["src/**"] });\n`,
    });
    const r = await kiln(['llb', join(ctx, 'vector.ts'), '--platform', 'linux/amd64'], sb.dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const digests = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { Digest: string }).Digest);
    const expected = readFileSync(join(repo, '../shared/conformance/llb-ops/exec-cache-mounts.digests'), 'utf8').split('\n').filter(Boolean);
    expect(digests).toEqual(expected);
    const pb = await kiln(['llb', join(ctx, 'vector.ts'), '--platform', 'linux/amd64', '--format', 'pb'], sb.dir);
    expect(pb.code).toBe(0);
    const l = await kiln(['llb', '-f', join(ctx, 'local.ts'), '--local-unique-id', 'pinned-id'], sb.dir);
    expect(l.code).toBe(0);
    expect(l.stdout).toContain('"local.unique":"pinned-id"');
  });

  test('a file of any name whose first line is // syntax=kiln/ts, with -f or as the argument, as kiln build takes it', async () => {
    const ctx = join(sb.dir, 'llb-syntax');
    await writeTree(ctx, { 'build.kiln': `// syntax=kiln/ts\nimport { scratch } from "kiln";\nexport default () => scratch().mkfile("/k", "k");\n` });
    for (const args of [['llb', '-f', join(ctx, 'build.kiln'), ctx], ['llb', join(ctx, 'build.kiln')]]) {
      const r = await kiln(args, sb.dir);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('"mkfile":{"path":"/k"');
    }
  });
});
