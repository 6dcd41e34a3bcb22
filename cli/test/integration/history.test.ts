import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { encodeDefinition, image, local } from '@kiln/llb-core';
import { kilnBin, rawJsonLogs, repo, runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';
import type { CliIo } from '../../src/io.js';
import { main } from '../../src/main.js';

// `kiln history` end to end: real builds (runc, busybox) record themselves in the root, whether
// run by kiln build, bake or solve, in their own process or by kiln daemon; the history commands
// read the records back.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** No daemon: each build is its own process (a test below starts one on its own socket). */
const OWN = { KILN_DAEMON: '0' };

/** The JSON view `kiln history` prints of a record. */
interface Shown {
  ref: string;
  kind: string;
  name: string;
  status: string;
  interrupted?: boolean;
  context?: string;
  target?: string;
  buildArgs?: Record<string, string>;
  secrets?: string[];
  steps: { total: number; cached: number; completed: number };
  exports: { type: string; names: string[]; digest?: string; dest?: string }[];
  error?: { message: string; location?: { file: string; line: number; column: number }; report: string };
  log?: { size: number; truncated: boolean };
}

/** `kiln history ARGS --root ROOT` in this process (the command reads files only). */
async function history(args: readonly string[], root = sb.root): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdin: (async function* () {})(), stdout: { write: (c: string | Uint8Array) => (stdout += Buffer.from(c).toString()) }, stderr: { write: (c: string | Uint8Array) => (stderr += String(c)) }, env: {} };
  const code = await main(['node', 'kiln', 'history', ...args, '--root', root], io);
  return { code, stdout, stderr };
}

/** The records, newest first. */
async function records(root = sb.root): Promise<Shown[]> {
  const r = await history(['ls', '--format', 'json'], root);
  expect(r.code).toBe(0);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Shown);
}

describe('kiln history records real builds', () => {
  test('a build and a failed RUN: status, name, inputs (secret by id only), steps, exports, error with its line; logs replay the steps', async () => {
    const t = token();
    const secret = `s3cret-${t}-value`;
    const ok = join(sb.dir, `hist-ok-${t}`);
    await writeTree(ok, { Dockerfile: ['FROM busybox', `RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok && echo ok-${t}`, ''].join('\n') });
    const metaFile = join(sb.dir, `hist-meta-${t}.json`);
    const built = await runKiln(sb, ['build', ok, '--root', sb.root, '--progress', 'plain', '-t', `hist-${t}:1`, '--secret', 'id=tok,env=HIST_TOKEN', '--build-arg', 'GREETING=hello', '--metadata-file', metaFile], { env: { ...OWN, HIST_TOKEN: secret } });
    expect(built.stderr).not.toContain('kiln: error');
    expect(built.code).toBe(0);
    // --metadata-file names the record as buildx does (BUILDER/NODE/REF), and history takes that.
    const buildRef = (JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>)['buildx.build.ref'];
    expect(buildRef).toMatch(/^kiln\/kiln0\/[0-9a-z]{25}$/);
    const byMetaRef = await history(['inspect', String(buildRef), '--format', 'json']);
    expect(byMetaRef.code).toBe(0);
    expect(JSON.parse(byMetaRef.stdout)).toMatchObject({ ref: String(buildRef).split('/')[2], name: `hist-ok-${t}` });
    const bad = join(sb.dir, `hist-bad-${t}`);
    await writeTree(bad, { Dockerfile: ['FROM busybox', `RUN echo before-${t}`, `RUN echo failing-${t} && exit 3`, ''].join('\n') });
    const failed = await runKiln(sb, ['build', bad, '--root', sb.root, '--progress', 'plain'], { env: OWN });
    expect(failed.code).toBe(1);

    const [last, prev] = await records();
    expect(last).toMatchObject({ kind: 'build', name: `hist-bad-${t}`, status: 'error', context: bad });
    expect(last?.error?.location).toEqual({ file: 'Dockerfile', line: 3, column: 1, source: `RUN echo failing-${t} && exit 3` });
    expect(last?.error?.message).toBe(`Dockerfile:3:1: process "/bin/sh -c echo failing-${t} && exit 3" did not complete successfully: exit code: 3`);
    expect(last?.error?.report).toContain(`  > failing-${t}`);
    expect(prev).toMatchObject({ kind: 'build', name: `hist-ok-${t}`, status: 'completed', context: ok, buildArgs: { GREETING: 'hello' }, secrets: ['tok'] });
    // The digest the build printed for its image.
    const digest = new RegExp(`image \\S*hist-${t}:1: (sha256:[0-9a-f]{64})`).exec(built.stderr)?.[1];
    expect(digest).toBeDefined();
    expect(prev?.exports).toEqual([{ type: 'image', names: [`docker.io/library/hist-${t}:1`], digest, pushed: [] }]);
    // [internal] definition and context loads, FROM, the RUN, the export.
    expect(prev?.steps.total).toBeGreaterThanOrEqual(4);
    expect(prev?.steps.completed).toBe(prev?.steps.total);
    expect(last?.steps.completed).toBeLessThan(last?.steps.total ?? 0);

    // logs: the stored log through the plain renderer shows the steps and their output.
    const logs = await history(['logs', prev?.ref as string]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toMatch(new RegExp(`#\\d+ \\[stage-0 2/2\\] RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok && echo ok-${t}\\n`));
    expect(logs.stdout).toMatch(new RegExp(`#\\d+ \\d+\\.\\d{3} ok-${t}\\n`));
    expect(logs.stdout).toMatch(/#\d+ DONE \d+\.\ds\n/);
    const failedLogs = await history(['logs']);
    expect(failedLogs.stdout).toMatch(new RegExp(`#\\d+ \\d+\\.\\d{3} failing-${t}\\n#\\d+ ERROR: `));
    const raw = await history(['logs', '^1', '--progress', 'rawjson']);
    expect([...rawJsonLogs(raw.stdout).values()].join('')).toContain(`ok-${t}`);
    const inspect = await history(['inspect', '^0']);
    expect(inspect.stdout).toContain('Status:         Error\n');
    expect(inspect.stdout).toContain(`  3 | RUN echo failing-${t} && exit 3`);

    // The secret's value is nowhere in the history: not in a record, not in a (decompressed) log.
    const dir = join(sb.root, 'history');
    for (const name of await readdir(dir)) {
      const bytes = await readFile(join(dir, name));
      const text = (name.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('latin1');
      expect(text).not.toContain(secret);
    }
  });

  test('Ctrl-C: the record says canceled', async () => {
    const t = token();
    const ctx = join(sb.dir, `hist-int-${t}`);
    await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo started-${t} && sleep 60 && echo done-${t}`, ''].join('\n') });
    let sent = false;
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'rawjson'], {
      env: OWN,
      onStderr: (text, child) => {
        if (sent || ![...rawJsonLogs(text).values()].join('').includes(`started-${t}`)) return;
        sent = true;
        child.kill('SIGINT');
      },
    });
    expect(r.code).toBe(130);
    const [last] = await records();
    expect(last).toMatchObject({ name: `hist-int-${t}`, status: 'canceled' });
    expect(last?.interrupted).toBeUndefined();
    expect((await history(['ls', '--filter', 'status=canceled'])).stdout).toMatch(new RegExp(`${last?.ref} +hist-int-${t} +Canceled `));
  });

  test('bake: one record per target, named by the target', async () => {
    const t = token();
    const dir = join(sb.dir, `hist-bake-${t}`);
    await writeTree(dir, {
      Dockerfile: ['FROM busybox AS a', `RUN echo a-${t} > /a`, 'FROM busybox AS b', `RUN echo b-${t} > /b`, ''].join('\n'),
      'docker-bake.hcl': ['group "default" {', '  targets = ["app-a", "app-b"]', '}', 'target "app-a" {', '  target = "a"', '}', 'target "app-b" {', '  target = "b"', '}', ''].join('\n'),
    });
    const r = await new Promise<KilnRun>((resolve, reject) => {
      const child = spawn(process.execPath, [kilnBin, 'bake', '--root', sb.root, '--progress', 'plain', '--metadata-file', 'meta.json'], { cwd: dir, env: { ...process.env, PATH: sb.path, ...OWN }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, stdout: '', stderr, stderrBytes: Buffer.from(stderr) }));
    });
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    const recs = (await records()).slice(0, 2);
    expect(recs.map((x) => [x.kind, x.name, x.status, x.target]).sort()).toEqual([
      ['bake', 'app-a', 'completed', 'a'],
      ['bake', 'app-b', 'completed', 'b'],
    ]);
    // Each target's --metadata-file entry names its own record.
    const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    for (const x of recs) expect(meta[x.name]?.['buildx.build.ref']).toBe(`kiln/kiln0/${x.ref}`);
    // Each target's log is its own build's: its RUN, not the other's.
    const a = recs.find((x) => x.name === 'app-a');
    const logs = await history(['logs', a?.ref as string]);
    expect(logs.stdout).toContain(`RUN echo a-${t} > /a`);
    expect(logs.stdout).not.toContain(`RUN echo b-${t}`);
  });

  test('bake --execution defer-output: a target that is another\'s target: context records its own outputs\' export too (its second build), not the private image', async () => {
    const t = token();
    const dir = join(sb.dir, `hist-bake-do-${t}`);
    const out = join(sb.dir, `hist-bake-do-out-${t}`);
    await writeTree(dir, {
      Dockerfile: ['FROM busybox AS base', `RUN echo base-${t} > /b`, 'FROM busybox AS app', 'COPY --from=based /b /b', ''].join('\n'),
      'docker-bake.hcl': ['group "default" {', '  targets = ["base", "app"]', '}', 'target "base" {', '  target = "base"', `  output = ["type=local,dest=${out}/base"]`, '}', 'target "app" {', '  target = "app"', '  contexts = { based = "target:base" }', `  output = ["type=local,dest=${out}/app"]`, '}', ''].join('\n'),
    });
    // The outputs go beside the bake's directory: writing there is granted, as buildx asks.
    const r = await runKiln(sb, ['bake', '--root', sb.root, '--progress', 'plain', '--execution', 'defer-output', '-f', join(dir, 'docker-bake.hcl'), '--allow', `fs.write=${sb.dir}`], { env: OWN, cwd: dir });
    expect(r.stderr).not.toContain('kiln: error');
    expect(r.code).toBe(0);
    const base = (await records()).find((x) => x.name === 'base');
    expect(base).toMatchObject({ status: 'completed', exports: [{ type: 'local', names: [], dest: `${out}/base` }] });
    const logs = await history(['logs', base?.ref as string]);
    expect(logs.stdout).toContain(`RUN echo base-${t} > /b`);
    // Its own output, exported after the barrier by the second build of the same definition.
    expect(logs.stdout).toMatch(new RegExp(`#\\d+ copying files to ${out}/base\\n`));
    // The RUN ran in this bake: the second build finding it cached does not make it a cached step.
    expect(base?.steps.cached).toBeLessThan(base?.steps.total ?? 0);
  });

  test('solve: a raw Definition is recorded under its file name', async () => {
    const t = token();
    const ctx = join(sb.dir, `hist-solve-ctx-${t}`);
    await writeTree(ctx, { 'in.txt': `in-${t}\n` });
    const def = encodeDefinition(await image('busybox').run({ args: ['/bin/sh', '-c', `cat /src/in.txt && echo solved-${t}`], mounts: [{ target: '/src', source: local('ctx'), readonly: true }] }).root().marshal());
    const file = join(sb.dir, `hist-${t}.pb`);
    await writeFile(file, def);
    const r = await runKiln(sb, ['solve', file, '--root', sb.root, '--progress', 'plain', '--local', `ctx=${ctx}`], { env: OWN });
    expect(r.code).toBe(0);
    const [last] = await records();
    expect(last).toMatchObject({ kind: 'solve', name: `hist-${t}.pb`, status: 'completed' });
    expect((await history(['logs'])).stdout).toMatch(new RegExp(`#\\d+ \\d+\\.\\d{3} solved-${t}\\n`));
  });

  test('kiln daemon: its builds are recorded in its root; history commands run beside it (Node and Perl clients)', async () => {
    const socket = join(sb.dir, `hist-run-${token()}`, 'kilnd.sock');
    const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    try {
      const t = token();
      const ctx = join(sb.dir, `hist-daemon-${t}`);
      await writeTree(ctx, { Dockerfile: ['FROM busybox', `RUN echo daemon-${t}`, ''].join('\n') });
      const env = { KILN_HOST: `unix://${socket}` };
      const built = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env });
      expect(built.code).toBe(0);
      // The daemon ran it (its log names each command it served).
      await expect.poll(() => d.log()).toContain('build: client pid');
      for (const client of [[process.execPath, kilnBin], [join(repo, 'cli/bin/kiln')]]) {
        const ls = await new Promise<KilnRun>((resolve, reject) => {
          const child = spawn(client[0] as string, [...client.slice(1), 'history', 'ls', '--root', sb.root, '--format', 'json', '--filter', `name=hist-daemon-${t}`], { env: { ...process.env, PATH: sb.path, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
          child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
          child.once('error', reject);
          child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, stderrBytes: Buffer.from(stderr) }));
        });
        expect(ls.stderr).toBe('');
        expect(ls.code).toBe(0);
        expect(JSON.parse(ls.stdout) as Shown).toMatchObject({ name: `hist-daemon-${t}`, status: 'completed' });
      }
      // rm beside the daemon: the record goes, the daemon's next build records again.
      const [rec] = await records();
      expect((await history(['rm', rec?.ref as string])).code).toBe(0);
      expect((await records()).some((x) => x.ref === rec?.ref)).toBe(false);
      const again = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env });
      expect(again.code).toBe(0);
      const [next] = await records();
      expect(next).toMatchObject({ name: `hist-daemon-${t}`, status: 'completed' });
      expect(next?.steps.cached).toBeGreaterThan(0);
    } finally {
      d.child.kill('SIGTERM');
      await d.exited;
    }
  });
});
