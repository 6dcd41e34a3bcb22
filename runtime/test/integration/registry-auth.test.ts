import { execFile } from 'node:child_process';
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test as base } from 'vitest';
import {
  ContentStore,
  RegistryClient,
  createBusyboxImage,
  dockerConfigCredentials,
  pushImage,
  staticCredentials,
  type BusyboxImage,
} from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);
const SERVICE = 'kiln-test-registry';
const ISSUER = 'kiln-test-issuer';
const USERS: Record<string, string> = { alice: 'wonderland' };

/**
 * A real docker-registry with token auth, and an in-test token server that signs JWTs (RS256,
 * x5c header) for users in USERS. Anonymous users get pull-only tokens for `public/*`.
 */
interface AuthEnv {
  readonly dir: string;
  readonly registry: TestRegistry;
  readonly tokenRequests: { user: string; scopes: string[] }[];
  readonly store: ContentStore;
  readonly bb: BusyboxImage;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

async function setup(): Promise<AuthEnv & { tokenServer: Server }> {
  const tokenRequests: { user: string; scopes: string[] }[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'kiln-regauth-'));
  try {
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=kiln-test-token', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
  } catch (e) {
    throw new Error(`openssl is needed to make the token-signing certificate: apt-get install -y openssl (${String(e)})`);
  }
  const key = await readFile(join(dir, 'key.pem'), 'utf8');
  const certDer = new X509Certificate(await readFile(join(dir, 'cert.pem'))).raw;
  const tokenServer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let user = '';
    const h = req.headers.authorization;
    if (h?.startsWith('Basic ') === true) {
      const [u, p] = Buffer.from(h.slice(6), 'base64').toString().split(':');
      if (u === undefined || USERS[u] !== p) {
        res.writeHead(401).end();
        return;
      }
      user = u;
    }
    const scopes = url.searchParams.getAll('scope');
    tokenRequests.push({ user, scopes });
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(':');
      const wanted = (actions ?? '').split(',');
      const granted = user !== '' ? wanted : (name ?? '').startsWith('public/') ? wanted.filter((a) => a === 'pull') : [];
      return { type, name, actions: granted };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: ISSUER, sub: user, aud: url.searchParams.get('service'), exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(key);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${input}.${b64url(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', () => r()));
  const port = (tokenServer.address() as { port: number }).port;
  const registry = await startRegistry({ token: { realm: `http://127.0.0.1:${port}/token`, service: SERVICE, issuer: ISSUER, rootCertBundle: join(dir, 'cert.pem') } });
  const store = await ContentStore.open(join(dir, 'state'));
  const bb = await createBusyboxImage(store);
  return { dir, registry, tokenRequests, store, bb, tokenServer };
}

const test = base.extend<{ env: AuthEnv }>({
  env: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const env = await setup();
      await use(env);
      await env.registry.stop();
      env.tokenServer.close();
      await rm(env.dir, { recursive: true, force: true });
    },
    { scope: 'file' },
  ],
});

describe('bearer token auth against docker-registry (auth.token)', () => {
  test('push with credentials from a docker config.json; anonymous pull of the private repo is refused', async ({ env: { dir, registry, tokenRequests, store, bb } }) => {
    const cfg = join(dir, 'docker-config.json');
    await writeFile(cfg, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }));
    const alice = new RegistryClient({ credentials: dockerConfigCredentials(cfg) });
    const res = await pushImage(alice, store, bb.manifest, [`${registry.host}/private/busybox:1`, `${registry.host}/public/busybox:1`]);
    expect(res.digest).toBe(bb.manifest.digest);
    expect(tokenRequests.some((t) => t.user === 'alice' && t.scopes.includes('repository:private/busybox:pull,push'))).toBe(true);
    // cross-repo mount asked for both scopes in one token
    expect(tokenRequests.some((t) => t.scopes.includes('repository:public/busybox:pull,push') && t.scopes.includes('repository:private/busybox:pull'))).toBe(true);

    const fresh = await ContentStore.open(join(dir, 'pulled'));
    expect((await alice.pull(`${registry.host}/private/busybox:1`, fresh)).descriptor.digest).toBe(bb.manifest.digest);

    const anon = new RegistryClient();
    await expect(anon.resolve(`${registry.host}/private/busybox:1`)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    expect((await anon.resolve(`${registry.host}/public/busybox:1`)).descriptor.digest).toBe(bb.manifest.digest);
    await expect(pushImage(anon, store, bb.manifest, [`${registry.host}/public/busybox:2`])).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
  });

  test('one client serving callers with different credentials (kiln daemon) does not hand one caller the token of another', async ({ env: { registry, store, bb } }) => {
    let current: 'alice' | 'anonymous' = 'alice';
    const alice = staticCredentials({ [registry.host]: { kind: 'basic', username: 'alice', password: 'wonderland' } });
    const shared = new RegistryClient({ credentials: (host) => (current === 'alice' ? alice(host) : Promise.resolve(undefined)) });
    await pushImage(shared, store, bb.manifest, [`${registry.host}/private/shared:1`]);
    expect((await shared.resolve(`${registry.host}/private/shared:1`)).descriptor.digest).toBe(bb.manifest.digest);
    current = 'anonymous';
    await expect(shared.resolve(`${registry.host}/private/shared:1`)).rejects.toMatchObject({ code: 'UNAUTHORIZED' });
    current = 'alice';
    expect((await shared.resolve(`${registry.host}/private/shared:1`)).descriptor.digest).toBe(bb.manifest.digest);
  });

  test('wrong password: the token service refuses → UNAUTHORIZED without leaking the password', async ({ env: { registry } }) => {
    const mallory = new RegistryClient({ credentials: staticCredentials({ [registry.host]: { kind: 'basic', username: 'alice', password: 'guess-123' } }) });
    const err = await mallory.resolve(`${registry.host}/private/busybox:1`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(JSON.stringify({ m: (err as Error).message, h: (err as { hint?: string }).hint })).not.toContain('guess-123');
  });
});
