import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { type KilnSandbox, runKiln, token, useSandbox, writeTree } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** A Dockerfile that builds fine but breaks two build checks (lines 1 and 3). */
function dockerfile(t: string, directive = ''): string {
  return `${directive}FROM busybox as build\nRUN echo ${t} > /built.txt\nCMD cat /built.txt\n`;
}

const FROM_AS = /WARNING: Dockerfile:1(?::\d+)?: FromAsCasing: 'as' and 'FROM' keywords' casing do not match \(https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/from-as-casing\/\)\n/;
const JSON_ARGS = /WARNING: Dockerfile:3(?::\d+)?: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals \(https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/json-args-recommended\/\)\n/;

describe('kiln build: Dockerfile build checks (real runc)', () => {
  test('violations print as warnings and the build succeeds; # check=skip= silences them', async () => {
    const t = token();
    const ctx = join(sb.dir, `checks-warn-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t) });
    const before = await sb.containersStarted();
    const warned = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(warned.stderr).not.toMatch(/\n\s+at /);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(FROM_AS);
    expect(warned.stderr).toMatch(JSON_ARGS);
    expect((await sb.containersStarted()) - before).toBe(1);

    const skipped = join(sb.dir, `checks-skip-${t}`);
    await writeTree(skipped, { Dockerfile: dockerfile(t, '# check=skip=FromAsCasing,JSONArgsRecommended\n') });
    const quiet = await runKiln(sb, ['build', skipped, '--root', sb.root, '--progress', 'plain']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toMatch(/WARNING: Dockerfile/);

    // The build arg replaces the directive: here it silences every rule of the first context.
    const byArg = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=all']);
    expect(byArg.code).toBe(0);
    expect(byArg.stderr).not.toMatch(/WARNING: Dockerfile/);
  });

  test('# check=error=true fails with exit 1, KLN0509 and each violation located, before running anything', async () => {
    const t = token();
    const ctx = join(sb.dir, `checks-error-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t, '# check=error=true\n') });
    const before = await sb.containersStarted();
    const res = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(res.code).toBe(1);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(res.stderr).toContain('kiln: error: Dockerfile:2:1: lint violation found for rules: FromAsCasing, JSONArgsRecommended (2 violations, check=error=true) [KLN0509]');
    expect(res.stderr).toContain('  2 | FROM busybox as build');
    expect(res.stderr).toContain('hint: fix each violation, or skip its rule with `# check=skip=FromAsCasing,JSONArgsRecommended`');
    expect(res.stderr).toContain("  Dockerfile:2:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match");
    expect(res.stderr).toContain('  Dockerfile:4:1: JSONArgsRecommended: JSON arguments recommended for CMD');
    // the RUN never ran: checks fail the build after conversion, before the solve
    expect((await sb.containersStarted()) - before).toBe(0);
  });

  test('--check (--call=check) runs only the checks: a report with the source lines, exit 1 on findings, 0 when clean', async () => {
    const t = token();
    const ctx = join(sb.dir, `checks-call-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t) });
    const before = await sb.containersStarted();
    const res = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--check']);
    expect(res.code).toBe(1);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(res.stdout).toContain('WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n');
    expect(res.stdout).toContain("'as' and 'FROM' keywords' casing do not match\nDockerfile:1\n");
    expect(res.stdout).toContain(`   3 | >>> CMD cat /built.txt`);
    expect(res.stdout).toContain('Check complete, 2 warnings have been found!');
    expect(res.stdout).not.toContain('WARNING: no output specified');
    // nothing was built: no container ran
    expect((await sb.containersStarted()) - before).toBe(0);

    const clean = join(sb.dir, `checks-clean-${t}`);
    await writeTree(clean, { Dockerfile: 'FROM busybox\nCMD ["true"]\n' });
    const ok = await runKiln(sb, ['build', clean, '--root', sb.root, '--call', 'check']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('Check complete, no warnings found.\n');

    // a Dockerfile that does not convert is reported, located, and fails the check
    const broken = join(sb.dir, `checks-broken-${t}`);
    await writeTree(broken, { Dockerfile: 'FROM busybox\nCOPY --from=nowhere /a /b\n' });
    const bad = await runKiln(sb, ['build', broken, '--root', sb.root, '--check']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/ERROR: .*nowhere.* \[KLN\d+\]\nDockerfile:2\n/);
  });

  test('--metadata-file with --check / --call writes the call\'s result metadata, as buildx (v0.14+): result.json inlined, no build ref; also when the checks fail', async () => {
    const t = token();
    const ctx = join(sb.dir, `checks-meta-${t}`);
    await writeTree(ctx, { Dockerfile: dockerfile(t) });
    const checkMeta = join(sb.dir, `check-meta-${t}`, 'm.json');
    const check = await runKiln(sb, ['build', ctx, '--root', sb.root, '--check', '--metadata-file', checkMeta]);
    expect(check.code).toBe(1);
    const m = JSON.parse(await readFile(checkMeta, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(m)).toEqual(['result.json', 'result.statuscode', 'result.txt', 'version']);
    expect(m['result.statuscode']).toBe('1');
    expect((m['result.json'] as { warnings: { ruleName: string }[] }).warnings.map((w) => w.ruleName).sort()).toEqual(['FromAsCasing', 'JSONArgsRecommended']);
    expect(m['result.txt']).toContain('FromAsCasing');

    const targetsMeta = join(sb.dir, `targets-meta-${t}.json`);
    const targets = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call=targets', '--metadata-file', targetsMeta]);
    expect(targets.code).toBe(0);
    const tm = JSON.parse(await readFile(targetsMeta, 'utf8')) as Record<string, unknown>;
    expect(tm).toMatchObject({ 'result.json': { targets: [{ name: 'build', default: true }] }, version: expect.any(String), 'result.txt': expect.stringContaining('build') });
    expect(tm).not.toHaveProperty('buildx.build.ref');

    // bake: each target's call metadata under its name
    await writeFile(join(ctx, 'docker-bake.hcl'), 'target "app" {\n  target = "build"\n}\n');
    const bakeMeta = join(sb.dir, `bake-meta-${t}.json`);
    const baked = await runKiln(sb, ['bake', '--root', sb.root, '--call=outline', '--metadata-file', bakeMeta, 'app'], { cwd: ctx });
    expect(baked.code).toBe(0);
    expect(JSON.parse(await readFile(bakeMeta, 'utf8'))).toMatchObject({ app: { 'result.json': { name: 'build' }, version: '1.0.0' } });
  });

  test('--call=targets lists the stages with the comment that describes each, the last as default', async () => {
    const t = token();
    const ctx = join(sb.dir, `targets-${t}`);
    await writeTree(ctx, { Dockerfile: '# base the shared base\nFROM busybox AS base\nFROM base AS build\nRUN true\n# app final image\nFROM build AS app\n' });
    const before = await sb.containersStarted();
    const res = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call', 'targets']);
    expect(res.code).toBe(0);
    // buildx prints BuildKit's PrintTargets (Go tabwriter: a name without description keeps its padding)
    expect(res.stdout).toBe('TARGET        DESCRIPTION\nbase          the shared base\nbuild         \napp (default) final image\n');
    expect((await sb.containersStarted()) - before).toBe(0);
  });

  test('--call=outline prints the target\'s build args, secrets and ssh ids; ,format=json the frontend\'s JSON; a bad call is KLN0702', async () => {
    const t = token();
    const ctx = join(sb.dir, `outline-${t}`);
    await writeTree(ctx, {
      Dockerfile: '# BASE image to start from\nARG BASE=busybox\nFROM $BASE AS deps\nRUN --mount=type=secret,id=npmrc true\n# app the service\nFROM scratch AS app\n# PORT it listens on\nARG PORT=8080\nCOPY --from=deps / /\nRUN --mount=type=ssh,required=true true\nFROM scratch AS other\nARG OTHER\n',
    });
    const before = await sb.containersStarted();
    const res = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call=outline', '--target', 'app', '--build-arg', 'PORT=9000']);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('TARGET:      app\nDESCRIPTION: the service\n\nBUILD ARG   VALUE     DESCRIPTION\nBASE        busybox   image to start from\nPORT        9000      it listens on\n\nSECRET   REQUIRED\nnpmrc    \n\nSSH       REQUIRED\ndefault   true\n\n');
    const json = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call', 'outline,format=json', '--target', 'other']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'other', args: [{ name: 'OTHER', location: { ranges: [{ start: { line: 12 }, end: { line: 12 } }] } }] });
    expect(json.stdout.startsWith('{\n  "name": "other",\n  "args": [\n')).toBe(true);
    const targets = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call=targets,format=json']);
    expect(JSON.parse(targets.stdout).targets.map((x: { name: string }) => x.name)).toEqual(['deps', 'app', 'other']);
    const bad = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call=outline,format=yaml']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/KLN0702.*invalid --call format "yaml": the formats are json/);
    const unknown = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call=describe']);
    expect(unknown.stderr).toMatch(/KLN0702.*unknown --call "describe": the calls are build, check, outline, targets/);
    // bake: --call for every target, or a target's call attribute (NAME[,format=json])
    await writeTree(ctx, { 'docker-bake.hcl': 'target "app" {\n  target = "app"\n  args = { PORT = "9000" }\n}\ntarget "other" {\n  target = "other"\n  call = "outline,format=json"\n}\n' });
    const baked = await runKiln(sb, ['bake', '--root', sb.root, '--call=outline', 'app'], { cwd: ctx });
    expect(baked.code).toBe(0);
    expect(baked.stdout).toBe(`app:\n${res.stdout}`);
    const attr = await runKiln(sb, ['bake', '--root', sb.root, 'other'], { cwd: ctx });
    expect(JSON.parse(attr.stdout.replace(/^other:\n/, ''))).toMatchObject({ name: 'other' });
    const badBake = await runKiln(sb, ['bake', '--root', sb.root, '--call=outlines', 'app'], { cwd: ctx });
    expect(badBake.stderr).toMatch(/KLN0855.*unknown --call "outlines"/);
    expect((await sb.containersStarted()) - before).toBe(0);
  });
});

