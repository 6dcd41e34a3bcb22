import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { HelperAnswerReader, PROCESS_HELPER_SCRIPT, spawnViaHelper } from '../../src/executor/process-helper.js';

// The helper relays a program's output in binary frames ("O|E <tag> <n>\n" and n bytes as
// written), read in Node as Buffers: output is never text, so any byte (newlines, NULs, bytes that
// look like the protocol's own lines) arrives as written, however the pipe cuts it.

const hex = (argv: readonly string[]): string => argv.map((a) => Buffer.from(a).toString('hex')).join(' ');
const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-frames-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function bytes(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every byte value, three times, then text that looks like answers of the protocol. */
const TRICKY = Buffer.concat([Buffer.from(Array.from({ length: 768 }, (_, i) => i % 256)), Buffer.from('\nx 1 c 0\nO 1 5\nE 2 3\n\0\n')]);

/**
 * What a reader makes of `chunks`: the lines and the frames' starts ("O <tag>") in order, and
 * the bytes of each "<O|E> <tag>".
 */
function read(chunks: readonly Buffer[]): { lines: string[]; out: Map<string, Buffer> } {
  const lines: string[] = [];
  const parts = new Map<string, Buffer[]>();
  const reader = new HelperAnswerReader(
    (l) => lines.push(l),
    (stream, tag) => {
      const key = `${stream} ${tag}`;
      lines.push(key);
      const list = parts.get(key) ?? [];
      parts.set(key, list);
      // Copied: a test that kept views of a reused buffer would pass where kiln breaks.
      return (d) => list.push(Buffer.from(d));
    },
  );
  for (const c of chunks) reader.push(c);
  return { lines, out: new Map([...parts].map(([k, v]) => [k, Buffer.concat(v)])) };
}

describe('output frames', () => {
  test('a recorded session reads the same cut at every byte boundary: lines apart, output bytes as written (newlines, NULs, protocol look-alikes)', async () => {
    const file = join(dir, 'tricky');
    writeFileSync(file, TRICKY);
    const helper = spawn('perl', ['-e', PROCESS_HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
    const recorded: Buffer[] = [];
    try {
      helper.stdout.on('data', (c: Buffer) => recorded.push(c));
      const exited = new Promise((r) => helper.once('exit', r));
      // Both streams of 1 and 2, written in several pieces; 3 prints nothing; 4 cannot start.
      helper.stdin.write(`1 ${hex(['/bin/sh', '-c', `cat "$0"; cat "$0" >&2; printf 'tail\\n\\0'`, file])}\n`);
      helper.stdin.write(`2 ${hex(['/bin/sh', '-c', `printf 'E 1 4\\n'; cat "$0" >&2; printf '\\n'; exit 7`, file])}\n`);
      helper.stdin.write(`3 ${hex(['/bin/true'])}\n4 ${hex(['/nonexistent'])}\n`);
      await expect.poll(() => read(recorded).lines.filter((l) => /^[xf] /.test(l)).length, { timeout: 5_000 }).toBe(4);
      helper.stdin.end();
      await exited;
    } finally {
      helper.kill('SIGKILL');
    }
    const all = Buffer.concat(recorded);
    const whole = read([all]);
    expect(whole.out.get('O 1')).toEqual(Buffer.concat([TRICKY, Buffer.from('tail\n\0')]));
    expect(whole.out.get('E 1')).toEqual(TRICKY);
    expect(whole.out.get('O 2')).toEqual(Buffer.from('E 1 4\n\n'));
    expect(whole.out.get('E 2')).toEqual(TRICKY);
    expect(whole.out.has('O 3') || whole.out.has('E 3')).toBe(false);
    const ends = ['x 1 c 0', 'x 2 c 7', 'x 3 c 0', 'f 4 2 No such file or directory'];
    expect(whole.lines.filter((l) => /^[xf] /.test(l)).sort()).toEqual([...ends].sort());
    // Each program's exit comes after all its output: no frame of it follows its "x".
    for (const [tag, end] of ends.map((e, i) => [String(i + 1), e] as const)) {
      const frames = whole.lines.flatMap((l, i) => (l === `O ${tag}` || l === `E ${tag}` ? [i] : []));
      expect(Math.max(-1, ...frames), tag).toBeLessThan(whole.lines.indexOf(end));
    }
    // Cut in two at every byte, and a byte at a time.
    for (let k = 0; k <= all.length; k++) expect(read([all.subarray(0, k), all.subarray(k)]), String(k)).toEqual(whole);
    expect(read(Array.from(all, (_, i) => all.subarray(i, i + 1)))).toEqual(whole);
  });

  test('large binary outputs of concurrent processes arrive byte for byte, stdout and stderr each in order', async () => {
    const big = randomBytes(5 * 1024 * 1024 + 123);
    const file = join(dir, 'random');
    writeFileSync(file, big);
    // Two copies of the same bytes at once on both streams, and small chatter interleaved on both.
    const heavy = [0, 1].map(() => spawnViaHelper('/bin/sh', ['-c', 'cat "$0" & cat "$0" >&2; wait', file]));
    const chatty = [0, 1, 2].map((n) => spawnViaHelper('/bin/sh', ['-c', `i=0; while [ $i -lt 300 ]; do echo "out ${n} $i"; echo "err ${n} $i" >&2; i=$((i+1)); done`]));
    const results = await Promise.all([...heavy, ...chatty].map(async (p) => ({ out: await bytes(p?.stdout as Readable), err: await bytes(p?.stderr as Readable), exit: await p?.exit })));
    for (const r of results.slice(0, 2)) {
      expect(r.out.equals(big)).toBe(true);
      expect(r.err.equals(big)).toBe(true);
      expect(r.exit).toEqual({ code: 0, signal: null });
    }
    results.slice(2).forEach((r, n) => {
      const seq = (what: string): string => Array.from({ length: 300 }, (_, i) => `${what} ${n} ${i}\n`).join('');
      expect(r.out.toString()).toBe(seq('out'));
      expect(r.err.toString()).toBe(seq('err'));
    });
  });

  test('a process killed in the middle of heavy output: its output so far arrives whole, then its exit; the next process is read right', async () => {
    const p = spawnViaHelper('/bin/sh', ['-c', 'exec yes kiln-output']);
    let got = 0;
    const out: Buffer[] = [];
    const read = new Promise<void>((resolve) => {
      p?.stdout.on('data', (c: Buffer) => {
        out.push(c);
        got += c.length;
      });
      p?.stdout.once('end', resolve);
    });
    const pid = await p?.pid;
    await expect.poll(() => got, { timeout: 10_000 }).toBeGreaterThan(3_000_000);
    process.kill(pid ?? 0, 'SIGKILL');
    expect(await p?.exit).toEqual({ code: null, signal: 9 });
    await read;
    const all = Buffer.concat(out);
    // A prefix of the endless output, cut anywhere (the program's last write may be partial).
    const unit = 'kiln-output\n';
    expect(all.length).toBeGreaterThan(3_000_000);
    expect(all.toString('latin1')).toBe(unit.repeat(Math.ceil(all.length / unit.length)).slice(0, all.length));
    const next = spawnViaHelper('/bin/sh', ['-c', 'printf "after\\0\\n"; printf "err" >&2']);
    expect([await bytes(next?.stdout as Readable), await bytes(next?.stderr as Readable)]).toEqual([Buffer.from('after\0\n'), Buffer.from('err')]);
  });
});
