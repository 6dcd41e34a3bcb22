import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCredentialsWithHelpers, helperFor, runCredentialHelper } from './credential-helpers.js';

// Real helper processes: small sh scripts speaking the docker-credential-helpers protocol.
let dir: string;
let env: Record<string, string | undefined>;
const config = (): string => join(dir, 'config.json');

async function helper(name: string, body: string): Promise<void> {
  const file = join(dir, 'bin', `docker-credential-${name}`);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-credhelper-'));
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(dir, 'bin'));
  env = { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, HOME: dir };
  // Echoes the server address it was asked about into the username; counts its runs.
  await helper('echo', `read -r server || true; echo run >> "${join(dir, 'runs')}"; printf '{"ServerURL":"%s","Username":"user-for-%s","Secret":"s3cret"}' "$server" "$server"`);
  await helper('token', `cat >/dev/null; printf '{"ServerURL":"x","Username":"<token>","Secret":"idtok"}'`);
  await helper('none', `cat >/dev/null; echo "credentials not found in native keychain"; exit 1`);
  await helper('broken', `cat >/dev/null; echo "keychain is locked"; exit 1`);
  await helper('garbage', `cat >/dev/null; echo "not json"`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('helperFor: the docker CLI choice of helper', () => {
  it('takes credHelpers for the host first, then credsStore, else none', () => {
    const cfg = { credsStore: 'store', credHelpers: { 'gcr.io': 'gcloud', 'https://index.docker.io/v1/': 'hub' } };
    expect(helperFor(cfg, 'gcr.io')).toEqual({ helper: 'gcloud', server: 'gcr.io' });
    expect(helperFor(cfg, 'registry.example:5000')).toEqual({ helper: 'store', server: 'registry.example:5000' });
    expect(helperFor(cfg, 'docker.io')).toEqual({ helper: 'hub', server: 'https://index.docker.io/v1/' });
    expect(helperFor({ credHelpers: {} }, 'gcr.io')).toBeUndefined();
    expect(helperFor({ credsStore: 'desktop' }, 'registry-1.docker.io')).toEqual({ helper: 'desktop', server: 'https://index.docker.io/v1/' });
  });
});

describe('runCredentialHelper', () => {
  it('sends the server address on stdin and returns basic credentials', async () => {
    expect(await runCredentialHelper('echo', '127.0.0.1:5000', env, config())).toEqual({ kind: 'basic', username: 'user-for-127.0.0.1:5000', password: 's3cret' });
  });
  it('reads a <token> username as an identity token', async () => {
    expect(await runCredentialHelper('token', 'x', env, config())).toEqual({ kind: 'token', identityToken: 'idtok' });
  });
  it('takes "credentials not found" as anonymous', async () => {
    expect(await runCredentialHelper('none', 'x', env, config())).toBeUndefined();
  });
  it('fails clearly when the helper is missing, fails, or answers garbage', async () => {
    await expect(runCredentialHelper('absent', 'x', env, config())).rejects.toMatchObject({
      code: 'KLN_CLI_CREDS',
      message: 'credential helper docker-credential-absent not found in PATH',
      hint: expect.stringContaining(config()) as unknown,
    });
    await expect(runCredentialHelper('broken', 'reg.example', env, config())).rejects.toThrow('docker-credential-broken get for reg.example: keychain is locked');
    await expect(runCredentialHelper('garbage', 'x', env, config())).rejects.toThrow('printed something other than JSON');
    await expect(runCredentialHelper('../../bin/sh', 'x', env, config())).rejects.toThrow('invalid credential helper name');
  });
});

describe('dockerCredentialsWithHelpers', () => {
  it('asks a registry helper once per provider and uses auths where no helper applies', async () => {
    await writeFile(config(), JSON.stringify({ credHelpers: { 'helped.example': 'echo' }, auths: { 'plain.example': {} } }));
    await rm(join(dir, 'runs'), { force: true });
    const fromAuths = async (host: string) => (host === 'plain.example' ? { kind: 'basic' as const, username: 'a', password: 'b' } : undefined);
    const creds = dockerCredentialsWithHelpers(config(), env, fromAuths);
    expect(await creds('helped.example')).toEqual({ kind: 'basic', username: 'user-for-helped.example', password: 's3cret' });
    expect(await creds('helped.example')).toMatchObject({ username: 'user-for-helped.example' });
    expect(await creds('plain.example')).toEqual({ kind: 'basic', username: 'a', password: 'b' });
    expect((await readFile(join(dir, 'runs'), 'utf8')).trim().split('\n')).toHaveLength(1);
  });
  it('refuses a config.json that is not JSON (the docker CLI does too); a missing one means no credentials', async () => {
    await writeFile(config(), '{"auths": {');
    const creds = dockerCredentialsWithHelpers(config(), env, async () => undefined);
    await expect(creds('x.example')).rejects.toMatchObject({ code: 'KLN_CLI_CREDS', message: expect.stringContaining('not valid JSON') as unknown });
    expect(await dockerCredentialsWithHelpers(join(dir, 'absent.json'), env, async () => undefined)('x.example')).toBeUndefined();
  });
  it('a config.json broken next to a credential: the error shows where, never a piece of the file', async () => {
    const token = 'CANARYIDTOKEN0123456789';
    const auth = Buffer.from('alice:pw-0123456789').toString('base64');
    for (const text of [
      `{"auths":{"r.example":{"auth":"${auth}"},"ghcr.io":{"identitytoken":${token}}}}`, // unquoted value
      `{"auths":{"r.example":{"auth":'${auth}'}}}`, // single quotes
      `{"auths":{"r.example":{"auth":"${auth}" "x":1}}}`, // missing comma
      `{"auths":{"r.example":{"identitytoken":"${token}"}}}}`, // one brace too many
      `${token}`,
    ]) {
      await writeFile(config(), text);
      const err = await dockerCredentialsWithHelpers(config(), env, async () => undefined)('x.example').catch((e: unknown) => e);
      const message = err instanceof Error ? err.message : '';
      expect(message).toMatch(/not valid JSON at line 1, column \d+: expected /);
      for (const secret of [token, auth]) for (let i = 0; i + 4 <= secret.length; i++) expect(message, text).not.toContain(secret.slice(i, i + 4));
    }
  });
  it('lets credsStore answer for every registry instead of auths', async () => {
    await writeFile(config(), JSON.stringify({ credsStore: 'none', auths: { 'plain.example': {} } }));
    const creds = dockerCredentialsWithHelpers(config(), env, async () => ({ kind: 'basic', username: 'from-auths', password: 'x' }));
    expect(await creds('plain.example')).toBeUndefined();
  });
});
