import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox, type TestDaemon } from './build-helpers.js';

// Concurrent `kiln build`s of one context through one `kiln daemon`: each client syncs the
// context as its own local source, and the engine's one solver still runs a step their graphs
// share once (their cache keys meet once the context's checksum is known).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

let daemon: TestDaemon | undefined;
let socket: string;
beforeAll(async () => {
  socket = join(sb.dir, 'shared-steps.sock');
  daemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
}, 60_000);
afterAll(async () => {
  daemon?.child.kill('SIGTERM');
  await daemon?.exited;
});

/** `kiln build CTX` through the daemon, its result exported to `out`. */
function build(ctx: string, out: string, extra: readonly string[] = [], onStderr?: (text: string, child: import('node:child_process').ChildProcess) => void): Promise<KilnRun> {
  return runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra], {
    env: { KILN_HOST: `unix://${socket}` },
    ...(onStderr === undefined ? {} : { onStderr }),
  });
}

/**
 * A context whose RUN below `COPY . /src` prints `started-T`, appends a line to a cache mount of
 * this test's own (how often it started), waits and writes a random stamp.
 */
async function context(t: string, seconds: number): Promise<string> {
  const ctx = join(sb.dir, `ctx-${t}`);
  await writeTree(ctx, {
    Dockerfile: `FROM busybox\nCOPY . /src\nRUN --mount=type=cache,id=runs-${t},target=/runs echo started-${t} && echo run >> /runs/log && sleep ${seconds} && cat /proc/sys/kernel/random/uuid > /stamp\n`,
    'data.txt': `data ${t}\n`,
  });
  return ctx;
}

/** Resolves when the client's progress shows the RUN's first output line. */
function whenStarted(t: string): { seen: Promise<void>; onStderr: (text: string) => void } {
  let resolve: () => void = () => undefined;
  const seen = new Promise<void>((r) => (resolve = r));
  return { seen, onStderr: (text) => (text.includes(`started-${t}`) ? resolve() : undefined) };
}

const stamp = (out: string): Promise<string> => readFile(join(out, 'stamp'), 'utf8');

/** How often the RUN of `context(t)` started, read back from its cache mount by another build. */
async function started(t: string): Promise<number> {
  const ctx = join(sb.dir, `count-${t}`);
  await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=runs-${t},target=/runs cp /runs/log /log\n` });
  const r = await build(ctx, join(sb.dir, `out-${t}-count`));
  expect(r.stderr).not.toContain('kiln: error');
  return (await readFile(join(sb.dir, `out-${t}-count`, 'log'), 'utf8')).split('\n').filter((l) => l !== '').length;
}
const runs = (r: KilnRun, t: string): number => r.stderr.match(new RegExp(`^#\\d+ [\\d.]+ started-${t}$`, 'gm'))?.length ?? 0;

test('two concurrent builds of the same context: the RUN runs once, both get its result and both show it run', async () => {
  const t = token();
  const ctx = await context(t, 2);
  const a = whenStarted(t);
  const first = build(ctx, join(sb.dir, `out-${t}-a`), [], a.onStderr);
  await a.seen;
  const second = await build(ctx, join(sb.dir, `out-${t}-b`));
  const r = await first;
  expect(r.stderr).not.toContain('kiln: error');
  expect(second.stderr).not.toContain('kiln: error');
  expect([r.code, second.code]).toEqual([0, 0]);
  expect(await stamp(join(sb.dir, `out-${t}-b`))).toBe(await stamp(join(sb.dir, `out-${t}-a`)));
  expect(await started(t)).toBe(1);
  // The second client saw the step's log and its end, not CACHED.
  expect(runs(second, t)).toBe(1);
  expect(second.stderr).not.toMatch(/RUN [^\n]*started-[^\n]*\n#\d+ CACHED/);
  expect(second.stderr).toMatch(/#(\d+) \[[^\]]*3\/3\] RUN [^\n]*started-[\s\S]*#\1 DONE/);
}, 120_000);

test('the first client cancelled while the second waits for its RUN: the second still succeeds with the one run', async () => {
  const t = token();
  const ctx = await context(t, 3);
  const a = whenStarted(t);
  let sent = false;
  let owner: import('node:child_process').ChildProcess | undefined;
  const first = build(ctx, join(sb.dir, `out-${t}-a`), [], (text, child) => {
    owner = child;
    a.onStderr(text);
  });
  await a.seen;
  const b = whenStarted(t);
  const second = build(ctx, join(sb.dir, `out-${t}-b`), [], (text) => {
    b.onStderr(text);
  });
  // The second client is waiting on the shared step (it shows its output) when the first goes.
  await b.seen;
  sent = owner?.kill('SIGINT') ?? false;
  expect(sent).toBe(true);
  const ra = await first;
  const rb = await second;
  expect(ra.code).toBe(130);
  expect(rb.stderr).not.toContain('kiln: error');
  expect(rb.code).toBe(0);
  expect(await stamp(join(sb.dir, `out-${t}-b`))).toMatch(/^[0-9a-f-]{36}\n$/);
  expect(runs(rb, t)).toBe(1);
  expect(rb.stderr).not.toContain('CANCELED');
  // The second client kept the first one's run going rather than starting its own.
  expect(await started(t)).toBe(1);
}, 120_000);

test('a --no-cache build beside a normal one runs its own step', async () => {
  const t = token();
  const ctx = await context(t, 2);
  const a = whenStarted(t);
  const first = build(ctx, join(sb.dir, `out-${t}-a`), [], a.onStderr);
  await a.seen;
  const second = await build(ctx, join(sb.dir, `out-${t}-b`), ['--no-cache']);
  const r = await first;
  expect([r.code, second.code]).toEqual([0, 0]);
  expect(await stamp(join(sb.dir, `out-${t}-b`))).not.toBe(await stamp(join(sb.dir, `out-${t}-a`)));
}, 120_000);
