import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { kilnBin, processesMatching, repo, startDaemon, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// `kiln bake` served by `kiln daemon`: the daemon runs in another directory with another
// environment; the bake files, contexts, outputs, variables and stdin are the caller's.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** Node's client by default; `perlClient` is cli/bin/kiln, the launcher's Perl fast path. */
const perlClient = [join(repo, 'cli/bin/kiln')];

function bake(
  cwd: string,
  args: readonly string[],
  env: Record<string, string>,
  stdin = '',
  onStderr?: (text: string, child: import('node:child_process').ChildProcess) => void,
  client: readonly string[] = [process.execPath, kilnBin],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [bin = process.execPath, ...pre] = client;
    const child = spawn(bin, [...pre, 'bake', '--root', sb.root, ...args], { cwd, env: { ...process.env, PATH: sb.path, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, child);
    });
    child.stdin.end(stdin);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('through kiln daemon: -f relative to the caller, variables and --set args from the caller\'s environment, outputs and --metadata-file in the caller\'s directory, -f - from the caller\'s stdin', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-daemon-paths-${t}`);
  await writeTree(dir, {
    'ctx/hello.txt': `hello-${t}\n`,
    'bake/docker-bake.hcl': [
      'variable "MSG" { default = "default" }',
      'target "a" {',
      '  context = "ctx"',
      '  dockerfile-inline = "FROM busybox AS b\\nARG MSG\\nARG EXTRA\\nRUN echo \\"$MSG $EXTRA\\" > /msg\\nFROM scratch\\nCOPY --from=b /msg /msg\\nCOPY hello.txt /hello.txt\\n"',
      '  args = { MSG = MSG }',
      '  output = ["type=local,dest=out/a"]',
      '}',
      '',
    ].join('\n'),
  });
  const socket = join(sb.dir, `bake-daemon-paths-${t}.sock`);
  // The daemon's own environment has other values for the same names.
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`], { MSG: 'daemon-env', EXTRA: 'daemon-env' });
  try {
    const env = { KILN_HOST: `unix://${socket}`, MSG: `caller-${t}`, EXTRA: `extra-${t}` };
    const r = await bake(dir, ['a', '-f', 'bake/docker-bake.hcl', '--set', 'a.args.EXTRA', '--metadata-file', 'meta.json', '--progress', 'quiet'], env);
    expect(r.stderr).not.toMatch(/error|WARNING/);
    expect(r.code).toBe(0);
    expect(await readFile(join(dir, 'out/a/msg'), 'utf8')).toBe(`caller-${t} extra-${t}\n`);
    expect(await readFile(join(dir, 'out/a/hello.txt'), 'utf8')).toBe(`hello-${t}\n`);
    // A local output: no image keys, the history record's ref only (as buildx).
    expect(JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'))).toEqual({ a: { 'buildx.build.ref': expect.stringMatching(/^kiln\/kiln0\/[0-9a-z]{25}$/) } });
    await expect.poll(() => d.log(), { timeout: 10_000 }).toContain('bake: client pid');

    // -f - reads the caller's stdin; --print goes through the daemon too.
    const json = JSON.stringify({ variable: { MSG: { default: 'x' } }, target: { s: { context: 'ctx', tags: ['s:${MSG}'] } } });
    const p = await bake(dir, ['-f', '-', '--print', 's'], env, json);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toEqual({ group: { default: { targets: ['s'] } }, target: { s: { context: 'ctx', dockerfile: 'Dockerfile', tags: [`s:caller-${t}`] } } });
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 240_000);

test('through kiln daemon: Ctrl-C of the client stops its targets (exit 130, no container left); the daemon serves the next bake', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-daemon-sigint-${t}`);
  await writeTree(dir, {
    'docker-bake.hcl': [
      'group "default" { targets = ["slow1", "slow2"] }',
      `target "slow1" { dockerfile-inline = "FROM busybox\\nRUN echo started1-${t} && sleep 60\\n" }`,
      `target "slow2" { dockerfile-inline = "FROM busybox\\nRUN echo started2-${t} && sleep 60\\n" }`,
      `target "quick" {\n  dockerfile-inline = "FROM busybox\\nRUN echo quick-${t} > /q\\n"\n  output = ["type=local,dest=out"]\n}`,
    ].join('\n'),
  });
  const socket = join(sb.dir, `bake-daemon-sigint-${t}.sock`);
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const env = { KILN_HOST: `unix://${socket}` };
    let sent = false;
    const r = await bake(dir, ['--progress', 'plain'], env, '', (text, child) => {
      if (!sent && text.includes(`started1-${t}\n`) && text.includes(`started2-${t}\n`)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    await expect.poll(() => processesMatching(`-${t} && sleep 60`), { timeout: 10_000 }).toEqual([]);
    const q = await bake(dir, ['quick', '--progress', 'quiet'], env);
    expect(q.code).toBe(0);
    expect(await readFile(join(dir, 'out/q'), 'utf8')).toBe(`quick-${t}\n`);
    expect(d.child.exitCode).toBe(null);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 240_000);

test('through kiln daemon: --execution reaches the bake (defer-error lets the independent target export; fail-fast, the default, cancels it at once; a bad mode is KLN0854)', async () => {
  const t = token();
  const dir = join(sb.dir, `bake-daemon-exec-${t}`);
  // bad fails only once slow's container runs (a cache mount both use; a file per SLEEP value).
  const sync = `--mount=type=cache,id=sync-${t},target=/sync`;
  await writeTree(dir, {
    'docker-bake.hcl': [
      `target "bad" { dockerfile-inline = "FROM busybox\\nRUN ${sync} for i in $(seq 1 200); do [ -f /sync/started-\${SLEEP} ] && break; sleep 0.05; done; exit 6\\n" }`,
      'target "slow" {',
      `  dockerfile-inline = "FROM busybox AS b\\nRUN ${sync} touch /sync/started-\${SLEEP} && echo started-slow-${t} && sleep \${SLEEP} && echo slow-${t} > /s\\nFROM scratch\\nCOPY --from=b /s /s\\n"`,
      '  output = ["type=local,dest=out/slow"]',
      '}',
      'variable "SLEEP" { default = "1" }',
    ].join('\n'),
  });
  const socket = join(sb.dir, `bake-daemon-exec-${t}.sock`);
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
  try {
    const env = { KILN_HOST: `unix://${socket}` };
    // The Perl client passes the command line on as it is.
    const deferred = await bake(dir, ['bad', 'slow', '--execution=defer-error', '--metadata-file', 'meta.json', '--progress', 'plain'], env, '', undefined, perlClient);
    expect(deferred.code).toBe(1);
    expect(deferred.stderr).toContain('kiln: error KLN0857: 1 target failed: bad (--execution defer-error)');
    expect(deferred.stderr).toMatch(/#\d+ slow: succeeded /);
    expect(await readFile(join(dir, 'out/slow/s'), 'utf8')).toBe(`slow-${t}\n`);
    expect(Object.keys(JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as object)).toEqual(['slow']);
    // Served by the daemon (a client that fell back to its own process would not be logged there).
    await expect.poll(() => d.log(), { timeout: 10_000 }).toMatch(/bake: client pid \d+ → exit 1/);

    // The default: slow (20 s now) is cancelled as soon as bad fails.
    let startedAt = 0;
    const fast = await bake(dir, ['bad', 'slow', '--var', 'SLEEP=20', '--metadata-file', 'meta.json', '--progress', 'plain'], env, '', (text) => {
      if (startedAt === 0 && text.includes(`started-slow-${t}\n`)) startedAt = Date.now();
    });
    expect(startedAt).toBeGreaterThan(0);
    expect(Date.now() - startedAt).toBeLessThan(8_000);
    expect(fast.code).toBe(1);
    expect(fast.stderr).toContain('kiln: error KLN0857: 1 target failed: bad; 1 cancelled: slow (--execution fail-fast)');
    expect(processesMatching(`started-slow-${t} && sleep 20`)).toEqual([]);
    // A failed fail-fast bake leaves no metadata file (the earlier one is removed).
    await expect(readFile(join(dir, 'meta.json'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });

    const bad = await bake(dir, ['slow', '--execution', 'parallel'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('kiln: error KLN0854: invalid --execution "parallel"');
    expect(bad.stderr).toContain('hint: use fail-fast, defer-output, defer-error');
    expect(d.child.exitCode).toBe(null);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 240_000);
