/**
 * kiln/ts and `.dockerignore`, end to end through the real CLI, solver and runc: `local("context")`
 * sends what a Dockerfile build of the same context sends (same source op), `<file>.dockerignore`
 * wins, `{ dockerignore: false }` sends everything, and a bad pattern fails as it does for a
 * Dockerfile build.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fresh, kiln, useSandbox, writeTree, type Sandbox } from './helpers.js';

let sb: Sandbox;

useSandbox((s) => (sb = s));

/** A Node project's context: dependencies, git metadata and a build output beside the sources. */
const nodeProject = {
  'src/app.js': 'console.log("app")\n',
  'package.json': '{"name":"app"}\n',
  'node_modules/left-pad/index.js': 'module.exports = 1\n',
  '.git/HEAD': 'ref: refs/heads/main\n',
  'npm-debug.log': 'x\n',
  '.dockerignore': '# what docker build leaves out\nnode_modules\n.git\n*.log\n',
  'Dockerfile': 'FROM busybox\nCOPY . /src\n',
  'kiln.build.ts': 'import { image, local } from "kiln";\nexport default () => image("busybox").copy(local("context"), ".", "/src");\n',
  'all.ts': 'import { image, local } from "kiln";\nexport default () => image("busybox").copy(local("context", { dockerignore: false }), ".", "/src");\n',
  'own.ts': 'import { image, local } from "kiln";\nexport default () => image("busybox").copy(local("context"), ".", "/src");\n',
  'own.ts.dockerignore': 'src\n',
};

async function build(ctx: string, extra: readonly string[] = []) {
  const out = fresh(sb, 'out');
  const r = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra], sb.dir);
  return { r, out };
}

describe('kiln/ts build context and .dockerignore', { timeout: 240_000 }, () => {
  test('local("context") leaves out what .dockerignore lists; dockerignore: false sends it all; <file>.dockerignore wins', async () => {
    const ctx = join(sb.dir, 'node-project');
    await writeTree(ctx, nodeProject);
    const def = await build(ctx);
    expect(def.r.stderr).toContain('[internal] load .dockerignore');
    expect(def.r.code).toBe(0);
    expect(await readFile(join(def.out, 'src/src/app.js'), 'utf8')).toBe('console.log("app")\n');
    expect(existsSync(join(def.out, 'src/package.json'))).toBe(true);
    for (const gone of ['node_modules', '.git', 'npm-debug.log']) expect(existsSync(join(def.out, 'src', gone)), gone).toBe(false);

    const all = await build(ctx, ['-f', join(ctx, 'all.ts')]);
    expect(all.r.code).toBe(0);
    expect(await readFile(join(all.out, 'src/node_modules/left-pad/index.js'), 'utf8')).toBe('module.exports = 1\n');
    expect(existsSync(join(all.out, 'src/.git/HEAD'))).toBe(true);

    // own.ts.dockerignore (src) replaces the context's .dockerignore, as Dockerfile.dockerignore does
    const own = await build(ctx, ['-f', join(ctx, 'own.ts')]);
    expect(own.r.code).toBe(0);
    expect(existsSync(join(own.out, 'src/src'))).toBe(false);
    expect(existsSync(join(own.out, 'src/node_modules/left-pad/index.js'))).toBe(true);
  });

  test('kiln llb: the context source op of local("context") is the Dockerfile build\'s, digest for digest', async () => {
    const ctx = join(sb.dir, 'node-project-llb');
    await writeTree(ctx, nodeProject);
    const contextOp = (stdout: string): { Digest: string; Op: unknown } | undefined =>
      stdout.trim().split('\n').map((l) => JSON.parse(l) as { Digest: string; Op: unknown }).find((o) => JSON.stringify(o.Op).includes('"local://context"'));
    const ts = await kiln(['llb', ctx, '-f', join(ctx, 'kiln.build.ts'), '--root', sb.root], sb.dir);
    const df = await kiln(['llb', ctx, '--root', sb.root], sb.dir);
    expect(ts.code).toBe(0);
    expect(df.code).toBe(0);
    const op = contextOp(ts.stdout);
    expect(JSON.stringify(op?.Op)).toContain('"local.excludepatterns":"[\\"node_modules\\",\\".git\\",\\"*.log\\"]"');
    expect(op?.Digest).toBe(contextOp(df.stdout)?.Digest);
  });

  test('--build-context NAME=DIR: ctx.local(NAME) leaves out what DIR/.dockerignore lists; a bad pattern there fails as in a Dockerfile build', async () => {
    const dir = join(sb.dir, 'named');
    await writeTree(dir, {
      'assets/logo.svg': '<svg/>\n',
      'assets/logo.psd': 'psd\n',
      'assets/.dockerignore': '*.psd\n',
      'bad/a': 'a\n',
      'bad/.dockerignore': 'ok\n[\n',
      'ctx/Dockerfile': 'FROM busybox\nCOPY --from=assets . /a\n',
      'ctx/kiln.build.ts': 'import { image, type Ctx } from "kiln";\nexport default (ctx: Ctx) => image("busybox").copy(ctx.local("assets"), ".", "/a");\n',
    });
    const ts = join(dir, 'ctx/kiln.build.ts');
    const ok = await build(join(dir, 'ctx'), ['-f', ts, '--build-context', `assets=${join(dir, 'assets')}`]);
    expect(ok.r.stderr).toContain('[context assets] load .dockerignore');
    expect(ok.r.code).toBe(0);
    expect(await readFile(join(ok.out, 'a/logo.svg'), 'utf8')).toBe('<svg/>\n');
    expect(existsSync(join(ok.out, 'a/logo.psd'))).toBe(false);
    const bad = await build(join(dir, 'ctx'), ['-f', ts, '--build-context', `assets=${join(dir, 'bad')}`]);
    const df = await build(join(dir, 'ctx'), ['--build-context', `assets=${join(dir, 'bad')}`]);
    expect(bad.r.code).toBe(1);
    expect(df.r.code).toBe(1);
    expect(df.r.stderr).toContain('syntax error in pattern "["');
    // the same failure, located at the ctx.local call
    expect(bad.r.stderr).toContain('kiln: error SOLVER_EXEC_FAILED: kiln.build.ts:2:56: syntax error in pattern "["');
  });

  test('a malformed pattern fails the build as it fails a Dockerfile build of the context', async () => {
    const ctx = join(sb.dir, 'bad-ignore');
    await writeTree(ctx, { ...nodeProject, '.dockerignore': 'node_modules\n[\n' });
    const ts = await build(ctx, ['-f', join(ctx, 'kiln.build.ts')]);
    const df = await build(ctx);
    expect(ts.r.code).toBe(1);
    expect(df.r.code).toBe(1);
    const line = 'kiln: error SOLVER_BAD_PATTERN: .dockerignore:2: syntax error in pattern "["';
    expect(df.r.stderr).toContain(line);
    expect(ts.r.stderr).toContain(line);
    expect(ts.r.stderr).not.toMatch(/\n\s+at /);
  });
});
