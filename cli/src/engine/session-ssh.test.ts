import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseSsh } from './session.js';

// Real ssh-agent and ssh-add (openssh-client), as buildx's --ssh ID=KEYFILE forwards a key.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-keys-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-open', '-f', join(dir, 'open')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-C', 'kiln-locked', '-f', join(dir, 'locked')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'secret', '-f', join(dir, 'locked.pem')]);
  await writeFile(join(dir, 'garbage'), 'not a key\n', { mode: 0o600 });
  await mkdir(join(dir, 'keys'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fingerprint = (pub: string): string => /SHA256:\S+/.exec(execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }))?.[0] ?? 'none';

describe('--ssh ID=KEYFILE', () => {
  test('a key others may read (0644, as a CI step writes it) is loaded, as buildx loads it', async () => {
    await chmod(join(dir, 'open'), 0o644);
    const agents = await parseSsh([`git=${join(dir, 'open')}`], {});
    try {
      const listed = execFileSync('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: agents.sockets['git'] }, encoding: 'utf8' });
      expect(listed).toContain(fingerprint(join(dir, 'open.pub')));
    } finally {
      await agents.close();
    }
  });

  // Before: "--ssh: ssh-add KEY failed: @@@@@@@@…" (the first line of ssh-add's banner), hint "the key must be unencrypted".
  test.for([
    ['keys', 'is a directory'],
    ['garbage', 'is not a private key ssh-add can load'],
    ['locked', 'is protected by a passphrase, which kiln cannot ask for'],
    ['locked.pem', 'is protected by a passphrase, which kiln cannot ask for'],
  ] as const)('%s is refused with what is wrong with it', async ([name, why]) => {
    await expect(parseSsh([`git=${join(dir, name)}`], {})).rejects.toMatchObject({ code: 'KLN0702', message: expect.stringContaining(`--ssh git: ${join(dir, name)} ${why}`) });
  });
});
