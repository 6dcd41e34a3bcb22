/**
 * In-memory fakes of the gateway's container interface (FrontendClient.newContainer, Container,
 * ContainerProcess) for the LLBBridge container tests: they fake the gateway's side of the
 * boundary, so the gRPC and protobuf traffic under test is real.
 */
import { constants as osConstants } from 'node:os';
import type { Container, ContainerProcess, ContainerProcessRequest, Definition, FileStat, FrontendClient, NewContainerRequest, Ref } from '@kiln/llb-core';

const te = new TextEncoder();
const FLOOD_CHUNK = 64 * 1024;
const FLOOD_PATTERN = new Uint8Array(FLOOD_CHUNK + 251).map((_, i) => i % 251);

export class MemRef implements Ref {
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

/**
 * A scripted process: `cat` copies stdin to stdout; `err MSG CODE` writes MSG to stderr and exits
 * CODE; `sleep` runs until a signal (exit 128+n); `nowait` rejects wait(); `flood N` writes N
 * bytes (byte i is i % 251) to stdout in 64 KiB chunks, each write waiting for the promise the
 * callback returned, as a process blocks in write() on a full pipe (`written` counts them).
 */
export class MemProcess implements ContainerProcess {
  readonly signals: string[] = [];
  readonly resizes: { rows: number; cols: number }[] = [];
  /** Bytes a `flood` handed to its stdout callback. */
  written = 0;
  readonly #done: Promise<number>;
  #exit: (code: number) => void = () => undefined;
  #fail: (e: Error) => void = () => undefined;
  constructor(readonly request: ContainerProcessRequest) {
    this.#done = new Promise((resolve, reject) => {
      this.#exit = resolve;
      this.#fail = reject;
    });
    const [cmd, a1, a2] = request.args;
    if (cmd === 'cat') {
      void (async () => {
        for await (const chunk of request.stdin ?? []) request.stdout?.(chunk);
        this.#exit(0);
      })();
    } else if (cmd === 'err') {
      setTimeout(() => {
        request.stderr?.(te.encode(a1 ?? ''));
        this.#exit(Number(a2));
      }, 1);
    } else if (cmd === 'flood') {
      void (async () => {
        const total = Number(a1);
        for (let at = 0; at < total && this.signals.length === 0; at += FLOOD_CHUNK) {
          const n = Math.min(FLOOD_CHUNK, total - at);
          this.written += n;
          await request.stdout?.(FLOOD_PATTERN.subarray(at % 251, (at % 251) + n));
        }
        this.#exit(0);
      })();
    } else if (cmd === 'nowait') {
      setTimeout(() => this.#fail(new Error('lost track of the process')), 1);
    }
  }
  wait(): Promise<number> {
    return this.#done;
  }
  async signal(name: string): Promise<void> {
    this.signals.push(name);
    this.#exit(128 + (osConstants.signals[name as keyof typeof osConstants.signals] ?? 0));
  }
  async resize(size: { rows: number; cols: number }): Promise<void> {
    this.resizes.push(size);
  }
}

export class MemContainer implements Container {
  readonly processes: MemProcess[] = [];
  releases = 0;
  constructor(readonly request: NewContainerRequest) {}
  async start(request: ContainerProcessRequest): Promise<ContainerProcess> {
    if (this.releases > 0) throw new Error('container released');
    if (request.args[0] === 'missing') throw new Error('exec: "missing": executable file not found in $PATH');
    const p = new MemProcess(request);
    this.processes.push(p);
    return p;
  }
  async release(): Promise<void> {
    this.releases++;
    for (const p of this.processes) await p.signal('SIGKILL');
  }
}

export class MemClient implements FrontendClient {
  readonly opts = new Map<string, string>();
  readonly inputs = new Map<string, Definition>();
  readonly solved: MemRef[] = [];
  readonly containers: MemContainer[] = [];
  async solve(r: { definition: Definition }): Promise<Ref> {
    const ref = new MemRef(r.definition);
    this.solved.push(ref);
    return ref;
  }
  async resolveImageConfig(): Promise<never> {
    throw new Error('unused');
  }
  async newContainer(request: NewContainerRequest): Promise<Container> {
    const c = new MemContainer(request);
    this.containers.push(c);
    return c;
  }
  warn(): void {}
}
