import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';

const bin = join(import.meta.dirname, '../../bin');

test('a command that stops without settling (a promise nobody resolves) exits 70 saying so, not 0 in silence', () => {
  const entry = readFileSync(join(bin, 'kiln.js'), 'utf8');
  // The line that runs the command (through a daemon, a user namespace, or here).
  const line = /process\.exitCode = viaDaemon \?\?[^\n]*runHere\(process\.argv\)\);/.exec(entry)?.[0] ?? '';
  expect(line).not.toBe('');
  // The real entry with its command replaced by one that never settles (next to it: its requires are relative).
  const stuck = join(bin, `.stuck-${process.pid}.js`);
  writeFileSync(stuck, entry.replace(line, 'await new Promise(() => {});'));
  try {
    const r = spawnSync(process.execPath, [stuck, '--version'], { encoding: 'utf8', env: { ...process.env, KILN_DAEMON: '0' } });
    expect(r.status).toBe(70);
    expect(r.stderr).toBe('kiln: internal error: the command stopped before it finished (nothing was left to wait on); please report it\n');
  } finally {
    rmSync(stuck, { force: true });
  }
  const ok = spawnSync(process.execPath, [join(bin, 'kiln.js'), '--version'], { encoding: 'utf8' });
  expect([ok.status, ok.stderr]).toEqual([0, '']);
});
