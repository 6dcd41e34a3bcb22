import { execFileSync, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { copy, encodeDefinition, image, local } from '@kiln/llb-core';
import { ImageStore } from '@kiln/runtime';
import { kilnBin, type KilnRun, type KilnSandbox, parseRawJson, repo, runKiln, token, useSandbox, writeTree } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** Runs `kiln solve -` with `def` on stdin. */
function solveStdin(args: readonly string[], def: Uint8Array): Promise<KilnRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, 'solve', '-', ...args], { env: { ...process.env, PATH: sb.path }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const stderrBytes = Buffer.concat(err);
      resolve({ code, signal, stdout, stderr: stderrBytes.toString(), stderrBytes });
    });
    child.stdin.end(def);
  });
}

describe('kiln solve (raw LLB from the State API)', () => {
  test('runs a Definition with a local source and exports local, OCI (umoci) and tar outputs', async () => {
    const t = token();
    const ctx = join(sb.dir, `solve-ctx-${t}`);
    await writeTree(ctx, { 'in.txt': `input-${t}\n` });
    const base = image('busybox');
    const built = base.run({ args: ['/bin/sh', '-c', `cat /src/in.txt > /made.txt && echo ${t} >> /made.txt`], mounts: [{ target: '/src', source: local('ctx'), readonly: true }] }).root();
    const def = encodeDefinition(await built.file(copy(local('ctx'), '/in.txt', '/copied.txt')).marshal());
    const file = join(sb.dir, `def-${t}.pb`);
    await writeFile(file, def);
    const out = join(sb.dir, `solve-out-${t}`);
    const layout = join(sb.dir, `solve-oci-${t}`);
    const tar = join(sb.dir, `solve-fs-${t}.tar`);
    const r = await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'rawjson', '--local', `ctx=${ctx}`, '-o', `type=local,dest=${out}`, '-o', `type=oci,dest=${layout},tar=false,name=solved:${t}`, '-o', `type=tar,dest=${tar}`]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'made.txt'), 'utf8')).toBe(`input-${t}\n${t}\n`);
    expect(await readFile(join(out, 'copied.txt'), 'utf8')).toBe(`input-${t}\n`);
    const bundle = join(sb.dir, `solve-bundle-${t}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:${t}`, bundle], { stdio: 'pipe' });
    expect(await readFile(join(bundle, 'rootfs/made.txt'), 'utf8')).toBe(`input-${t}\n${t}\n`);
    const listing = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    expect(listing).toContain('copied.txt');
    expect(listing).toContain('bin/busybox');

    // The same Definition from stdin: every op cached, no container.
    const n = await sb.containersStarted();
    const again = await solveStdin(['--root', sb.root, '--progress', 'rawjson', '--local', `ctx=${ctx}`], def);
    expect(again.code).toBe(0);
    const ops = parseRawJson(again.stderr).filter((v) => !v.name.startsWith('local://'));
    expect(ops.length).toBeGreaterThanOrEqual(3);
    expect(ops.every((v) => v.cached)).toBe(true);
    expect(await sb.containersStarted()).toBe(n);
  });

  test('a missing local directory and a non-LLB input are clear errors with exit status 1', async () => {
    const def = encodeDefinition(await image('busybox').file(copy(local('nope'), '/x', '/x')).marshal());
    const r = await solveStdin(['--root', sb.root, '--progress', 'plain'], def);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('local source "nope"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const junk = await solveStdin(['--root', sb.root], new TextEncoder().encode('{"not": "protobuf"}'));
    expect(junk.code).toBe(1);
    expect(junk.stderr).toContain('KLN0706');
  });
});

describe('kiln solve runs Definitions marshaled by BuildKit v0.11.6 Go client/llb (shared/conformance/llb-ops)', () => {
  // Vectors whose sources are available offline: `localhost:5000/busybox` and `…/files` are the
  // busybox image made from busybox-static, tagged with those names in the kiln store. Not here:
  // exec-ssh (runs ssh-add, which busybox lacks), diff*/exec-mounts (DiffOp and writable subpath
  // mounts with outputs are not in the worker yet), and vectors needing other images, git or http.
  const cases = [
    'exec-basic', 'exec-chained-env', 'exec-meta', 'exec-tmpfs', 'exec-readonly-rootfs', 'exec-cache-mounts', 'exec-network-security', 'exec-caps-all',
    'exec-secrets', 'file-copy-from-action', 'file-copy-flags', 'file-mkdir', 'file-mkfile', 'file-rm', 'merge', 'merge-degenerate', 'scratch-mkfile', 'source-local',
  ];
  let agent: { sock: string; stop: () => void } | undefined;

  beforeAll(async () => {
    const images = await ImageStore.open(sb.root);
    const busybox = await images.mustGet('docker.io/library/busybox:latest');
    await images.put('localhost:5000/busybox:latest', busybox.target);
    await images.put('localhost:5000/files:latest', busybox.target);
    await writeTree(join(sb.dir, 'llb-ctx'), { 'plain': 'plain\n', 'src/a.txt': 'a\n', 'src/sub/b.txt': 'b\n', 'secret-a': 'secret a\n' });
    const sock = join(sb.dir, 'agent.sock');
    const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await import('node:fs')).existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
    agent = { sock, stop: () => child.kill() };
  });

  afterAll(() => agent?.stop());

  test.for(cases)('%s', async (name) => {
    const ctx = join(sb.dir, 'llb-ctx');
    const r = await runKiln(
      sb,
      [
        'solve', join(repo, '../shared/conformance/llb-ops', `${name}.pb`), '--root', sb.root, '--progress', 'plain', '--allow', 'security.insecure', '--allow', 'network.host',
        '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`, '--secret', `id=/run/secrets/a,src=${join(ctx, 'secret-a')}`, '--secret', 'id=token-id,env=KILN_TEST_TOKEN', '--ssh', 'default',
      ],
      { env: { KILN_TEST_TOKEN: 'token', SSH_AUTH_SOCK: agent?.sock ?? '' } },
    );
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    expect(r.stderr).toMatch(/#1 /);
  });
});

describe('kiln du and kiln prune', () => {
  test('du lists results and cache mounts; prune --keep-storage within budget keeps all; prune --all removes everything and the next solve runs again', async () => {
    const t = token();
    const cacheDef = encodeDefinition(
      await image('busybox')
        .run({ args: ['/bin/sh', '-c', `dd if=/dev/zero of=/cache/blob-${t} bs=1024 count=300 2>/dev/null && echo ${t} > /done`], mounts: [{ target: '/cache', cache: { id: `du-${t}`, sharing: 'shared' } }] })
        .root()
        .marshal(),
    );
    const file = join(sb.dir, `du-${t}.pb`);
    await writeFile(file, cacheDef);
    expect((await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain'])).code).toBe(0);
    const du = await runKiln(sb, ['du', '--root', sb.root, '--verbose']);
    expect(du.code).toBe(0);
    expect(du.stdout).toContain(`cache mount du-${t}`);
    expect(du.stdout).toContain(`echo ${t}`);
    expect(du.stdout).toMatch(/Total:\s+\S+/);

    const within = await runKiln(sb, ['prune', '--root', sb.root, '--keep-storage', '10GB', '--verbose']);
    expect(within.code).toBe(0);
    expect(within.stdout).toMatch(/^Total:\s+0B/);
    const pruned = await runKiln(sb, ['prune', '--root', sb.root, '--all', '--verbose']);
    expect(pruned.code).toBe(0);
    expect(pruned.stdout).toContain(`cache mount du-${t}`);
    const after = await runKiln(sb, ['du', '--root', sb.root]);
    expect(after.stdout).toMatch(/Total:\s+0B/);
    const n = await sb.containersStarted();
    expect((await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain'])).code).toBe(0);
    expect((await sb.containersStarted()) - n).toBe(1);

    const bad = await runKiln(sb, ['prune', '--root', sb.root, '--keep-storage', 'lots']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid size');
  });
});
