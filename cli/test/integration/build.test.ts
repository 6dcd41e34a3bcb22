import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ImageStore } from '@kiln/runtime';
import { startRegistry } from '../../../runtime/test/helpers/registry.js';
import { type KilnSandbox, kilnBin, parseRawJson, processesMatching, rawJsonLogs, runKiln, token, useSandbox, writeTree } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** Overlap of two [started, completed] intervals in ms (negative: none). */
function overlapMs(a: { started?: number; completed?: number }, b: { started?: number; completed?: number }): number {
  if (a.started === undefined || a.completed === undefined || b.started === undefined || b.completed === undefined) return -1;
  return Math.min(a.completed, b.completed) - Math.max(a.started, b.started);
}

describe('kiln build (real runc, busybox base from busybox-static)', () => {
  test('independent stages run in parallel; result checked with umoci; unchanged rebuild starts no container', async () => {
    const t = token();
    const ctx = join(sb.dir, `multi-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox AS left',
        `RUN sleep 1 && echo left-${t} > /left.txt`,
        'FROM busybox AS right',
        `RUN sleep 1 && echo right-${t} > /right.txt`,
        'FROM busybox',
        'COPY --from=left /left.txt /out/',
        'COPY --from=right /right.txt /out/',
        'CMD ["cat", "/out/left.txt"]',
        '',
      ].join('\n'),
    });
    const layout = join(sb.dir, `multi-${t}.oci`);
    const before = await sb.containersStarted();
    const first = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--output', `type=oci,dest=${layout},tar=false,name=multi:${t}`]);
    expect(first.stderr).not.toMatch(/\n\s+at /);
    expect(first.code).toBe(0);
    expect((await sb.containersStarted()) - before).toBe(2);

    // Evidence of parallelism from the progress stream: both RUN vertices' intervals overlap.
    const vertices = parseRawJson(first.stderr);
    const left = vertices.find((v) => v.name.startsWith('[left ') && v.name.includes('RUN'));
    const right = vertices.find((v) => v.name.startsWith('[right ') && v.name.includes('RUN'));
    expect(left?.cached).toBe(false);
    expect(right?.cached).toBe(false);
    expect(overlapMs(left ?? {}, right ?? {})).toBeGreaterThan(500);

    // umoci unpacks the exported layout: the files of both stages are in the final image.
    const bundle = join(sb.dir, `bundle-${t}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:${`multi:${t}`.split(':')[1]}`, bundle], { stdio: 'pipe' });
    expect(await readFile(join(bundle, 'rootfs/out/left.txt'), 'utf8')).toBe(`left-${t}\n`);
    expect(await readFile(join(bundle, 'rootfs/out/right.txt'), 'utf8')).toBe(`right-${t}\n`);
    expect((await readdir(join(bundle, 'rootfs/bin'))).includes('busybox')).toBe(true);
    const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { args: string[] } };
    expect(config.process.args).toEqual(['cat', '/out/left.txt']);

    // Unchanged rebuild: every op vertex CACHED and no container started.
    const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson']);
    expect(again.code).toBe(0);
    // Local sources are re-synced every build (BuildKit's `[internal] load build context`); ops are cached.
    const ops = parseRawJson(again.stderr).filter((v) => !v.name.startsWith('[internal]') && !v.name.startsWith('local://') && !v.name.startsWith('exporting'));
    expect(ops.length).toBeGreaterThanOrEqual(5);
    expect(ops.filter((v) => !v.cached).map((v) => v.name)).toEqual([]);
    expect((await sb.containersStarted()) - before).toBe(2);
  });

  test('a one-file context change re-runs only the steps that depend on it', async () => {
    const t = token();
    const ctx = join(sb.dir, `change-${t}`);
    await writeTree(ctx, {
      'a.txt': `a-${t}\n`,
      'b.txt': `b-${t}\n`,
      'unrelated.txt': 'never copied\n',
      Dockerfile: [
        'FROM busybox',
        'COPY a.txt /a.txt',
        `RUN cat /a.txt > /a.out # ${t}`,
        'COPY b.txt /b.txt',
        'RUN cat /b.txt > /b.out',
        '',
      ].join('\n'),
    });
    const out1 = join(sb.dir, `change-${t}-1`);
    const first = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--output', `type=local,dest=${out1}`]);
    expect(first.code).toBe(0);
    expect(await readFile(join(out1, 'b.out'), 'utf8')).toBe(`b-${t}\n`);

    // An unrelated file changes: still everything cached.
    await writeFile(join(ctx, 'unrelated.txt'), 'changed, but nothing copies it\n');
    const n0 = await sb.containersStarted();
    const unrelated = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson']);
    expect(unrelated.code).toBe(0);
    expect(await sb.containersStarted()).toBe(n0);

    // b.txt changes: COPY b.txt and the RUN after it re-run; the a-steps stay cached.
    await writeFile(join(ctx, 'b.txt'), `b-changed-${t}\n`);
    const out2 = join(sb.dir, `change-${t}-2`);
    const second = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--output', `type=local,dest=${out2}`]);
    expect(second.code).toBe(0);
    const vs = parseRawJson(second.stderr);
    const named = (s: string): boolean | undefined => vs.find((v) => v.name.includes(s))?.cached;
    expect(named('COPY a.txt')).toBe(true);
    expect(named('RUN cat /a.txt')).toBe(true);
    expect(named('COPY b.txt')).toBe(false);
    expect(named('RUN cat /b.txt')).toBe(false);
    expect((await sb.containersStarted()) - n0).toBe(1);
    expect(await readFile(join(out2, 'b.out'), 'utf8')).toBe(`b-changed-${t}\n`);
    expect(await readFile(join(out2, 'a.out'), 'utf8')).toBe(`a-${t}\n`);
  });

  test('--no-cache-filter STAGE ignores the cache for that stage only; --no-cache re-runs everything; --target', async () => {
    const t = token();
    const ctx = join(sb.dir, `nocache-${t}`);
    await writeTree(ctx, {
      Dockerfile: ['FROM busybox AS one', `RUN echo one-${t} > /one`, 'FROM busybox AS two', `RUN echo two-${t} > /two`, 'FROM busybox AS final', 'COPY --from=one /one /one', 'COPY --from=two /two /two', `RUN cat /one /two > /both`, ''].join('\n'),
    });
    expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'])).code).toBe(0);
    const n0 = await sb.containersStarted();
    const filtered = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--no-cache-filter', 'final']);
    expect(filtered.code).toBe(0);
    const vs = parseRawJson(filtered.stderr);
    expect(vs.filter((v) => v.name.startsWith('[final ') && !v.name.includes('FROM')).map((v) => v.cached)).toEqual([false, false, false]);
    expect(vs.filter((v) => (v.name.startsWith('[one ') || v.name.startsWith('[two ')) && v.name.includes('RUN')).map((v) => v.cached)).toEqual([true, true]);
    expect((await sb.containersStarted()) - n0).toBe(1);
    const n1 = await sb.containersStarted();
    expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache'])).code).toBe(0);
    expect((await sb.containersStarted()) - n1).toBe(3);
    // --target builds only that stage.
    const out = join(sb.dir, `nocache-target-${t}`);
    expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--target', 'two', '-o', `type=local,dest=${out}`])).code).toBe(0);
    expect(await readFile(join(out, 'two'), 'utf8')).toBe(`two-${t}\n`);
    await expect(readFile(join(out, 'one'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a failing RUN: Dockerfile line, command, exit code and last output, exit status 1, no stack trace', async () => {
    const t = token();
    const ctx = join(sb.dir, `fail-${t}`);
    await writeTree(ctx, {
      Dockerfile: ['FROM busybox', `RUN echo ok-${t}`, `RUN echo "first line ${t}" && echo "last words ${t}" >&2 && exit 3`, 'RUN echo never', ''].join('\n'),
    });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    const report = r.stderr.slice(r.stderr.indexOf('kiln: error'));
    expect(report).toContain('Dockerfile:3:');
    expect(report).toContain(`RUN echo "first line ${t}"`);
    expect(report).toContain(`/bin/sh -c echo "first line ${t}" && echo "last words ${t}" >&2 && exit 3`);
    expect(report).toContain('exit code: 3');
    expect(report).toContain(`last words ${t}`);
    expect(report).toContain(`first line ${t}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a RUN whose program runc cannot start: runc\'s reason once in the report, with a hint per reason, exit status 1', async () => {
    const t = token();
    const cases = [
      { run: `RUN ["/missing-${t}"]`, reason: `exec: "/missing-${t}": stat /missing-${t}: no such file or directory`, hint: `hint: the container has no /missing-${t}: check the path` },
      { run: `RUN ["nosuch-${t}"]`, reason: `exec: "nosuch-${t}": executable file not found in $PATH`, hint: `hint: nosuch-${t} is not on the container's PATH` },
      { run: 'RUN ["/etc/passwd"]', reason: 'exec: "/etc/passwd": permission denied', hint: 'hint: /etc/passwd is not executable in the container' },
    ];
    for (const [i, c] of cases.entries()) {
      const ctx = join(sb.dir, `nostart-${t}-${i}`);
      await writeTree(ctx, { Dockerfile: `FROM busybox\n${c.run}\n` });
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
      expect(r.code).toBe(1);
      const report = r.stderr.slice(r.stderr.indexOf('kiln: error'));
      expect(report).toContain(`Dockerfile:2:1: runc run failed: unable to start container process: ${c.reason}\n  2 | ${c.run}\n${c.hint}`);
      expect(report.split(c.reason).length - 1).toBe(1);
      expect(report).not.toContain('last output lines');
    }
  });

  test('a COPY of a path that is not there (missing, or excluded by .dockerignore): the step is shown failed, the report names its Dockerfile line and what to check', async () => {
    const t = token();
    const ctx = join(sb.dir, `copy-missing-${t}`);
    await writeTree(ctx, {
      Dockerfile: ['FROM busybox', `RUN echo ok-${t}`, 'COPY here.txt /here', `COPY ignored-${t}.txt /x`, ''].join('\n'),
      'here.txt': 'here\n',
      [`ignored-${t}.txt`]: 'not sent\n',
      '.dockerignore': `ignored-${t}.txt\n`,
    });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`#(\\d+) \\[4/4\\] COPY ignored-${t}\\.txt /x\\n#\\1 ERROR: "/ignored-${t}\\.txt": not found`));
    const report = r.stderr.slice(r.stderr.indexOf('kiln: error'));
    expect(report).toContain(`Dockerfile:4:1: "/ignored-${t}.txt": not found`);
    expect(report).toContain(`4 | COPY ignored-${t}.txt /x`);
    expect(report).toContain('.dockerignore');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('RUN output that is not UTF-8 reaches --progress=plain and rawjson byte for byte', async () => {
    const t = token();
    const ctx = join(sb.dir, `bytes-${t}`);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN printf 'caf\\351 ${t}\\n\\377\\376\\n'`, ''].join('\n') });
    const plain = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache']);
    expect(plain.code).toBe(0);
    expect(plain.stderrBytes.includes(Buffer.concat([Buffer.from(' caf'), Buffer.from([0xe9]), Buffer.from(` ${t}\n`)]))).toBe(true);
    expect(plain.stderrBytes.includes(Buffer.from([0x20, 0xff, 0xfe, 0x0a]))).toBe(true);
    const raw = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--no-cache']);
    expect(raw.code).toBe(0);
    const data = raw.stdout.concat(raw.stderr).split('\n').filter((l) => l.startsWith('{"logs"'));
    const bytes = Buffer.concat(data.map((l) => Buffer.from((JSON.parse(l) as { logs: [{ data: string }] }).logs[0].data, 'base64')));
    expect(bytes).toEqual(Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(` ${t}\n`), Buffer.from([0xff, 0xfe, 0x0a])]));
  });

  test('a Dockerfile error points at FILE:LINE:COL and exits 1', async () => {
    const ctx = join(sb.dir, `syntax-${token()}`);
    await writeTree(ctx, { 'build.Dockerfile': 'FROM busybox\nRUNN echo hi\n' });
    const r = await runKiln(sb, ['build', ctx, '-f', join(ctx, 'build.Dockerfile'), '--root', sb.root, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/build\.Dockerfile:2:1: .*RUNN/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('-t stores the image in the kiln image store (--metadata-file, --iidfile); --secret and --build-arg reach the RUN; the secret stays out of the image', async () => {
    const t = token();
    const ctx = join(sb.dir, `tag-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        'ARG WHO',
        `RUN --mount=type=secret,id=tok test "$(sha256sum < /run/secrets/tok | cut -d' ' -f1)" = "${createHash('sha256').update(`s3cr3t-${t}`).digest('hex')}" && echo "hello $WHO" > /who.txt`,
        '',
      ].join('\n'),
    });
    const metaFile = join(sb.dir, `meta-${t}.json`);
    const iidFile = join(sb.dir, `iid-${t}`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', `tagged-${t}:v1`, '--build-arg', `WHO=${t}`, '--secret', 'id=tok,env=KILN_TEST_TOKEN', '--metadata-file', metaFile, '--iidfile', iidFile], {
      env: { KILN_TEST_TOKEN: `s3cr3t-${t}` },
    });
    expect(r.stderr).not.toContain(`s3cr3t-${t}`);
    expect(r.code).toBe(0);
    const images = await ImageStore.open(sb.root);
    const rec = await images.get(`docker.io/library/tagged-${t}:v1`);
    expect(rec?.target.digest).toMatch(/^sha256:/);
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, string>;
    expect(meta['containerimage.digest']).toBe(rec?.target.digest);
    expect(meta['image.name']).toBe(`docker.io/library/tagged-${t}:v1`);
    expect(await readFile(iidFile, 'utf8')).toBe(meta['containerimage.config.digest']);
    const layout = join(sb.dir, `tag-${t}.oci`);
    const exp = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--build-arg', `WHO=${t}`, '--secret', 'id=tok,env=KILN_TEST_TOKEN', '--output', `type=oci,dest=${layout},tar=false,name=x:1`], {
      env: { KILN_TEST_TOKEN: `s3cr3t-${t}` },
    });
    expect(exp.code).toBe(0);
    const bundle = join(sb.dir, `tag-bundle-${t}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:1`, bundle], { stdio: 'pipe' });
    expect(await readFile(join(bundle, 'rootfs/who.txt'), 'utf8')).toBe(`hello ${t}\n`);
    // The secret is in no exported byte (layers are gzip: search the unpacked rootfs too) and not under the kiln root.
    const grep = execFileSync('sh', ['-c', `grep -r -l -a "s3cr3t-${t}" ${layout} ${bundle} ${sb.root} || true`], { encoding: 'utf8' });
    expect(grep).toBe('');
  });

  test('.dockerignore applies to the context; --build-context NAME=dir, NAME=oci-layout:// and NAME=docker-image:// replace stages', async () => {
    const t = token();
    const ctx = join(sb.dir, `ignore-${t}`);
    const extra = join(sb.dir, `extra-${t}`);
    await writeTree(extra, { 'note.txt': `extra-${t}\n` });
    // An OCI layout holding the busybox image, exported by kiln itself from a first build.
    const layoutDir = join(sb.dir, `layout-${t}`);
    await writeTree(join(sb.dir, `base-${t}`), { Dockerfile: `FROM busybox\nRUN echo from-layout-${t} > /layout.txt\n` });
    const base = await runKiln(sb, ['build', join(sb.dir, `base-${t}`), '--root', sb.root, '--progress', 'plain', '--output', `type=oci,dest=${layoutDir},tar=false,name=base:v1`]);
    expect(base.code).toBe(0);
    await writeTree(ctx, {
      '.dockerignore': '*.secret\nbuild/\n!build/keep.txt\n',
      'app.txt': 'app\n',
      'token.secret': 'do not send\n',
      'build/out.o': 'object\n',
      'build/keep.txt': 'kept\n',
      Dockerfile: ['FROM base', 'COPY . /ctx', 'COPY --from=extra note.txt /note.txt', 'COPY --from=tools /etc/passwd /tools-passwd', ''].join('\n'),
    });
    const out = join(sb.dir, `ignore-out-${t}`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--build-context', `extra=${extra}`, '--build-context', `base=oci-layout://${layoutDir}:v1`, '--build-context', 'tools=docker-image://busybox', '--output', `type=local,dest=${out}`]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect((await readdir(join(out, 'ctx'))).sort()).toEqual(['.dockerignore', 'Dockerfile', 'app.txt', 'build']);
    expect(await readdir(join(out, 'ctx/build'))).toEqual(['keep.txt']);
    expect(await readFile(join(out, 'note.txt'), 'utf8')).toBe(`extra-${t}\n`);
    expect(await readFile(join(out, 'layout.txt'), 'utf8')).toBe(`from-layout-${t}\n`);
    expect(await readFile(join(out, 'tools-passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
  });

  test('--ssh ID=KEYFILE starts a private agent for the build (socket in the RUN) and stops it afterwards', async () => {
    const t = token();
    const ctx = join(sb.dir, `ssh-${t}`);
    const key = join(sb.dir, `key-${t}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN --mount=type=ssh,id=deploy,required=true test -S "$SSH_AUTH_SOCK" && echo agent-${t} > /ssh.txt`, ''].join('\n') });
    // The agent's socket is under this build's own TMPDIR: its processes are told apart from
    // other tests' agents by that (counting every ssh-agent caught one of a concurrent test).
    const tmp = join(sb.dir, `ssh-tmp-${t}`);
    await mkdir(tmp);
    const agents = (): string => execFileSync('sh', ['-c', 'pgrep -a -x ssh-agent || true'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(tmp)).join('\n');
    const out = join(sb.dir, `ssh-out-${t}`);
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--ssh', `deploy=${key}`, '--output', `type=local,dest=${out}`], { env: { TMPDIR: tmp } });
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'ssh.txt'), 'utf8')).toBe(`agent-${t}\n`);
    expect(agents()).toBe('');
    expect(await readdir(tmp)).toEqual([]);
    // Without --ssh the mount is required: a clear error at the RUN's line (when it runs).
    const missing = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/Dockerfile:2:1: .*deploy/);
  });

  test('--platform a,b exports an image index (skopeo), one local directory per platform and one tar with a directory per platform', async () => {
    const t = token();
    const ctx = join(sb.dir, `multiplat-${t}`);
    await writeTree(ctx, { 'a.txt': `${t}\n`, Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY a.txt /a-$TARGETARCH.txt\n' });
    const out = join(sb.dir, `multiplat-out-${t}`);
    const layout = join(sb.dir, `multiplat-oci-${t}`);
    const tar = join(sb.dir, `multiplat-${t}.tar`);
    const r = await runKiln(sb, [
      'build', ctx, '--root', sb.root, '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64',
      '-o', `type=local,dest=${out}`, '-o', `type=oci,dest=${layout},tar=false,name=mp:${t}`, '-o', `type=tar,dest=${tar}`,
    ]);
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    expect(await readFile(join(out, 'linux_arm64/a-arm64.txt'), 'utf8')).toBe(`${t}\n`);
    expect(await readFile(join(out, 'linux_amd64/a-amd64.txt'), 'utf8')).toBe(`${t}\n`);
    const entries = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).trim().split('\n');
    expect(entries).toEqual(expect.arrayContaining(['linux_amd64/a-amd64.txt', 'linux_arm64/a-arm64.txt']));
    expect(execFileSync('tar', ['-xOf', tar, 'linux_arm64/a-arm64.txt'], { encoding: 'utf8' })).toBe(`${t}\n`);
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:${t}`], { encoding: 'utf8' })) as { manifests: Array<{ platform: { architecture: string } }> };
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
  });

  test('BUILDKIT_MULTI_PLATFORM=1 with one platform still exports an index and a directory per platform, as BuildKit does for a multi-platform result', async () => {
    const t = token();
    const ctx = join(sb.dir, `oneplat-${t}`);
    await writeTree(ctx, { 'a.txt': `${t}\n`, Dockerfile: 'FROM scratch\nARG TARGETARCH\nCOPY a.txt /a-$TARGETARCH.txt\n' });
    const out = join(sb.dir, `oneplat-out-${t}`);
    const layout = join(sb.dir, `oneplat-oci-${t}`);
    const r = await runKiln(sb, [
      'build', ctx, '--root', sb.root, '--progress', 'plain', '--platform', 'linux/arm64', '--build-arg', 'BUILDKIT_MULTI_PLATFORM=1',
      '-o', `type=local,dest=${out}`, '-o', `type=oci,dest=${layout},tar=false,name=op:${t}`,
    ]);
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    expect(await readFile(join(out, 'linux_arm64/a-arm64.txt'), 'utf8')).toBe(`${t}\n`);
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:${t}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Array<{ platform: { architecture: string } }> };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(['arm64']);
    // Without the build arg, one platform is one manifest, and the local output is the root itself.
    const plain = join(sb.dir, `oneplat-plain-${t}`);
    expect((await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '-o', `type=local,dest=${plain}`])).code).toBe(0);
    expect(await readFile(join(plain, 'a-arm64.txt'), 'utf8')).toBe(`${t}\n`);
  });

  test('SOURCE_DATE_EPOCH: two --no-cache builds export byte-identical OCI tarballs with that created time', async () => {
    const t = token();
    const ctx = join(sb.dir, `sde-${t}`);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo ${t} > /made.txt && mkdir -p /var/made`, ''].join('\n') });
    const tars = [join(sb.dir, `sde-${t}-1.tar`), join(sb.dir, `sde-${t}-2.tar`)];
    for (const tar of tars) {
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--no-cache', '--output', `type=oci,dest=${tar}`], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
      expect(r.code).toBe(0);
    }
    const sha = (f: string): string => execFileSync('sha256sum', [f], { encoding: 'utf8' }).split(' ')[0] ?? '';
    expect(sha(tars[0] ?? '')).toBe(sha(tars[1] ?? ''));
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${tars[0] ?? ''}`], { encoding: 'utf8' })) as { created: string };
    expect(cfg.created).toBe('2023-11-14T22:13:20Z');
  });

  test('push to a real registry, pull back with skopeo; a fresh root builds FROM it through the registry', async () => {
    const registry = await startRegistry();
    try {
      const t = token();
      const ctx = join(sb.dir, `push-${t}`);
      await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo pushed-${t} > /pushed.txt`, 'CMD ["cat", "/pushed.txt"]', ''].join('\n') });
      const ref = `${registry.host}/kiln/e2e:${t}`;
      const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', ref, '--push']);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`pushed ${ref}`);
      const inspect = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${ref}`], { encoding: 'utf8' })) as { config: { Cmd: string[] } };
      expect(inspect.config.Cmd).toEqual(['cat', '/pushed.txt']);
      const pulled = join(sb.dir, `pulled-${t}`);
      execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${pulled}:${t}`], { stdio: 'pipe' });
      const bundle = join(sb.dir, `pulled-bundle-${t}`);
      execFileSync('umoci', ['unpack', '--image', `${pulled}:${t}`, bundle], { stdio: 'pipe' });
      expect(await readFile(join(bundle, 'rootfs/pushed.txt'), 'utf8')).toBe(`pushed-${t}\n`);

      // A fresh kiln root (nothing in its store) builds FROM the pushed image: resolved and pulled from the registry.
      const fresh = join(sb.dir, `fresh-root-${t}`);
      const ctx2 = join(sb.dir, `from-registry-${t}`);
      await writeTree(ctx2, { Dockerfile: [`FROM ${ref}`, 'RUN cat /pushed.txt > /again.txt', ''].join('\n') });
      const out = join(sb.dir, `from-registry-out-${t}`);
      const pulled2 = await runKiln(sb, ['build', ctx2, '--root', fresh, '--progress', 'plain', '--output', `type=local,dest=${out}`]);
      expect(pulled2.code, pulled2.stderr.slice(-1500)).toBe(0);
      expect(await readFile(join(out, 'again.txt'), 'utf8')).toBe(`pushed-${t}\n`);
    } finally {
      await registry.stop();
    }
  });

  test('Ctrl-C (SIGINT) aborts the build: exit 130, no container left, the next build works', async () => {
    const t = token();
    const ctx = join(sb.dir, `sigint-${t}`);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo started-${t} && sleep 60 && echo done-${t}`, ''].join('\n') });
    let sent = false;
    const t0 = Date.now();
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson'], {
      onStderr: (text, child) => {
        if (sent) return;
        const logs = [...rawJsonLogs(text).values()].join('');
        if (logs.includes(`started-${t}`)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.stderr).toContain('interrupted');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // The RUN's shell (its command line has the token) is gone: runc killed the container.
    await expect.poll(() => processesMatching(`started-${t}`), { timeout: 10_000 }).toEqual([]);
    // The cache store is still usable.
    const next = await runKiln(sb, ['du', '--root', sb.root]);
    expect(next.code).toBe(0);
    expect(next.stdout).toContain('Total:');
  });

  test("a terminal's Ctrl-C (SIGINT to kiln's whole process group) leaves no container running once kiln has exited", async () => {
    // Three times: before kiln's helpers and runc had process groups of their own, the signal
    // reached them too, and about one run in three left the container running after exit 130.
    for (let i = 0; i < 3; i++) {
      const t = token();
      const ctx = join(sb.dir, `sigint-group-${t}`);
      await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo started-${t} && sleep 60 && echo done-${t}`, ''].join('\n') });
      // Its own process group, as a shell's foreground job.
      const child = spawn(process.execPath, [kilnBin, 'build', ctx, '--root', sb.root, '--progress', 'rawjson', '--no-cache'], {
        env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
      });
      let stderr = '';
      let sent = false;
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (!sent && [...rawJsonLogs(stderr).values()].join('').includes(`started-${t}`)) {
          sent = true;
          process.kill(-(child.pid ?? 0), 'SIGINT');
        }
      });
      const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      expect(sent).toBe(true);
      expect(code).toBe(130);
      // Checked right at kiln's exit: its container is gone by then, not some time later.
      expect(processesMatching(`started-${t}`)).toEqual([]);
    }
  }, 120_000);
});
