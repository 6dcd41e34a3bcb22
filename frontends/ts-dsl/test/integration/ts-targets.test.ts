/**
 * kiln/ts named targets end to end through the real CLI, gateway, solver and runc: `--target NAME`
 * builds one entry of `export const targets`, an unknown name fails as a Dockerfile build fails,
 * `--call=targets` lists them, and `kiln check` checks the export's shape.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fresh, kiln, useSandbox, writeTree, type Sandbox } from './helpers.js';

let sb: Sandbox;

useSandbox((s) => (sb = s));

const buildFile = [
  'import { image, sh, type Ctx } from "kiln";',
  'const base = () => image("kt/busybox").dir("/srv");',
  'const api = (ctx: Ctx) => base().run(sh`echo api for ${ctx.target ?? "all"} >/srv/which`).image({ cmd: ["cat", "/srv/which"] });',
  'const web = base().run(sh`echo web >/srv/which`);',
  '',
  'export const targets = {',
  '  api,',
  '  web: { build: web, description: "the static site" },',
  '};',
  'export default web;',
  '',
].join('\n');

async function build(ctx: string, extra: readonly string[]) {
  const out = fresh(sb, 'out');
  const r = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra], sb.dir);
  return { r, out };
}

describe('kiln/ts named targets', { timeout: 240_000 }, () => {
  test('--target NAME builds that target in runc (a function gets ctx.target); none builds the default export', async () => {
    const ctx = join(sb.dir, 'targets');
    await writeTree(ctx, { 'kiln.build.ts': buildFile });
    const api = await build(ctx, ['--target', 'api']);
    expect(api.r.stderr).toContain('echo api for api >/srv/which');
    expect(api.r.code).toBe(0);
    expect(await readFile(join(api.out, 'srv/which'), 'utf8')).toBe('api for api\n');
    expect(api.r.stderr).not.toContain('never reads ctx.target');
    const web = await build(ctx, ['--target', 'web']);
    expect(web.r.code).toBe(0);
    expect(await readFile(join(web.out, 'srv/which'), 'utf8')).toBe('web\n');
    const def = await build(ctx, []);
    expect(def.r.code).toBe(0);
    expect(await readFile(join(def.out, 'srv/which'), 'utf8')).toBe('web\n');
  });

  test('an unknown --target fails before anything runs: KLN0806 naming the file, the name, the nearest one and the list', async () => {
    const ctx = join(sb.dir, 'targets-unknown');
    await writeTree(ctx, { 'kiln.build.ts': buildFile });
    const { r, out } = await build(ctx, ['--target', 'apii']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('kiln: error KLN0806: kiln.build.ts:6:1: target "apii" could not be found in kiln.build.ts (did you mean api?)\nhint: targets are api, web; --call=targets lists them');
    expect(r.stderr).not.toContain('echo');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  test('--call=targets lists the targets with their descriptions and the default, as for a Dockerfile', async () => {
    const ctx = join(sb.dir, 'targets-list');
    await writeTree(ctx, { 'kiln.build.ts': buildFile });
    const r = await kiln(['build', ctx, '--root', sb.root, '--call=targets'], sb.dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('TARGET        DESCRIPTION\napi           \nweb (default) the static site\n');
  });

  test('kiln check accepts the targets shape and refuses a target that is none', async () => {
    const ctx = join(sb.dir, 'targets-check');
    await writeTree(ctx, { 'kiln.build.ts': buildFile, 'bad.ts': buildFile.replace('  api,\n', '  api: "api",\n') });
    const ok = await kiln(['check', ctx], sb.dir);
    expect(ok.stdout + ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const bad = await kiln(['check', join(ctx, 'bad.ts')], sb.dir);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("targets-check/bad.ts:6:1: error TS2322: Type '{ api: string; web: { build: Exec; description: string; }; }' is not assignable to type 'Readonly<Record<string, Target>>'.");
  });
});
