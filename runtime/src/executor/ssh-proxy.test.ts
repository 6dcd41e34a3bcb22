import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { startSshProxy } from './ssh-proxy.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A unix socket server that answers every connection with `name` and closes it. */
async function fakeAgent(path: string, name: string): Promise<Server> {
  const server = createServer((c) => c.end(name));
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => new Promise((r) => server.close(() => r())));
  return server;
}

/** What one connection to `path` reads until the other side closes it. */
function ask(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const c = createConnection(path);
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

test('an agent chosen per connection: each connection goes to the agent named when it arrives; none named refuses it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await fakeAgent(join(dir, 'a.sock'), 'agent a');
  await fakeAgent(join(dir, 'b.sock'), 'agent b');
  let current: string | undefined = join(dir, 'a.sock');
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), () => (current === undefined ? [] : [current]), 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  cleanups.push(() => proxy.close());
  expect(await ask(proxy.path)).toBe('agent a');
  current = join(dir, 'b.sock');
  expect(await ask(proxy.path)).toBe('agent b');
  current = undefined;
  expect(await ask(proxy.path)).toBe('');
  // A fixed socket path still works as before.
  const fixed = await startSshProxy(join(dir, 'fixed.sock'), join(dir, 'a.sock'), 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  cleanups.push(() => fixed.close());
  expect(await ask(fixed.path)).toBe('agent a');
});

test('a resolver that throws refuses that connection only: the proxy (and the process) go on', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await fakeAgent(join(dir, 'a.sock'), 'agent a');
  let fail = true;
  const resolver = (): readonly string[] => {
    if (fail) throw new Error('session gone');
    return [join(dir, 'a.sock')];
  };
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), resolver, 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  cleanups.push(() => proxy.close());
  expect(await ask(proxy.path)).toBe('');
  fail = false;
  expect(await ask(proxy.path)).toBe('agent a');
});

test('the agent named first does not answer (its build is attached, its agent died): the next one serves the connection, as BuildKit tries each session', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dead = await fakeAgent(join(dir, 'dead.sock'), 'dead agent');
  await new Promise((r) => dead.close(r));
  await fakeAgent(join(dir, 'b.sock'), 'agent b');
  const agents = [join(dir, 'missing.sock'), join(dir, 'dead.sock'), join(dir, 'b.sock')];
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), () => agents, 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  cleanups.push(() => proxy.close());
  expect(await ask(proxy.path)).toBe('agent b');
  // What the client writes before an agent is chosen reaches it.
  const echo = createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(join(dir, 'echo.sock'), r));
  cleanups.push(() => new Promise((r) => echo.close(() => r())));
  agents.splice(0, agents.length, join(dir, 'missing.sock'), join(dir, 'echo.sock'));
  const got = await new Promise<string>((resolve, reject) => {
    const c = createConnection(proxy.path);
    c.on('error', reject);
    c.write('hello');
    c.once('data', (d: Buffer) => {
      resolve(d.toString());
      c.destroy();
    });
  });
  expect(got).toBe('hello');
  // Every agent gone: refused.
  agents.splice(0, agents.length, join(dir, 'missing.sock'), join(dir, 'dead.sock'));
  expect(await ask(proxy.path)).toBe('');
});

/** A unix socket server that accepts connections, reads what comes and never answers (a stopped or stuck agent). */
async function silentAgent(path: string): Promise<{ got: () => string }> {
  let got = '';
  const held: Socket[] = [];
  const server = createServer((c) => {
    held.push(c);
    c.on('data', (d: Buffer) => (got += d.toString()));
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(
    () =>
      new Promise((r) => {
        for (const c of held) c.destroy();
        server.close(() => r());
      }),
  );
  return { got: () => got };
}

/** Writes `request` on a connection to `path`; resolves with the first answer, or '' when the connection is closed without one. */
function request(path: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    c.on('error', reject);
    c.write(request);
    c.once('data', (d: Buffer) => {
      resolve(d.toString());
      c.destroy();
    });
    c.on('close', () => resolve(''));
  });
}

test('an agent that accepts and never answers is given up after the wait: the next agent gets what the client sent; with none left the connection is closed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const stuck = await silentAgent(join(dir, 'stuck.sock'));
  const echo = createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(join(dir, 'echo.sock'), r));
  cleanups.push(() => new Promise((r) => echo.close(() => r())));
  let agents = [join(dir, 'stuck.sock'), join(dir, 'echo.sock')];
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), () => agents, 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0, 300);
  cleanups.push(() => proxy.close());
  const t0 = Date.now();
  expect(await request(proxy.path, 'identities?')).toBe('identities?');
  expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  expect(stuck.got()).toBe('identities?');
  // Only silent agents: refused once the wait is over, not held for ever.
  agents = [join(dir, 'stuck.sock')];
  const t1 = Date.now();
  expect(await request(proxy.path, 'again?')).toBe('');
  expect(Date.now() - t1).toBeLessThan(5_000);
});

test('an agent that has answered once is not cut off while it takes its time over a later request (a key whose use its owner confirms)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-proxy-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // Answers its first request at once and the second after 600 ms.
  const slow = createServer((c) => {
    let n = 0;
    c.on('data', (d: Buffer) => {
      n += 1;
      if (n === 1) c.write(`first:${d.toString()}`);
      else setTimeout(() => c.end(`second:${d.toString()}`), 600);
    });
  });
  await new Promise<void>((r) => slow.listen(join(dir, 'slow.sock'), r));
  cleanups.push(() => new Promise((r) => slow.close(() => r())));
  const proxy = await startSshProxy(join(dir, 'proxy.sock'), () => [join(dir, 'slow.sock')], 0o600, process.getuid?.() ?? 0, process.getgid?.() ?? 0, 200);
  cleanups.push(() => proxy.close());
  const got = await new Promise<string>((resolve, reject) => {
    let text = '';
    const c = createConnection(proxy.path);
    c.on('error', reject);
    c.write('a');
    c.on('data', (d: Buffer) => {
      text += d.toString();
      if (text === 'first:a') c.write('b');
    });
    c.on('close', () => resolve(text));
  });
  expect(got).toBe('first:asecond:b');
});
