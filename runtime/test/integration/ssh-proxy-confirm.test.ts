import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { startSshProxy } from '../../src/executor/ssh-proxy.js';

// A real OpenSSH agent with a key added with `ssh-add -c`: while it asks its owner to confirm one
// use (here an askpass that takes 1.5 s and says yes), it answers no other connection. The proxy
// gives an agent 0.5 s (KILN_SSH_AGENT_TIMEOUT, 10 s by default) for a connection's first answer;
// a second client asking meanwhile must wait for the agent, not be cut off as a stuck agent.

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(cmd: string, args: readonly string[], sock: string, cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SSH_AUTH_SOCK: sock }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // 'close': the output is all read ('exit' may come before it)
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('a client that asks while the agent waits for its owner to confirm another use is not cut off', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-confirm-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const askpass = join(dir, 'askpass');
  const asking = join(dir, 'asking');
  writeFileSync(askpass, `#!/bin/sh\n: > '${asking}'\nsleep 1.5\nexit 0\n`);
  chmodSync(askpass, 0o755);
  const sock = join(dir, 'agent.sock');
  const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], {
    stdio: 'ignore',
    env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
  });
  cleanups.push(async () => void agent.kill('SIGKILL'));
  for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
  execFileSync('ssh-add', ['-c', join(dir, 'key')], { env: { SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  writeFileSync(join(dir, 'msg'), 'hello\n');
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), () => [sock], 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0, 500);
  cleanups.push(() => proxy.close());
  // a use of the key the owner confirms (1.5 s), and meanwhile a client listing the keys
  const signing = run('ssh-keygen', ['-Y', 'sign', '-f', 'key.pub', '-n', 'file', 'msg'], proxy.path, dir);
  for (let i = 0; i < 250 && !existsSync(asking); i++) await new Promise((r) => setTimeout(r, 20));
  expect(existsSync(asking)).toBe(true);
  const listing = await run('ssh-add', ['-l'], proxy.path, dir);
  expect(listing.out, JSON.stringify(listing)).toContain('ED25519');
  expect(listing.code).toBe(0);
  expect((await signing).code).toBe(0);
});
