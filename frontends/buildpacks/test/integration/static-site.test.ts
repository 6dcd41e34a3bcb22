import { execFileSync, spawnSync } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PROJECT_TOML, freePort, imageConfig, kiln, runBundle, unpack, writeTree, type Sandbox, useSandbox } from './helpers.js';

let sb: Sandbox;
// reproducible image `created` (the exporter's SOURCE_DATE_EPOCH), so a rebuild can give the same digest
const EPOCH = { SOURCE_DATE_EPOCH: '315532801' };
useSandbox((s) => (sb = s));

describe('kiln/buildpacks: static site', () => {
  test('g2 chosen (httpd + static-site, probe dropped); the image serves index.html on loopback; rebuild all cached, same digest', async () => {
    const app = join(sb.dir, 'site');
    const page = '<h1>hello from kiln buildpacks</h1>\n';
    await writeTree(app, { 'project.toml': PROJECT_TOML, 'index.html': page, 'about.html': '<p>about</p>\n' });
    const layout = join(sb.dir, 'site.oci');
    const r = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${layout},tar=false,name=site:1`], sb.dir, EPOCH);
    expect(r.stderr).toContain('[detect] kt/probe@0.0.1');
    expect(r.code, r.stderr).toBe(0);

    const cfg = await imageConfig(layout);
    expect(cfg.config.Entrypoint).toEqual(['/cnb/process/web']);
    expect(cfg.config.Cmd).toBeUndefined();
    expect(cfg.config.WorkingDir).toBe('/workspace');
    expect(cfg.config.User).toBe('1002:1001');
    expect(cfg.config.Env).toEqual([
      'PATH=/cnb/process:/cnb/lifecycle:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'HOME=/home/cnb',
      'CNB_LAYERS_DIR=/layers',
      'CNB_APP_DIR=/workspace',
      'CNB_PLATFORM_API=0.14',
      'CNB_DEPRECATION_MODE=quiet',
    ]);
    const buildMd = JSON.parse(cfg.config.Labels?.['io.buildpacks.build.metadata'] ?? '{}') as { buildpacks: { id: string }[]; processes: { type: string; buildpackID: string; command: string[] }[] };
    expect(buildMd.buildpacks.map((b) => b.id)).toEqual(['kt/httpd', 'kt/static-site']);
    expect(buildMd.processes).toMatchObject([{ type: 'web', buildpackID: 'kt/static-site', command: ['serve'] }]);
    const lifecycleMd = JSON.parse(cfg.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as { buildpacks: { key: string; layers: Record<string, { launch: boolean; data: unknown }> }[] };
    expect(lifecycleMd.buildpacks).toMatchObject([
      { key: 'kt/httpd', layers: { httpd: { launch: true, data: { server: 'busybox httpd' } } } },
      { key: 'kt/static-site', layers: { site: { launch: true } } },
    ]);
    // run image (2 layers) + httpd + site + app + launcher
    expect(cfg.rootfs.diff_ids).toHaveLength(6);

    const bundle = join(sb.dir, 'site-bundle');
    const spec = await unpack(layout, '1', bundle);
    expect(spec.process.args).toEqual(['/cnb/process/web']);
    expect(spec.process.cwd).toBe('/workspace');
    const rootfs = join(bundle, 'rootfs');
    expect(await readFile(join(rootfs, 'workspace/index.html'), 'utf8')).toBe(page);
    expect(await readFile(join(rootfs, 'layers/kt_static-site/site/index.html'), 'utf8')).toBe(page);
    expect((await readdir(join(rootfs, 'layers/kt_httpd/httpd/bin'))).sort()).toEqual(['serve']);
    expect(await readFile(join(rootfs, 'layers/config/metadata.toml'), 'utf8')).toContain('type = "web"');
    // app and layers belong to the CNB user of the build (1000:1001), the launcher to root
    const owner = async (p: string): Promise<string> => { const st = await stat(join(rootfs, p)); return `${st.uid}:${st.gid}`; };
    expect(await owner('workspace')).toBe('1000:1001');
    expect(await owner('workspace/index.html')).toBe('1000:1001');
    expect(await owner('layers/kt_httpd/httpd/bin/serve')).toBe('1000:1001');
    expect(await owner('cnb/lifecycle/launcher')).toBe('0:0');
    expect((await stat(join(rootfs, 'workspace/index.html'))).mtime.toISOString()).toBe('1980-01-01T00:00:01.000Z');
    expect(execFileSync('readlink', [join(rootfs, 'cnb/process/web')], { encoding: 'utf8' }).trim()).toBe('/cnb/lifecycle/launcher');

    // the default process: httpd on 127.0.0.1:PORT (the PORT default overridden by the user env)
    const port = await freePort();
    const id = `kiln-cnb-site-${process.pid}`;
    const server = runBundle(bundle, { id, env: [`PORT=${port}`] });
    let body = '';
    for (let i = 0; i < 50 && body === ''; i++) {
      await new Promise((res) => setTimeout(res, 100));
      try {
        body = execFileSync('busybox', ['wget', '-qO-', `http://127.0.0.1:${port}/index.html`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        body = '';
      }
    }
    spawnSync('runc', ['kill', id, 'KILL'], { stdio: 'ignore' });
    const ran = await server;
    spawnSync('runc', ['delete', '-f', id], { stdio: 'ignore' });
    expect(body, `server output: ${ran.stdout}${ran.stderr}`).toBe(page);

    // same inputs: every step cached, same image
    const again = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${layout}-2,tar=false,name=site:1`], sb.dir, EPOCH);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/\[build\] kt\/static-site@0.0.1\n#\d+ CACHED/);
    expect(again.stderr).toMatch(/\[detect\] kt\/probe@0.0.1\n#\d+ CACHED/);
    expect(again.stderr).not.toMatch(/^#\d+ \[(detect|build|prepare)\][^\n]*\n(?!#\d+ CACHED)/m);
    const digest = async (l: string): Promise<string> => (JSON.parse(await readFile(join(l, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]?.digest ?? '';
    expect(await digest(`${layout}-2`)).toBe(await digest(layout));

    // an app-only change: httpd reruns (its input, the build root, holds the app) but its layer
    // is the same bytes (exported mtimes are 1980-01-01T00:00:01Z), so the same diffID
    await writeFile(join(app, 'about.html'), '<p>about, changed</p>\n');
    const third = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${layout}-3,tar=false,name=site:1`], sb.dir, EPOCH);
    expect(third.code, third.stderr).toBe(0);
    const ids = (await imageConfig(`${layout}-3`)).rootfs.diff_ids;
    const before = cfg.rootfs.diff_ids;
    expect(ids.slice(0, 3)).toEqual(before.slice(0, 3)); // run image (2) + httpd
    expect(ids[3]).not.toBe(before[3]); // site: holds about.html
    expect(ids[4]).not.toBe(before[4]); // app
    expect(ids[5]).toBe(before[5]); // launcher and config

    // previous-image: the httpd buildpack finds its layer's metadata, claims it without a
    // directory, and the export copies it from the previous image (same diffID)
    const tagged = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '-t', 'site-prev:1'], sb.dir, EPOCH);
    expect(tagged.code, tagged.stderr).toBe(0);
    await writeFile(join(app, 'about.html'), '<p>about, changed again</p>\n');
    const reuse = await kiln(['build', app, '--root', sb.root, '--progress', 'plain', '--build-arg', 'previous-image=site-prev:1', '--output', `type=oci,dest=${layout}-4,tar=false,name=site:1`], sb.dir, EPOCH);
    expect(reuse.code, reuse.stderr).toBe(0);
    expect(reuse.stderr).toContain('reusing httpd from the previous image');
    expect(reuse.stderr).toContain('[export] layer kt/httpd:httpd (previous image)');
    const reused = await imageConfig(`${layout}-4`);
    expect(reused.rootfs.diff_ids[2]).toBe(before[2]);
    const md4 = JSON.parse(reused.config.Labels?.['io.buildpacks.lifecycle.metadata'] ?? '{}') as { buildpacks: { key: string; layers: Record<string, { data: unknown; sha: string }> }[] };
    expect(md4.buildpacks[0]).toMatchObject({ key: 'kt/httpd', layers: { httpd: { data: { server: 'busybox httpd' } } } });
    // the reused layer's sha (filled by the exporter, SOURCE_DATE_EPOCH set) is its diffID, the previous one
    expect(md4.buildpacks[0]?.layers['httpd']?.sha).toBe(before[2]);
    const bundle4 = join(sb.dir, 'site-bundle-4');
    await unpack(`${layout}-4`, '1', bundle4);
    expect((await readdir(join(bundle4, 'rootfs/layers/kt_httpd/httpd/bin'))).sort()).toEqual(['serve']);
  }, 300_000);
});
