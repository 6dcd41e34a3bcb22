import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { kilnBin, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// What `kiln build` hands back besides the build itself, as buildx does: `--iidfile`.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

interface BinaryRun {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** `node cli/bin/kiln.js ARGS` in process (no daemon) with stdout kept as bytes. */
function kiln(args: readonly string[], opts: { cwd?: string } = {}): Promise<BinaryRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      cwd: opts.cwd ?? sb.dir,
      env: { ...process.env, PATH: sb.path, KILN_DAEMON: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

/** Names of the entries of a tar archive (GNU tar reads it: a truncated archive fails). */
function tarNames(tar: Buffer): string[] {
  return execFileSync('tar', ['-tf', '-'], { input: tar, encoding: 'utf8' }).split('\n').filter((l) => l !== '');
}

test('--iidfile: a failed build leaves no stale file; an output without an image is refused before anything runs', async () => {
  const t = token();
  const ctx = join(sb.dir, `iid-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t} && exit 5\n`, 'ok/Dockerfile': `FROM busybox\nRUN echo ok-${t} > /ok\n` });
  const iid = join(sb.dir, `iid-${t}.txt`);
  await writeFile(iid, 'sha256:stale');
  const failed = await kiln(['build', ctx, '--root', sb.root, '--progress', 'plain', '-t', `iid-${t}:1`, '--iidfile', iid]);
  expect(failed.code).toBe(1);
  // buildx removes the file before building, so a script never reads the previous build's ID.
  expect(existsSync(iid)).toBe(false);

  const before = await sb.containersStarted();
  const out = join(sb.dir, `iid-${t}-out`);
  const local = await kiln(['build', join(ctx, 'ok'), '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`, '--iidfile', iid]);
  expect(local.code).toBe(1);
  expect(local.stderr).toContain('KLN0704');
  expect(local.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(out)).toBe(false);
  expect(await sb.containersStarted()).toBe(before);
});
