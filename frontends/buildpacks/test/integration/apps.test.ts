import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PROJECT_TOML, repo, imageConfig, kiln, runBundle, unpack, writeTree, type Sandbox, useSandbox } from './helpers.js';

let sb: Sandbox;
useSandbox((s) => (sb = s));

let n = 0;

/** The file names in the `index`-th layer of an OCI layout's only image (sorted). */
function layerFiles(layout: string, index: number): string[] {
  const blob = (d: string): string => join(layout, 'blobs/sha256', d.replace('sha256:', ''));
  const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blob(idx.manifests[0]?.digest ?? ''), 'utf8')) as { layers: { digest: string }[] };
  const out = execFileSync('tar', ['-tf', blob(manifest.layers[index]?.digest ?? '')], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l !== '').sort();
}
/** Name, numeric owner and mtime of every entry in the `index`-th layer of an OCI layout's only image. */
function layerEntries(layout: string, index: number): { name: string; owner: string; time: string }[] {
  const blob = (d: string): string => join(layout, 'blobs/sha256', d.replace('sha256:', ''));
  const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blob(idx.manifests[0]?.digest ?? ''), 'utf8')) as { layers: { digest: string }[] };
  const out = execFileSync('tar', ['--full-time', '--numeric-owner', '-tvf', blob(manifest.layers[index]?.digest ?? '')], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  return out.split('\n').filter((l) => l !== '').map((l) => {
    const f = l.split(/\s+/);
    return { owner: f[1] ?? '', time: `${f[3] ?? ''} ${f[4] ?? ''}`, name: f[5] ?? '' };
  });
}
/** Builds `app` into a fresh OCI layout and unpacks it; returns the layout, bundle and the CLI run. */
async function buildAndUnpack(app: string, extra: string[] = []) {
  const i = ++n;
  const layout = join(sb.dir, `out-${i}.oci`);
  const r = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', ...extra, '--output', `type=oci,dest=${layout},tar=false,name=app:1`], sb.dir);
  if (r.code !== 0) throw new Error(`build failed:\n${r.stderr}`);
  const bundle = join(sb.dir, `bundle-${i}`);
  await unpack(layout, '1', bundle);
  return { layout, bundle, rootfs: join(bundle, 'rootfs'), run: r };
}

describe('kiln/buildpacks apps', () => {
  test('shell app: processes web (default) and worker, arg override, env defaults vs user env, exec.d, label', async () => {
    const app = join(sb.dir, 'shell');
    await writeTree(app, {
      'project.toml': PROJECT_TOML,
      'app.sh': 'echo "$1 $GREETING ${EXECD-unset} $(tool x) $(pwd)"\nshift\necho "args: $*"\n',
    });
    const { layout, bundle, rootfs } = await buildAndUnpack(app);
    const cfg = await imageConfig(layout);
    expect(cfg.config.Entrypoint).toEqual(['/cnb/process/web']);
    // run (2) + tools + sbom + app + launcher; the SBOMs where lifecycle puts them
    expect(cfg.rootfs.diff_ids).toHaveLength(6);
    expect(layerFiles(layout, 3).filter((f) => !f.endsWith('/'))).toEqual(['layers/sbom/launch/kt_shell-app/sbom.spdx.json', 'layers/sbom/launch/kt_shell-app/tools/sbom.cdx.json']);
    expect(await readFile(join(rootfs, 'layers/sbom/launch/kt_shell-app/tools/sbom.cdx.json'), 'utf8')).toContain('CycloneDX');
    expect(cfg.config.Labels?.['org.example.shell-app']).toBe('yes');
    const md = JSON.parse(cfg.config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { processes: { type: string }[]; buildpacks: unknown[]; 'buildpack-default-process-type'?: string };
    expect(md.processes.map((p) => p.type)).toEqual(['web', 'worker']);
    // lifecycle's BuildMetadata JSON: buildpacks {id, version, homepage} (api is json:"-"), the buildpacks' default type
    expect(md.buildpacks).toEqual([{ id: 'kt/shell-app', version: '0.0.1', homepage: 'https://example.com/kt/shell-app' }]);
    expect(md['buildpack-default-process-type']).toBe('web');
    // io.buildpacks.lifecycle.metadata shas: the diffID of the layer that holds those files
    type Sha = { sha: string };
    const lm = JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as {
      app: Sha[]; config: Sha; launcher: Sha; 'process-types': Sha; sbom: Sha; buildpacks: { key: string; layers: Record<string, Sha> }[]; runImage: { topLayer: string; reference: string };
    };
    const holding = (file: string): string => {
      const i = cfg.rootfs.diff_ids.findIndex((_, k) => layerFiles(layout, k).includes(file));
      expect(i, file).toBeGreaterThan(0);
      return cfg.rootfs.diff_ids[i] ?? '';
    };
    expect(lm.buildpacks.find((b) => b.key === 'kt/shell-app')?.layers['tools']?.sha).toBe(holding('layers/kt_shell-app/tools/bin/tool'));
    // lifecycle's LayerMetadata JSON: every flag written, false ones too, in its field order
    expect(Object.entries(lm.buildpacks.find((b) => b.key === 'kt/shell-app')?.layers['tools'] ?? {}).filter(([k]) => k !== 'sha' && k !== 'data')).toEqual([['build', true], ['launch', true], ['cache', false]]);
    expect(lm.sbom.sha).toBe(holding('layers/sbom/launch/kt_shell-app/sbom.spdx.json'));
    expect(lm.app.map((a) => a.sha)).toEqual([holding('workspace/app.sh')]);
    expect(lm.launcher.sha).toBe(holding('cnb/lifecycle/launcher'));
    expect(lm.config.sha).toBe(holding('layers/config/metadata.toml'));
    expect(lm['process-types'].sha).toBe(holding('cnb/process/web'));
    expect(lm.runImage.topLayer).toBe(cfg.rootfs.diff_ids[1]);
    // the run image by digest (what pack rebase compares), its manifest as kiln stored it
    const listed = execFileSync(process.execPath, [join(repo, 'cli/bin/kiln.js'), 'images', '--digests', '--root', sb.root], { encoding: 'utf8' });
    const runLine = listed.split('\n').find((l) => /kt\/run[:\s]/.test(l)) ?? '';
    expect(lm.runImage.reference).toMatch(/^docker\.io\/kt\/run@sha256:[0-9a-f]{64}$/);
    expect(runLine).toContain(lm.runImage.reference.slice(lm.runImage.reference.indexOf('@') + 1));
    expect(new Set([...cfg.rootfs.diff_ids.slice(2), lm.runImage.topLayer]).size).toBe(5);
    // every entry of the layers kiln adds (directories too) has lifecycle's normalized mtime and
    // the CNB user (the launcher layer: root), so a rerun that writes the same files keeps the diffIDs
    for (let k = 2; k < 6; k++) {
      const entries = layerEntries(layout, k);
      expect(entries.length).toBeGreaterThan(0);
      for (const e of entries) expect(`${e.time} ${e.owner}`, `layer ${k} ${e.name}`).toBe(`1980-01-01 00:00:01 ${k === 5 && e.name.startsWith('cnb/') ? '0/0' : '1000/1001'}`);
    }

    const run = async (args: string[] | undefined, env: string[] = []) => {
      const r = await runBundle(bundle, { id: `kiln-cnb-shell-${process.pid}-${++n}`, ...(args === undefined ? {} : { args }), env });
      return { code: r.code, out: r.stdout + r.stderr };
    };
    expect(await run(undefined)).toEqual({ code: 0, out: 'web hello ok tool says x /workspace\nargs: \n' });
    expect(await run(['/cnb/process/worker'])).toEqual({ code: 0, out: 'worker hello ok tool says x /workspace\nargs: default-arg\n' });
    expect(await run(['/cnb/process/worker', 'a', 'b'])).toEqual({ code: 0, out: 'a hello ok tool says x /workspace\nargs: b\n' });
    expect(await run(undefined, ['GREETING=hi'])).toEqual({ code: 0, out: 'web hi ok tool says x /workspace\nargs: \n' });
    // the launcher with a command runs it in the app env
    expect(await run(['/cnb/lifecycle/launcher', 'sh', '-c', 'echo "$GREETING $EXECD"'])).toEqual({ code: 0, out: 'hello ok\n' });
  }, 300_000);

  test('deps app: build env from earlier layers (PATH order, suffix rules, platform env); cache layer reused after an app-only change, reinstalled after a deps change', async () => {
    const app = join(sb.dir, 'deps');
    await writeTree(app, {
      'project.toml': `${PROJECT_TOML}\n[[io.buildpacks.build.env]]\nname = "PLATFORM_VAR"\nvalue = "pv"\n\n[[io.buildpacks.build.env]]\nname = "OP_FORCED"\nvalue = "user"\n`,
      'deps.txt': 'left-pad\n',
      'main.txt': 'v1\n',
    });
    const first = await buildAndUnpack(app);
    expect(first.run.stderr).toContain('installing deps');
    const ws = (f: string) => readFile(join(first.rootfs, 'workspace', f), 'utf8');
    expect(await ws('installs.txt')).toBe('1\n');
    expect(await ws('tool-output.txt')).toBe('tool from deps: left-pad\n');
    const dump = await ws('env-dump.txt');
    expect(dump).toMatch(/^PATH=\/layers\/kt_cache-deps\/deps\/bin:\/usr\/local\/sbin:/m);
    expect(dump).toContain('DEPS_OVERRIDE=from-deps\nDEPS_DEFAULT=first\nDEPS_LIST=pre,appended\nPLATFORM_VAR=pv\n');
    // the builder's /cnb/build-config/env (operator) applies last: no suffix is a default, .override beats the user
    expect(dump).toContain('OP_DEFAULT=op\nOP_FORCED=forced\n');
    // the deps layer is cache+build only: not in the image; uses-deps' launch layer is
    expect(existsSync(join(first.rootfs, 'layers/kt_cache-deps'))).toBe(false);
    expect(await readFile(join(first.rootfs, 'layers/kt_uses-deps/marker/used'), 'utf8')).toBe('used\n');
    const cfg = await imageConfig(first.layout);
    // run (2) + uses-deps marker + app slice *.txt + rest of the app + launcher
    expect(cfg.rootfs.diff_ids).toHaveLength(6);
    expect(layerFiles(first.layout, 3).filter((f) => !f.endsWith('/'))).toEqual(['workspace/deps.txt', 'workspace/env-dump.txt', 'workspace/installs.txt', 'workspace/main.txt', 'workspace/tool-output.txt']);
    expect(layerFiles(first.layout, 4).filter((f) => !f.endsWith('/'))).toEqual(['workspace/project.toml']);
    // the slice and the rest: every entry (workspace/ too) normalized, owned by the CNB user
    for (const k of [3, 4]) for (const e of layerEntries(first.layout, k)) expect(`${e.time} ${e.owner}`, `layer ${k} ${e.name}`).toBe('1980-01-01 00:00:01 1000/1001');
    const md = JSON.parse(cfg.config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string }[] };
    expect(md.buildpacks.map((b) => b.id)).toEqual(['kt/cache-deps', 'kt/uses-deps']);

    await writeFile(join(app, 'main.txt'), 'v2\n');
    const second = await buildAndUnpack(app);
    expect(second.run.stderr).toContain('reusing deps');
    expect(await readFile(join(second.rootfs, 'workspace/installs.txt'), 'utf8')).toBe('1\n');
    expect(await readFile(join(second.rootfs, 'workspace/main.txt'), 'utf8')).toBe('v2\n');

    await writeFile(join(app, 'deps.txt'), 'left-pad\nright-pad\n');
    const third = await buildAndUnpack(app);
    expect(third.run.stderr).toContain('installing deps');
    expect(await readFile(join(third.rootfs, 'workspace/installs.txt'), 'utf8')).toBe('2\n');
    expect(await readFile(join(third.rootfs, 'workspace/tool-output.txt'), 'utf8')).toBe('tool from deps: left-pad\nright-pad\n');

    // another cache id: an empty cache, so the layer is installed again (count restarts)
    // (and an env:NAME option overrides project.toml's build env)
    const fourth = await buildAndUnpack(app, ['--build-arg', 'cache-id=other', '--build-arg', 'env:PLATFORM_VAR=from-arg']);
    expect(fourth.run.stderr).toContain('installing deps');
    expect(await readFile(join(fourth.rootfs, 'workspace/installs.txt'), 'utf8')).toBe('1\n');
    expect(await readFile(join(fourth.rootfs, 'workspace/env-dump.txt'), 'utf8')).toContain('PLATFORM_VAR=from-arg\n');
  }, 300_000);

  test('project buildpacks (schema 0.1): a uri directory of the app and an inline script, [[build.env]], gitignore-style exclude, builder as a build arg', async () => {
    const app = join(sb.dir, 'project-bps');
    const q = "'''";
    await writeTree(app, {
      'project.toml': [
        '# syntax=kiln/buildpacks',
        '[project]',
        'id = "bash-script"',
        '[build]',
        'exclude = ["*.md", "/secret"]',
        '[[build.buildpacks]]',
        'uri = "./my-bp"',
        '[[build.buildpacks]]',
        'id = "kt/inline"',
        '[build.buildpacks.script]',
        'api = "0.10"',
        `inline = ${q}`,
        'printf "%s\\n" "$FROM_PROJECT" > /workspace/inline.txt',
        `printf '[[processes]]\\ntype = "web"\\ncommand = ["cat", "/workspace/local.txt", "/workspace/inline.txt"]\\ndefault = true\\n' > "$CNB_LAYERS_DIR/launch.toml"`,
        q,
        '[[build.env]]',
        'name = "FROM_PROJECT"',
        'value = "yes"',
        '',
      ].join('\n'),
      'my-bp/buildpack.toml': 'api = "0.10"\n[buildpack]\nid = "kt/local"\nversion = "1.0.0"\n',
      'my-bp/bin/detect': '#!/bin/sh\nexit 0\n',
      'my-bp/bin/build': '#!/bin/sh\necho "local saw $FROM_PROJECT" > /workspace/local.txt\n',
      'README.md': 'excluded',
      secret: 'excluded',
      'docs/x.md': 'excluded',
      'docs/keep.txt': 'kept',
    });
    await chmod(join(app, 'my-bp/bin/detect'), 0o755);
    await chmod(join(app, 'my-bp/bin/build'), 0o755);
    const { layout, rootfs, bundle } = await buildAndUnpack(app, ['--build-arg', 'builder=kt/builder']);
    const md = JSON.parse((await imageConfig(layout)).config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string; version: string }[] };
    expect(md.buildpacks).toEqual([
      { id: 'kt/local', version: '1.0.0' },
      { id: 'kt/inline', version: '0.0.0' },
    ]);
    expect(existsSync(join(rootfs, 'workspace/README.md'))).toBe(false);
    expect(existsSync(join(rootfs, 'workspace/secret'))).toBe(false);
    expect(existsSync(join(rootfs, 'workspace/docs/x.md'))).toBe(false);
    expect(await readFile(join(rootfs, 'workspace/docs/keep.txt'), 'utf8')).toBe('kept');
    const r = await runBundle(bundle, { id: `kiln-cnb-inline-${process.pid}` });
    expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: 'local saw yes\nyes\n' });
  }, 300_000);

  test('a later buildpack redefining the default process type without default: a warning, and no default process', async () => {
    const app = join(sb.dir, 'redefined-default');
    const q = "'''";
    const inline = (id: string, launch: string): string[] => [
      '[[build.buildpacks]]',
      `id = "${id}"`,
      '[build.buildpacks.script]',
      'api = "0.10"',
      `inline = ${q}`,
      `printf '${launch}' > "$CNB_LAYERS_DIR/launch.toml"`,
      q,
    ];
    await writeTree(app, {
      'project.toml': [
        '# syntax=kiln/buildpacks',
        '[project]',
        'id = "redefine"',
        '[build]',
        ...inline('kt/first', '[[processes]]\\ntype = "web"\\ncommand = ["echo", "first"]\\ndefault = true\\n'),
        ...inline('kt/second', '[[processes]]\\ntype = "web"\\ncommand = ["echo", "second"]\\n'),
        '',
      ].join('\n'),
    });
    const { layout, run } = await buildAndUnpack(app, ['--build-arg', 'builder=kt/builder']);
    expect(run.stderr).toContain('redefining the following default process type with a process not marked as default: web');
    const md = JSON.parse((await imageConfig(layout)).config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { processes: { type: string; command: string[] }[]; 'buildpack-default-process-type'?: string };
    expect(md.processes.map((p) => [p.type, p.command])).toEqual([['web', ['echo', 'second']]]);
    expect(md['buildpack-default-process-type']).toBeUndefined();
  }, 300_000);

  test('a composite buildpack from project.toml expands to its order (probe optional, dropped)', async () => {
    const app = join(sb.dir, 'composite');
    await writeTree(app, {
      'project.toml': '# syntax=kiln/buildpacks\n[_]\nschema-version = "0.2"\nid = "meta"\nversion = "1.2.3"\nsource-url = "https://example.com/meta"\n[io.buildpacks]\nbuilder = "kt/builder"\n[[io.buildpacks.group]]\nid = "kt/site-meta"\n',
      'index.html': '<p>composite</p>\n',
    });
    const { layout, rootfs } = await buildAndUnpack(app);
    const md = JSON.parse((await imageConfig(layout)).config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string }[] };
    expect(md.buildpacks.map((b) => b.id)).toEqual(['kt/httpd', 'kt/static-site']);
    expect(await readFile(join(rootfs, 'layers/kt_static-site/site/index.html'), 'utf8')).toBe('<p>composite</p>\n');
    expect(JSON.parse((await imageConfig(layout)).config.Labels?.['io.buildpacks.project.metadata'] ?? '')).toEqual({ source: { type: 'project', version: { declared: '1.2.3' }, metadata: { url: 'https://example.com/meta' } } });
  }, 300_000);

  test('launcher=none: the default process baked into the config (command, args, launch env), no launcher in the image', async () => {
    const app = join(sb.dir, 'shell-none');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'app.sh': 'echo "$1 $GREETING ${EXECD-unset} $(tool x) $(pwd)"\n' });
    const { layout, rootfs, bundle } = await buildAndUnpack(app, ['--build-arg', 'launcher=none', '--build-arg', 'process-type=worker']);
    const cfg = (await imageConfig(layout)).config;
    expect(cfg.Entrypoint).toEqual(['sh', '/workspace/app.sh']);
    expect(cfg.Cmd).toEqual(['worker', 'default-arg']);
    expect(cfg.WorkingDir).toBe('/workspace');
    expect(cfg.Env).toContain('GREETING=hello');
    expect(cfg.Env).toContain('PATH=/layers/kt_shell-app/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    expect(existsSync(join(rootfs, 'cnb/lifecycle/launcher'))).toBe(false);
    const r = await runBundle(bundle, { id: `kiln-cnb-none-${process.pid}` });
    expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({ code: 0, out: 'worker hello unset tool says x /workspace\n' });
  }, 300_000);

  test('an empty app: no group passes detection (KLN0903)', async () => {
    const app = join(sb.dir, 'empty');
    await writeTree(app, { 'project.toml': PROJECT_TOML });
    const r = await kiln(['build', app, '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KLN0903');
    expect(r.stderr).toContain('no buildpack group passed detection (tried [kt/static-site, kt/httpd] [kt/httpd, kt/static-site, kt/probe?] [kt/shell-app] [kt/cache-deps, kt/uses-deps])');
  }, 300_000);

  test('a detect that exits 3 is an error naming the buildpack and its output (KLN0904)', async () => {
    const app = join(sb.dir, 'crash');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'crash-detect': '' });
    // -f names the entry file; its syntax line selects the frontend
    const r = await kiln(['build', app, '-f', join(app, 'project.toml'), '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KLN0904');
    expect(r.stderr).toContain('kt/httpd detect exited with status 3: httpd detect crashed on purpose');
  }, 300_000);

  test('a failing bin/build fails the build naming the step, the program, its exit code and output', async () => {
    const app = join(sb.dir, 'fail-build');
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'app.sh': 'echo hi\n', 'fail-build': '' });
    const r = await kiln(['build', app, '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('process "/.kiln/build /cnb/buildpacks/kt_shell-app/0.0.1/bin/build /layers/kt_shell-app /platform /kiln/plan/plan.toml" did not complete successfully: exit code: 7');
    expect(r.stderr).toContain('in [build] kt/shell-app@0.0.1');
    expect(r.stderr).toContain('shell-app build failed on purpose');
  }, 300_000);

  test('without project.toml selecting kiln/buildpacks there is no default entry file; --frontend kiln/buildpacks means CONTEXT/project.toml', async () => {
    const app = join(sb.dir, 'plain');
    await writeTree(app, { 'project.toml': '[_]\nschema-version = "0.2"\n', 'index.html': 'x' });
    const r = await kiln(['build', app, '--root', sb.root], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot read Dockerfile');
    expect(await readdir(app)).toEqual(['index.html', 'project.toml']);
    // --frontend picks it explicitly (no syntax line needed); the builder comes as a build arg
    const ok = await kiln(['build', app, '--frontend', 'kiln/buildpacks', '--build-arg', 'builder=kt/builder', '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain('[build] kt/static-site@0.0.1');
    const empty = join(sb.dir, 'no-project');
    await writeTree(empty, { 'index.html': 'x' });
    const none = await kiln(['build', empty, '--frontend', 'kiln/buildpacks', '--root', sb.root], sb.dir);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`cannot read project file ${join(empty, 'project.toml')}: no such file`);
  }, 300_000);
});
