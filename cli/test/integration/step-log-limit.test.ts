import { join } from 'node:path';
import { expect, test } from 'vitest';
import { runKiln, startDaemon, token, useSandbox, writeTree, type KilnRun, type KilnSandbox } from './build-helpers.js';

// BuildKit's step log limits through `kiln build --progress=plain` with real runc: a RUN's output
// reaches the progress stream up to BUILDKIT_STEP_LOG_MAX_SIZE (2 MiB) and
// BUILDKIT_STEP_LOG_MAX_SPEED (200 KiB/s), per step and stream, then one clip line.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** 64-byte lines (with the newline) of `yes`, `bytes` of them in all (busybox). */
const yes = (tag: string, bytes: number): string => `yes '${tag.padEnd(63, '.')}' | head -c ${bytes}`;

/** The log lines of step `#n` in plain progress (`#n 1.234 text`), their text. */
function stepLines(r: KilnRun, n: number): string[] {
  const re = new RegExp(`^#${n} \\d+\\.\\d{3} (.*)$`);
  return r.stderr.split('\n').flatMap((l) => {
    const m = re.exec(l);
    return m === null ? [] : [m[1] ?? ''];
  });
}

/** The step number plain progress gave the step whose title contains `text`. */
function stepOf(r: KilnRun, text: string): number {
  const m = new RegExp(`^#(\\d+) \\[[^\\]]*\\] RUN .*${text}`, 'm').exec(r.stderr);
  if (m === null) throw new Error(`no step ${text} in:\n${r.stderr.slice(0, 2000)}`);
  return Number(m[1]);
}

const clipLines = (lines: readonly string[]): string[] => lines.filter((l) => l.startsWith('[output clipped'));

async function build(dockerfile: string, env: Record<string, string> = {}): Promise<KilnRun> {
  const ctx = join(sb.dir, `ctx-${token()}`);
  await writeTree(ctx, { Dockerfile: dockerfile });
  return runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env: { KILN_DAEMON: '0', ...env } });
}

test('a RUN printing 3 MB fast is clipped once at the default speed limit (200KiB/s); the build succeeds and the next step shows its output', async () => {
  const t = token();
  const r = await build(`FROM busybox\nRUN ${yes(`big-${t}`, 3_000_000)} && echo after-${t}\nRUN echo next-${t}\n`);
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.code).toBe(0);
  const lines = stepLines(r, stepOf(r, `big-${t}`));
  expect(clipLines(lines)).toEqual(['[output clipped, log limit 200KiB/s reached]']);
  expect(lines.at(-1)).toBe('[output clipped, log limit 200KiB/s reached]');
  expect(lines).not.toContain(`after-${t}`);
  // At least the first second's 200 KiB; far less than the 3 MB printed (the output took ~1 s).
  const shown = lines.reduce((n, l) => n + l.length + 1, 0);
  expect(shown).toBeGreaterThan(200 * 1024);
  expect(shown).toBeLessThan(700 * 1024);
  expect(r.stderrBytes.length).toBeLessThan(1024 * 1024);
  expect(stepLines(r, stepOf(r, `next-${t}`))).toEqual([`next-${t}`]);
}, 120_000);

test('without the speed limit (BUILDKIT_STEP_LOG_MAX_SPEED=-1) a stream shows exactly 2 MiB, then one clip line; stderr is counted on its own', async () => {
  const t = token();
  const r = await build(`FROM busybox\nRUN ${yes(`two-${t}`, 3_000_000)} && echo after-${t} && echo on-stderr-${t} >&2\n`, { BUILDKIT_STEP_LOG_MAX_SPEED: '-1' });
  expect(r.code).toBe(0);
  const lines = stepLines(r, stepOf(r, `two-${t}`));
  expect(clipLines(lines)).toEqual(['[output clipped, log limit 2MiB reached]']);
  const clip = lines.indexOf('[output clipped, log limit 2MiB reached]');
  // 2 MiB shown (32768 whole lines), then the clip line's leading newline as an empty line.
  expect(lines.slice(0, clip).reduce((n, l) => n + l.length + 1, 0)).toBe(2 * 1024 * 1024 + 1);
  expect(lines).not.toContain(`after-${t}`);
  expect(lines).toContain(`on-stderr-${t}`);
}, 120_000);

test('a small BUILDKIT_STEP_LOG_MAX_SIZE clips each stream of each step at its own count', async () => {
  const t = token();
  const r = await build(`FROM busybox\nRUN ${yes(`small-out-${t}`, 10_000)} && ${yes(`small-err-${t}`, 10_000)} >&2\nRUN ${yes(`fits-${t}`, 4000)}\n`, { BUILDKIT_STEP_LOG_MAX_SIZE: '4096' });
  expect(r.code).toBe(0);
  const lines = stepLines(r, stepOf(r, `small-out-${t}`));
  expect(clipLines(lines)).toEqual(['[output clipped, log limit 4KiB reached]', '[output clipped, log limit 4KiB reached]']);
  expect(lines.filter((l) => l.startsWith(`small-out-${t}`))).toHaveLength(4096 / 64);
  expect(lines.filter((l) => l.startsWith(`small-err-${t}`))).toHaveLength(4096 / 64);
  const fits = stepLines(r, stepOf(r, `fits-${t}`));
  expect(clipLines(fits)).toEqual([]);
  expect(fits.reduce((n, l) => n + l.length + 1, 0)).toBe(4000 + 1);
}, 120_000);

test('a RUN failing after 3 MB of output: progress is clipped, then shows the last 256 KiB of the stream (BuildKit flushes its buffer on failure); the error shows the real last lines', async () => {
  const t = token();
  const r = await build(`FROM busybox\nRUN ${yes(`noise-${t}`, 3_000_000)} && echo "FAILED: the real reason ${t}" && exit 3\n`);
  expect(r.code).toBe(1);
  const lines = stepLines(r, stepOf(r, `noise-${t}`));
  expect(clipLines(lines)).toHaveLength(1);
  const after = lines.slice(lines.indexOf('[output clipped, log limit 200KiB/s reached]') + 1);
  expect(after.at(-1)).toBe(`FAILED: the real reason ${t}`);
  expect(after.reduce((n, l) => n + l.length + 1, 0)).toBe(256 * 1024);
  expect(r.stderr).toContain('exit code: 3');
  expect(r.stderr).toMatch(new RegExp(`last output lines:\\n(  > noise-${t}\\.+\\n){9}  > FAILED: the real reason ${t}\\n`));
}, 120_000);

test("kiln daemon applies its own environment's limits, not the client's (as buildkitd)", async () => {
  const t = token();
  const socket = join(sb.dir, `run-${t}`, 'kilnd.sock');
  const d = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`], { BUILDKIT_STEP_LOG_MAX_SIZE: '1024' });
  try {
    const ctx = join(sb.dir, `ctx-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN ${yes(`daemon-${t}`, 5000)}\n` });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env: { KILN_HOST: `unix://${socket}`, BUILDKIT_STEP_LOG_MAX_SIZE: '-1' } });
    expect(r.code).toBe(0);
    // Clipped at the daemon's 1 KiB: the client's -1 did not count.
    const lines = stepLines(r, stepOf(r, `daemon-${t}`));
    expect(clipLines(lines)).toEqual(['[output clipped, log limit 1KiB reached]']);
    expect(lines.filter((l) => l.startsWith(`daemon-${t}`))).toHaveLength(1024 / 64);
  } finally {
    d.child.kill('SIGTERM');
    await d.exited;
  }
}, 120_000);
