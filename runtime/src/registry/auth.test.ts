import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dockerConfigCredentials, parseWwwAuthenticate } from './auth.js';

describe('parseWwwAuthenticate', () => {
  test('bearer with realm, service and scope (quoted, with commas and colons)', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
    ]);
  });
  test('several challenges and unquoted values', () => {
    expect(parseWwwAuthenticate('Basic realm="kiln test", Bearer realm=https://x/t, error="invalid_token"')).toEqual([
      { scheme: 'basic', params: { realm: 'kiln test' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', error: 'invalid_token' } },
    ]);
  });
  test('escaped quotes', () => {
    expect(parseWwwAuthenticate('Basic realm="a \\"b\\""')[0]?.params['realm']).toBe('a "b"');
  });
});

describe('dockerConfigCredentials', () => {
  test('auths: auth / username+password / identitytoken / Docker Hub key; missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-dockercfg-'));
    try {
      const path = join(dir, 'config.json');
      await writeFile(
        path,
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
            'registry.example.com': { username: 'u', password: 'p' },
            'https://ghcr.io': { identitytoken: 'idt' },
          },
        }),
      );
      const creds = dockerConfigCredentials(path);
      expect(await creds('docker.io')).toEqual({ kind: 'basic', username: 'hubuser', password: 'hub:pass' });
      expect(await creds('registry.example.com')).toEqual({ kind: 'basic', username: 'u', password: 'p' });
      expect(await creds('ghcr.io')).toMatchObject({ kind: 'token', identityToken: 'idt' });
      expect(await creds('other.io')).toBeUndefined();
      expect(await dockerConfigCredentials(join(dir, 'missing.json'))('docker.io')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
