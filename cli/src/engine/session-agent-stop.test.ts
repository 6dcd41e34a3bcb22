import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { agentStopCommand } from './session.js';

/** Whether `pid` runs (not gone, not a zombie waiting for its parent to reap it). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function run(argv: readonly string[]): number | null {
  const [file, ...args] = argv;
  return spawnSync(file ?? '', args).status;
}

test('the stop command kills the process only while its argv names the agent dir, and removes the dir either way', async () => {
  // A stand-in for an agent (its argv names its dir), and a process that took over a dead agent's pid.
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-test-'));
  const other = await mkdtemp(join(tmpdir(), 'kiln-ssh-test-'));
  const agent = spawn('sh', ['-c', 'sleep 30', join(dir, 'agent.sock')], { stdio: 'ignore' });
  const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    expect(run(agentStopCommand(stranger.pid ?? 0, other))).toBe(0);
    expect(alive(stranger.pid ?? 0)).toBe(true);
    expect(existsSync(other)).toBe(false);
    expect(run(agentStopCommand(agent.pid ?? 0, dir))).toBe(0);
    await expect.poll(() => alive(agent.pid ?? 0), { timeout: 3_000 }).toBe(false);
    expect(existsSync(dir)).toBe(false);
  } finally {
    agent.kill('SIGKILL');
    stranger.kill('SIGKILL');
  }
});
