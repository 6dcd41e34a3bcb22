import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** OpenSSH's server (Debian's openssh-server); tests check it is installed. */
export const SSHD = '/usr/sbin/sshd';

/** Waits until `cond()` holds (polling every 20 ms), or fails naming `what` after `ms`. */
export async function until(what: string | (() => string), cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * An sshd on a free port of 127.0.0.1 with host key `work/host` and `work/authorized_keys`
 * (public keys only, no PAM), answering once it listens.
 */
export async function startSshd(work: string): Promise<{ readonly port: number; readonly process: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  writeFileSync(
    join(work, 'sshd_config'),
    [`ListenAddress 127.0.0.1`, `Port ${port}`, `HostKey ${join(work, 'host')}`, `AuthorizedKeysFile ${join(work, 'authorized_keys')}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'PidFile none', ''].join('\n'),
  );
  // sshd checks its privilege separation directory even when it runs for a test.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshd = spawn(SSHD, ['-D', '-e', '-f', join(work, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await until(() => `sshd on port ${port} (${log})`, () => sshd.exitCode === null && log.includes('listening'));
  return { port, process: sshd };
}
