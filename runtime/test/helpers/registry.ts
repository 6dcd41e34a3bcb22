import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as base } from 'vitest';

/** A running `docker-registry` (distribution 2.x) on 127.0.0.1 with filesystem storage in a temp dir. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`, usable as the domain of a reference. */
  readonly host: string;
  readonly port: number;
  /** Temp dir holding config and storage. */
  readonly dir: string;
  stop(): Promise<void>;
}

/** Options for {@link startRegistry}. */
export interface StartRegistryOptions {
  /** An htpasswd file (bcrypt lines) to require basic auth. */
  readonly htpasswd?: string;
  /** Token auth (distribution's `auth.token`): bearer tokens from `realm`, verified against `rootCertBundle`. */
  readonly token?: { readonly realm: string; readonly service: string; readonly issuer: string; readonly rootCertBundle: string };
  readonly binary?: string;
  /** Serve https (distribution's `http.tls`): PEM files; `clientCas` makes it require client certificates. */
  readonly tls?: { readonly certificate: string; readonly key: string; readonly clientCas?: readonly string[] };
}

const BINARY = '/usr/bin/docker-registry';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function config(dir: string, port: number, opts: StartRegistryOptions): string {
  let auth = opts.htpasswd !== undefined ? `auth:\n  htpasswd:\n    realm: kiln-test\n    path: ${opts.htpasswd}\n` : '';
  if (opts.token !== undefined) {
    const t = opts.token;
    auth = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.rootCertBundle}\n`;
  }
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'storage')}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: kiln-test-secret
${tls(opts)}${auth}`;
}

function tls(opts: StartRegistryOptions): string {
  const t = opts.tls;
  if (t === undefined) return '';
  const cas = t.clientCas === undefined ? '' : `    clientcas:\n${t.clientCas.map((c) => `      - ${c}\n`).join('')}`;
  return `  tls:\n    certificate: ${t.certificate}\n    key: ${t.key}\n${cas}`;
}

async function waitReady(port: number, child: ChildProcess, stderr: () => string, tls: boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr()}`);
    // https: listening is ready enough (a request would need the test's CA or client certificate).
    if (tls && (await accepts(port))) return;
    if (tls) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not become ready on port ${port}: ${stderr()}`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Starts a registry; fails with the install command when `docker-registry` is missing. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const binary = opts.binary ?? BINARY;
  try {
    await access(binary);
  } catch {
    throw new Error(`${binary} not found: install it with \`apt-get install -y docker-registry\``);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const cfg = join(dir, 'config.yml');
    await writeFile(cfg, config(dir, port, opts));
    const child = spawn(binary, ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    try {
      await waitReady(port, child, () => err, opts.tls !== undefined);
    } catch (e) {
      lastError = e;
      child.kill('SIGKILL');
      continue;
    }
    return {
      host: `127.0.0.1:${port}`,
      port,
      dir,
      async stop() {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
          if (child.exitCode === null) child.kill('SIGKILL');
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error('could not start docker-registry');
}

/** vitest fixture: `registry` is one docker-registry per test file, stopped after the file. */
export const registryTest = base.extend<{ registry: TestRegistry }>({
  registry: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const r = await startRegistry();
      await use(r);
      await r.stop();
    },
    { scope: 'file' },
  ],
});
