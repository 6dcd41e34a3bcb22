import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { kilnBin, repo, startDaemon, token, useSandbox, writeTree, type KilnSandbox, type TestDaemon } from './build-helpers.js';

// `--progress auto` on a real terminal: `script` gives kiln a pty of 50 columns, in its own
// process and as a client of `kiln daemon` (the terminal size travels with the command).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let daemon: TestDaemon;
let socket: string;

beforeAll(async () => {
  socket = join(sb.dir, 'tty-daemon', 'kilnd.sock');
  daemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
}, 60_000);

afterAll(() => {
  daemon.child.kill('SIGTERM');
});

/** Runs `command` in a pty of 50×20 under `script`; resolves to everything the terminal got. */
function onTerminal(command: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', `stty cols 50 rows 20; ${command}`, '/dev/null'], { env: { ...process.env, PATH: sb.path, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

const visible = (line: string): string => line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, '');

async function expectTtyDisplay(command: (ctx: string) => string, env: Record<string, string>): Promise<void> {
  const t = token();
  const ctx = join(sb.dir, `tty-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN for i in 1 2 3; do echo ${t}-line-$i-long-enough-to-be-cut-at-fifty-columns; sleep 0.4; done\n` });
  const r = await onTerminal(command(ctx), env);
  expect(r.code).toBe(0);
  // The live view: header, redraws (cursor up), the running step's last log lines, then FINISHED.
  expect(r.out).toMatch(/\[\+\] Building [\d.]+s \(\d+\/\d+\)/);
  expect(r.out).toMatch(/\x1b\[\d+A/);
  expect(r.out).toContain(` => => # ${t}-line-1`);
  expect(r.out).toMatch(/\[\+\] Building [\d.]+s \(4\/4\) FINISHED/);
  expect(r.out).toMatch(/ => \[2\/2\] RUN for i in 1 2 3/);
  // Not the plain format, and cut to the terminal's 50 columns.
  expect(r.out).not.toMatch(/^#\d+ /m);
  const drawn = r.out.split('\n').filter((l) => l.includes('=>')).map(visible);
  expect(drawn.length).toBeGreaterThan(4);
  for (const line of drawn) expect([...line].length).toBeLessThanOrEqual(50);
}

test('kiln build --progress auto draws the live tty view in a terminal, cut to its width', async () => {
  await expectTtyDisplay((ctx) => `${process.execPath} ${kilnBin} build ${ctx} --root ${sb.root}`, { KILN_DAEMON: '0' });
}, 120_000);

test('through kiln daemon the client terminal decides: the same tty view at the client width', async () => {
  const served = (): number => daemon.log().split('\n').filter((l) => / → exit \d+/.test(l)).length;
  const before = served();
  await expectTtyDisplay((ctx) => `${join(repo, 'cli/bin/kiln')} build ${ctx} --root ${sb.root}`, { KILN_HOST: `unix://${socket}` });
  expect(served()).toBe(before + 1);
}, 120_000);
