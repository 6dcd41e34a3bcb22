import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { encodeDefinition, scratch, type Container, type ContainerProcess, type ContainerProcessRequest, type Definition, type FileStat, type FrontendClient, type NewContainerRequest, type Ref } from '@kiln/llb-core';
import { connectLLBBridge, serveLLBBridge } from '@kiln/gateway';

// kiln's container RPCs against grpcio (gRPC C-core) in a Python child on a unix socket, speaking
// raw protobuf bytes written from gateway.proto (grpc_exec_peer.py): ExecProcess is a
// bidirectional stream, so this is kiln's HTTP/2 streaming against an implementation not kiln's.

const PEER = join(import.meta.dirname, 'grpc_exec_peer.py');
// Debian's python3, where apt installs python3-grpcio.
const PYTHON = '/usr/bin/python3';
const dirs: string[] = [];
const te = new TextEncoder();
const td = new TextDecoder();

beforeAll(() => {
  const r = spawnSync(PYTHON, ['-c', 'import grpc'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`missing prerequisite (grpcio for python3): apt-get install -y python3-grpcio\n${r.stderr ?? ''}`);
});

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function socketPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-exec-interop-'));
  dirs.push(dir);
  return join(dir, 's.sock');
}

type Line = Record<string, unknown>;

function peer(args: readonly string[], onLine: (l: Line) => void = () => undefined): Promise<Line[]> {
  const child = spawn(PYTHON, [PEER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (l) => {
    const parsed = JSON.parse(l) as Line;
    lines.push(parsed);
    onLine(parsed);
  });
  return new Promise((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`grpc_exec_peer.py ${args[0]} exited ${code}: ${stderr}`)))),
  );
}

class MemRef implements Ref {
  constructor(readonly definition: Definition) {}
  async readFile(): Promise<Uint8Array> {
    return new Uint8Array();
  }
  async readDir(): Promise<readonly FileStat[]> {
    return [];
  }
  async statFile(path: string): Promise<FileStat> {
    return { path, mode: 0, uid: 0, gid: 0, size: 0, modTime: 0n };
  }
}

/** An in-memory process: `cat` echoes stdin to stdout; anything else runs until a signal (exit 128+n). */
class MemProcess implements ContainerProcess {
  readonly resizes: { rows: number; cols: number }[] = [];
  readonly #done: Promise<number>;
  #exit: (code: number) => void = () => undefined;
  constructor(request: ContainerProcessRequest) {
    this.#done = new Promise((resolve) => (this.#exit = resolve));
    if (request.args[0] === 'cat') {
      void (async () => {
        for await (const c of request.stdin ?? []) request.stdout?.(c);
        this.#exit(0);
      })();
    }
  }
  wait(): Promise<number> {
    return this.#done;
  }
  async signal(name: string): Promise<void> {
    this.#exit(128 + (osConstants.signals[name as keyof typeof osConstants.signals] ?? 0));
  }
  async resize(size: { rows: number; cols: number }): Promise<void> {
    this.resizes.push(size);
  }
}

describe('LLBBridge ExecProcess against grpcio', () => {
  test('grpcio as the frontend: NewContainer with a ref mount, two processes on one ExecProcess stream, signal, resize, statuses', async () => {
    const path = await socketPath();
    const solved: MemRef[] = [];
    const made: NewContainerRequest[] = [];
    const procs: MemProcess[] = [];
    let releases = 0;
    const client: FrontendClient = {
      opts: new Map(),
      inputs: new Map(),
      solve: async (r) => {
        const ref = new MemRef(r.definition);
        solved.push(ref);
        return ref;
      },
      resolveImageConfig: async () => ({ digest: '', config: new Uint8Array() }),
      newContainer: async (request): Promise<Container> => {
        made.push(request);
        return {
          start: async (r) => {
            const p = new MemProcess(r);
            procs.push(p);
            return p;
          },
          release: async () => {
            releases++;
          },
        };
      },
      warn: () => undefined,
    };
    const served = new Promise<ReturnType<typeof serveLLBBridge>>((resolve) => {
      const server = createServer((s: Socket) => {
        server.close();
        resolve(serveLLBBridge(s, client));
      }).listen(path);
    });
    const definition = await scratch().marshal();
    const lines = await peer(['client', path, Buffer.from(encodeDefinition(definition)).toString('base64')]);
    const by = new Map(lines.map((l) => [l['step'] as string, l]));

    expect(by.get('caps')?.['caps']).toEqual(expect.arrayContaining(['gateway.exec', 'gateway.exec.extrahosts']));
    expect(by.get('new-container')).toMatchObject({ ok: true });
    expect(made[0]?.mounts[0]?.ref).toBe(solved[0]);
    expect(made[0]?.network).toBe('none');
    expect(by.get('new-container-unknown-ref')).toMatchObject({ ok: false, code: 'NOT_FOUND', details: expect.stringContaining('failed to find ref nope') });

    const exec = by.get('exec') as { messages: Line[]; code: string };
    expect(exec.code).toBe('OK');
    const cat = exec.messages.filter((m) => m['pid'] === 'ctr1:cat');
    // Fds [0, 1, 2]: the output, then an EOF for each output fd, Exit, Done.
    expect(cat.map((m) => m['kind'])).toEqual(['started', 'file', 'file', 'file', 'exit', 'done']);
    expect(cat[1]).toMatchObject({ fd: 1, data: 'hello grpcio\n' });
    expect(cat[2]).toMatchObject({ fd: 1, eof: true });
    expect(cat[3]).toMatchObject({ fd: 2, eof: true });
    expect(cat[4]).toMatchObject({ code: 0 });
    expect(cat[4]?.['error']).toBeUndefined();
    const sleep = exec.messages.filter((m) => m['pid'] === 'ctr1:sleep');
    // No Fds asked for: no output EOFs, only Started, Exit (with its error status) and Done.
    expect(sleep.map((m) => m['kind'])).toEqual(['started', 'exit', 'done']);
    expect(sleep[1]).toMatchObject({ code: 143, error: 'exit code: 143' });
    expect(procs[1]?.resizes).toEqual([{ rows: 24, cols: 80 }]);

    expect(by.get('exec-bad')).toMatchObject({ ok: false, code: 'NOT_FOUND', details: 'IO for process "ghost" not found' });
    expect(by.get('release')).toMatchObject({ ok: true });
    expect(by.get('release-again')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(releases).toBe(1);
    await (await served);
  });

  test('grpcio as the daemon: kiln opens a container, streams stdin and reads stdout over ExecProcess, signals, releases, returns', async () => {
    const path = await socketPath();
    let ready: () => void = () => undefined;
    const listening = new Promise<void>((r) => (ready = r));
    const lines = peer(['server', path], (l) => {
      if (l['call'] === 'listening') ready();
    });
    await listening;
    const client = await connectLLBBridge(connect(path), {});
    const ref = await client.solve({ definition: await scratch().marshal() });
    const container = await client.newContainer({ mounts: [{ dest: '/', ref }], network: 'none', extraHosts: [{ host: 'db', ip: '10.0.0.2' }] });

    async function* stdin(): AsyncGenerator<Uint8Array> {
      yield te.encode('shout ');
      yield te.encode('this');
    }
    const out: string[] = [];
    const echo = await container.start({ args: ['echo'], stdin: stdin(), stdout: (c) => out.push(td.decode(c)) });
    expect(await echo.wait()).toBe(0);
    expect(out.join('')).toBe('SHOUT THIS');

    const waiting = await container.start({ args: ['sleep'] });
    await waiting.signal('SIGINT');
    expect(await waiting.wait()).toBe(130);
    await container.release();
    await client.return({ ref, metadata: new Map() });

    const got = await lines;
    const newContainer = got.find((l) => l['call'] === 'new-container');
    // NewContainerRequest as sent: ContainerID 1, Mounts 2 {dest 3 "/", resultID 23}, Network 3 = NONE (2), extraHosts 6.
    const req = Buffer.from(String(newContainer?.['request']), 'base64');
    expect(req.includes(Buffer.from([0x18, 0x02]))).toBe(true);
    expect(req.includes(Buffer.concat([Buffer.from([0xba, 0x01, 'py-ref-1'.length]), Buffer.from('py-ref-1')]))).toBe(true);
    expect(req.includes(Buffer.from('10.0.0.2'))).toBe(true);
    const execs = got.filter((l) => l['call'] === 'exec').map((l) => l['message'] as Line);
    const init = execs.find((m) => m['kind'] === 'init');
    expect(init).toMatchObject({ args: ['echo'], fds: [0, 1] });
    expect(String(init?.['pid'])).toMatch(new RegExp(`^${String(init?.['container'])}:`));
    expect(execs.filter((m) => m['kind'] === 'file').map((m) => (m['eof'] === true ? 'EOF' : m['data']))).toEqual(['shout ', 'this', 'EOF']);
    expect(execs.find((m) => m['kind'] === 'signal')).toMatchObject({ name: 'INT' });
    expect(got.map((l) => l['call'])).toEqual(expect.arrayContaining(['release', 'return']));
  });
});
