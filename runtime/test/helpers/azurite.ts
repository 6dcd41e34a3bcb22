import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/**
 * Azurite's blob service (the Azure Storage emulator, the npm devDependency `azurite`) on
 * 127.0.0.1, on a free port, with its workspace in a temp dir. It checks Shared Key signatures,
 * SAS tokens, Content-MD5 and names as the service does. The account is made for the run
 * (AZURITE_ACCOUNTS), with a random key: not the emulator's well-known one.
 */
export interface TestAzurite {
  /** `http://127.0.0.1:PORT/ACCOUNT` (the emulator's path-style account URL). */
  readonly accountUrl: string;
  readonly accountName: string;
  /** The account key, base64. */
  readonly accountKey: string;
  /** Every request the service answered, from its access log: method, path (with the query) and status. */
  readonly requests: Array<{ method: string; path: string; status: number }>;
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** Starts Azurite's blob service; resolves once it listens. */
export async function startAzurite(accountName = 'kilncache'): Promise<TestAzurite> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-azurite-'));
  const accountKey = randomBytes(64).toString('base64');
  const main = require.resolve('azurite/dist/src/blob/main.js');
  // --disableTelemetry: Azurite sends usage data to Microsoft unless told not to. No --loose and
  // no --skipApiVersionCheck: the client's requests are checked as the service checks them.
  const child = spawn(process.execPath, [main, '--blobHost', '127.0.0.1', '--blobPort', '0', '--location', dir, '--disableTelemetry'], {
    cwd: dir,
    env: { ...process.env, AZURITE_ACCOUNTS: `${accountName}:${accountKey}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const requests: TestAzurite['requests'] = [];
  let output = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`azurite did not start in 20 s:\n${output}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`azurite exited (${String(code)}):\n${output}\ninstall it with: npm ci (azurite is a devDependency)`)));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const listening = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (listening !== null) {
          clearTimeout(timer);
          resolve(Number(listening[1]));
        }
        // 127.0.0.1 - - [date] "PUT /account/container/blob?comp=block HTTP/1.1" 201 -
        const req = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/.exec(line);
        if (req !== null) requests.push({ method: req[1] as string, path: decodeURIComponent(req[2] as string), status: Number(req[3]) });
      }
    });
  });
  return {
    accountUrl: `http://127.0.0.1:${port}/${accountName}`,
    accountName,
    accountKey,
    requests,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Registers hooks that start Azurite before a file's tests (handing it to `use`) and stop it after them. */
export function useAzurite(use: (az: TestAzurite) => void): void {
  let az: TestAzurite | undefined;
  beforeAll(async () => {
    az = await startAzurite();
    use(az);
  }, 60_000);
  afterAll(async () => {
    await az?.stop();
  });
}
