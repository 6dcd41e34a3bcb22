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

  test('--call=targets lists the stages with the comment that describes each, the last as default', async () => {
    const t = token();
    const ctx = join(sb.dir, `targets-${t}`);
    await writeTree(ctx, { Dockerfile: '# base the shared base\nFROM busybox AS base\nFROM base AS build\nRUN true\n# app final image\nFROM build AS app\n' });
    const before = await sb.containersStarted();
    const res = await runKiln(sb, ['build', ctx, '--root', sb.root, '--call', 'targets']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('TARGET        DESCRIPTION\nbase          the shared base\nbuild\napp (default) final image\n');
    expect((await sb.containersStarted()) - before).toBe(0);
  });
});

