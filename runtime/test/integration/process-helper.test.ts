import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Readable } from 'node:stream';
import { PROCESS_HELPER_SCRIPT, sealViaHelper, spawnViaHelper } from '../../src/executor/process-helper.js';

async function text(r: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('spawnViaHelper', () => {
  test('streams stdout and stderr separately and reports the exit code', async () => {
    const p = spawnViaHelper('/bin/sh', ['-c', 'printf "out 1\\nout 2\\n"; echo err >&2; head -c 300000 /dev/zero | tr "\\0" x; exit 3']);
    expect(p).toBeDefined();
    if (p === undefined) return;
    expect(await p.pid).toBeGreaterThan(1);
    const [out, err, exit] = await Promise.all([text(p.stdout), text(p.stderr), p.exit]);
    expect(out.startsWith('out 1\nout 2\n')).toBe(true);
    expect(out.length).toBe(12 + 300000);
    expect(err).toBe('err\n');
    expect(exit).toEqual({ code: 3, signal: null });
    expect(p.done).toBe(true);
  });

  test('a signal ends the process with that signal; concurrent processes are kept apart', async () => {
    const ps = Array.from({ length: 6 }, (_, i) => spawnViaHelper('/bin/sh', ['-c', `echo ${i}; exit ${i}`]));
    const killed = spawnViaHelper('/bin/sh', ['-c', 'kill -TERM $$; sleep 5']);
    const results = await Promise.all(ps.map(async (p) => (p === undefined ? undefined : { out: await text(p.stdout), exit: await p.exit })));
    expect(results).toEqual(Array.from({ length: 6 }, (_, i) => ({ out: `${i}\n`, exit: { code: i, signal: null } })));
    expect(await killed?.exit).toEqual({ code: null, signal: 15 });
  });

  test('a missing program rejects with ENOENT', async () => {
    const p = spawnViaHelper('/nonexistent/prog', []);
    await expect(p?.pid).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(p?.exit).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('an exec that fails after the fork rejects exit with its errno', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-'));
    try {
      const file = join(dir, 'not-executable');
      writeFileSync(file, '#!/bin/sh\n');
      chmodSync(file, 0o644);
      const p = spawnViaHelper(file, []);
      await expect(p?.exit).rejects.toMatchObject({ code: 'EACCES' });
      expect(p?.done).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the exit is reported when the process ends, not when it closes its output', async () => {
    const t0 = Date.now();
    const p = spawnViaHelper('/bin/sh', ['-c', 'echo before; exec >&- 2>&-; sleep 0.3; exit 4']);
    expect(await text(p?.stdout as Readable)).toBe('before\n');
    expect(await p?.exit).toEqual({ code: 4, signal: null });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  test('large outputs of concurrent processes arrive complete while others exit', async () => {
    const big = Array.from({ length: 3 }, (_, i) => spawnViaHelper('/bin/sh', ['-c', `head -c ${1_000_000 + i} /dev/zero | tr "\\0" ${i}`]));
    const small = Array.from({ length: 20 }, (_, i) => spawnViaHelper('/bin/sh', ['-c', `exit ${i % 5}`]));
    const outs = await Promise.all(big.map((p) => text(p?.stdout as Readable)));
    outs.forEach((o, i) => {
      expect(o.length).toBe(1_000_000 + i);
      expect(o.replaceAll(String(i), '')).toBe('');
    });
    expect(await Promise.all(small.map((p) => p?.exit))).toEqual(Array.from({ length: 20 }, (_, i) => ({ code: i % 5, signal: null })));
  });

  test('a sealed program runs from its in-memory copy until its file is replaced', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-'));
    try {
      // busybox picks the applet from argv[0]: the copy keeps the name it was started with.
      const file = join(dir, 'busybox');
      copyFileSync('/bin/busybox', file);
      chmodSync(file, 0o755);
      await sealViaHelper(file);
      const exe = async (): Promise<string> => {
        const p = spawnViaHelper(file, ['readlink', '/proc/self/exe']);
        const out = await text(p?.stdout as Readable);
        expect(await p?.exit).toEqual({ code: 0, signal: null });
        return out.trim();
      };
      expect(await exe()).toMatch(/^\/memfd:kiln-sealed/);
      // Replaced (an upgrade): the new file runs, copied again.
      writeFileSync(join(dir, 'next'), '');
      copyFileSync('/bin/busybox', join(dir, 'next'));
      chmodSync(join(dir, 'next'), 0o755);
      renameSync(join(dir, 'next'), file);
      expect(await exe()).toMatch(/^\/memfd:kiln-sealed/);
      // Replaced by a script, which cannot run from a copy: the file itself runs.
      writeFileSync(join(dir, 'next'), '#!/bin/sh\necho "script $1"\n', { mode: 0o755 });
      renameSync(join(dir, 'next'), file);
      const p = spawnViaHelper(file, ['readlink']);
      expect(await text(p?.stdout as Readable)).toBe('script readlink\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a script or a missing program is not sealed, and runs (or fails) as before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-'));
    try {
      const script = join(dir, 'script');
      writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o755 });
      await expect(sealViaHelper(script)).rejects.toMatchObject({ code: 'ENOEXEC' });
      await expect(sealViaHelper(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
      const p = spawnViaHelper(script, []);
      expect(await text(p?.stdout as Readable)).toBe('ran\n');
      expect(await p?.exit).toEqual({ code: 0, signal: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the helper once kiln is gone (its protocol, spoken directly)', () => {
  const hex = (argv: readonly string[]): string => argv.map((a) => Buffer.from(a).toString('hex')).join(' ');

  test('a running process\'s "d" program runs once kiln\'s side closes, and a registered one ("r"); an ended, waiting or dropped one does not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-ph-'));
    const marker = (name: string): string => join(dir, name);
    const helper = spawn('perl', ['-e', PROCESS_HELPER_SCRIPT], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const exited = new Promise((r) => helper.once('exit', r));
      let out = '';
      helper.stdout.setEncoding('latin1').on('data', (c: string) => (out += c));
      const reported = (line: RegExp): Promise<void> => expect.poll(() => line.test(out), { timeout: 5_000 }).toBe(true);
      // 1 runs until it is stopped; 2 has ended before kiln goes; w3 still waits for work.
      helper.stdin.write(`1 ${hex(['/bin/sh', '-c', `sleep 30`])}\nd 1 ${hex(['/bin/sh', '-c', `touch ${marker('running')}; pkill -f '^sleep 30$'`])}\n`);
      helper.stdin.write(`2 ${hex(['/bin/true'])}\nd 2 ${hex(['/bin/touch', marker('ended')])}\n`);
      helper.stdin.write(`w3 ${hex(['/bin/sleep', '31'])}\nd w3 ${hex(['/bin/touch', marker('waiting')])}\n`);
      // Registered for what the helper did not start: r4 stays, r5 is dropped again.
      helper.stdin.write(`r r4 ${hex(['/bin/touch', marker('registered')])}\nr r5 ${hex(['/bin/touch', marker('dropped')])}\nu r5\n`);
      await reported(/^x 2 c 0$/m);
      await reported(/^p w3 \d+$/m);
      helper.stdin.end();
      // The "d" program stops 1 (its shell reports SIGTERM as 143); its exit is still reported, then
      // the helper ends.
      await reported(/^x 1 (s 15|c 143)$/m);
      await exited;
      expect(existsSync(marker('running'))).toBe(true);
      expect(existsSync(marker('ended'))).toBe(false);
      expect(existsSync(marker('waiting'))).toBe(false);
      await expect.poll(() => existsSync(marker('registered')), { timeout: 5_000 }).toBe(true);
      expect(existsSync(marker('dropped'))).toBe(false);
      expect(out).toMatch(/^x w3 s 9$/m);
    } finally {
      helper.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
