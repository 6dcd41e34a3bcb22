import { resolve } from 'node:path';
import type { EngineSource } from './engine/lease.js';

/**
 * Where a command runs for its caller: the streams it reads and writes, and the caller's working
 * directory, environment and interrupts. In a plain `kiln` process these are the process's own;
 * `kiln daemon` serves other processes, so it fills them from the client. Tests swap in buffers.
 */
export interface CliIo {
  readonly stdin: AsyncIterable<Uint8Array>;
  readonly stdout: { write(chunk: string | Uint8Array): unknown };
  readonly stderr: { write(chunk: string | Uint8Array): unknown };
  /** The caller's working directory (default: this process's); relative paths in arguments resolve against it. */
  readonly cwd?: string;
  /** The caller's environment (default: this process's): build args, secrets, SSH_AUTH_SOCK, KILN_ROOT. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The caller's Ctrl-C and SIGTERM (default: this process's signals). */
  readonly interrupts?: Interrupts;
  /** Where engines come from (default: opened and closed per command; the daemon keeps them open). */
  readonly engines?: EngineSource;
  /**
   * The command runs in another process than its caller's (`kiln daemon`): paths that name this
   * process's own files (`/dev/fd/N`, `/proc/self/…`) would not reach the caller.
   */
  readonly remote?: boolean;
}

/** A source of interrupts: `on` subscribes and returns the unsubscribe function. */
export interface Interrupts {
  on(listener: (signal: string) => void): () => void;
  /** A second interrupt while cancelling: give up at once (a process exits 130). */
  giveUp(): void;
}

/** The caller's working directory. */
export function callerCwd(io: CliIo): string {
  return io.cwd ?? process.cwd();
}

/** The caller's environment. */
export function callerEnv(io: CliIo): Readonly<Record<string, string | undefined>> {
  return io.env ?? process.env;
}

/** `path` made absolute against the caller's working directory. */
export function callerPath(io: CliIo, path: string): string {
  return resolve(callerCwd(io), path);
}

/** This process's `signals` as {@link Interrupts}; giving up exits 130. */
export function signalInterrupts(signals: readonly NodeJS.Signals[]): Interrupts {
  return {
    on(listener) {
      for (const s of signals) process.on(s, listener);
      return () => {
        for (const s of signals) process.off(s, listener);
      };
    },
    giveUp: () => process.exit(130),
  };
}

/** This process's SIGINT and SIGTERM. */
export const processInterrupts: Interrupts = signalInterrupts(['SIGINT', 'SIGTERM']);

let epipeHandled = false;

/**
 * The real process streams. A closed stdout pipe (`kiln dump-llb x | head`) ends the
 * process quietly instead of crashing with an unhandled EPIPE.
 */
export function processIo(): CliIo {
  if (!epipeHandled) {
    epipeHandled = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
}

/** Reads a whole stream into one buffer. */
export async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

/** An error a user can act on, with a stable code and optional hint. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Prints one line (`kiln: error CODE: message`), an optional hint, and the stack only with --debug. */
export function reportError(io: CliIo, e: unknown, debug: boolean): void {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const hint = (e as { hint?: unknown }).hint;
    const firstLine = e.message.split('\n')[0] ?? '';
    io.stderr.write(`kiln: error${typeof code === 'string' ? ` ${code}` : ''}: ${firstLine}\n`);
    if (typeof hint === 'string' && hint) io.stderr.write(`hint: ${hint}\n`);
    if (debug && e.stack) io.stderr.write(`${e.stack}\n`);
  } else {
    io.stderr.write(`kiln: error: ${String(e)}\n`);
  }
}

/**
 * An error already printed to stderr; the dispatcher only turns it into the exit code.
 * Used for build failures, which print a multi-line report.
 */
export class ReportedError extends Error {
  override readonly name = 'ReportedError';
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
