import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { kilnBin, runKiln, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// `kiln build --invoke COMMAND` whose command runc cannot start: its reason is printed once, as
// kiln's error (runc's own stderr line was passed through before it too), and kiln exits 1.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

const REASON = /exec: "\/missing": stat \/missing: no such file or directory/g;

test('--invoke /missing, in the result and in the state a failed RUN left: runc\'s reason once, exit 1', async () => {
  const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(ctx, { Dockerfile: 'FROM busybox\nRUN echo built > /f\n' });
  const ok = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'quiet', '--invoke', '/missing']);
  expect(ok.code).toBe(1);
  expect(ok.stderr.match(REASON), ok.stderr).toHaveLength(1);
  expect(ok.stderr).toMatch(/kiln: error EXEC_FAILED: .*exec: "\/missing"/);

  const failed = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(failed, { Dockerfile: 'FROM busybox\nRUN exit 4\n' });
  const r = await runKiln(sb, ['build', failed, '--root', sb.root, '--progress', 'quiet', '--invoke', '/missing']);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('in the state the failed step left');
  expect(r.stderr.match(REASON), r.stderr).toHaveLength(1);
}, 120_000);

test('--invoke /missing on a terminal (runc under the pty relay): the reason once, exit 1', async () => {
  const ctx = await mkdtemp(join(sb.dir, 'ctx-'));
  await writeTree(ctx, { Dockerfile: 'FROM busybox\n' });
  const command = `${process.execPath} ${kilnBin} build ${ctx} --root ${sb.root} --progress quiet --invoke /missing`;
  const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, PATH: sb.path }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
  expect(r.code).toBe(1);
  expect(r.out).toContain('--invoke: running "/missing"');
  expect(r.out.match(REASON), r.out).toHaveLength(1);
  // Nothing of runc's before kiln's error reached the terminal (a NUL came first).
  expect(r.out).not.toContain('\0');
}, 120_000);
