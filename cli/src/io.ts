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

/** The first error of this process's stdout (EPIPE: its reader is gone; EIO, ENOSPC …), once it happened. */
let stdoutFailure: NodeJS.ErrnoException | undefined;
/** Whether a command was told of {@link stdoutFailure} (a write threw it), so it reported it itself. */
let stdoutFailureThrown = false;
let stderrFailed = false;
let theProcessIo: CliIo | undefined;

/** The error a write to the failed stdout throws. */
function stdoutError(e: NodeJS.ErrnoException): CliError {
  return e.code === 'EPIPE' ? new BrokenPipeError() : new CliError('KLN_CLI_STDOUT', `cannot write to standard output: ${e.message}`);
}

/** A process stream as commands see it: its own terminal facts, and a failure `failed` tells of. */
function guarded(stream: NodeJS.WriteStream, failed: () => boolean, whenFailed: () => boolean) {
  return {
    write(chunk: string | Uint8Array): boolean {
      return failed() ? whenFailed() : stream.write(chunk);
    },
    /** `drain`, or the stream's failure: either way the writer may go on (and learns which by writing). */
    once(event: 'drain', listener: () => void): void {
      if (failed()) return void queueMicrotask(listener);
      const done = (): void => {
        stream.off(event, done);
        stream.off('error', done);
        listener();
      };
      stream.on(event, done);
      stream.on('error', done);
    },
    get isTTY(): boolean {
      return stream.isTTY === true;
    },
    get columns(): number | undefined {
      return stream.columns;
    },
    get rows(): number | undefined {
      return stream.rows;
    },
  };
}

/**
 * The real process streams. Writes to stdout never crash kiln: once stdout has failed (a closed
 * pipe, `kiln dump-llb x | head`; EIO from a hung-up terminal; a full disk), the next write
 * throws a {@link CliError} the command unwinds through (a build cleans up as after any error),
 * and a writer waiting for `drain` is woken to find out. A broken pipe ends the command quietly
 * with its status so far (`BrokenPipeError`); other failures are reported, status 1.
 * Once stderr has failed, what is written there is dropped: there is nowhere left to say it.
 */
export function processIo(): CliIo {
  if (theProcessIo === undefined) {
    process.stdout.on('error', (e: NodeJS.ErrnoException) => void (stdoutFailure ??= e));
    process.stderr.on('error', () => void (stderrFailed = true));
    const stdout = guarded(process.stdout, () => stdoutFailure !== undefined, () => {
      stdoutFailureThrown = true;
      throw stdoutError(stdoutFailure as NodeJS.ErrnoException);
    });
    theProcessIo = { stdin: process.stdin, stdout, stderr: guarded(process.stderr, () => stderrFailed, () => true) };
  }
  return theProcessIo;
}

/**
 * The exit code of a command that ended with `code`, given what became of this process's
 * stdout meanwhile: a failure no write reported is reported now (but a broken pipe, as `head`
 * leaves it, stays quiet) and makes a successful command's status 1.
 */
export async function afterStdout(io: CliIo, code: number): Promise<number> {
  // Another process's streams (a daemon's client): its own failures are the client's to tell.
  if (io.stdout !== theProcessIo?.stdout) return code;
  // A failed write's error event comes a tick after the write: let it arrive.
  await new Promise((resolve) => setImmediate(resolve));
  const e = stdoutFailure;
  if (e === undefined || stdoutFailureThrown || e.code === 'EPIPE') return code;
  reportError(io, stdoutError(e), false);
  return code === 0 ? 1 : code;
}

/** Whether the caller's stdin is a terminal (also a daemon client's): nobody types LLB bytes there. */
export function stdinIsTerminal(io: CliIo): boolean {
  return (io.stdin as { readonly isTTY?: boolean }).isTTY === true;
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

/**
 * Writing to stdout failed because its reader has gone (`kiln … | head`). As with any Unix
 * program that meets a closed pipe, nothing is said: commands unwind through it quietly.
 */
export class BrokenPipeError extends CliError {
  constructor() {
    super('KLN_CLI_STDOUT', 'cannot write to standard output: its reader has gone (broken pipe)');
  }
}

/** A warning a build reports (a lint finding, a deprecated instruction), with its place when known. */
export interface BuildWarning {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  readonly message: string;
}

/** Prints `WARNING: [file:line:column: ]message` to stderr. */
export function writeWarning(io: CliIo, w: BuildWarning): void {
  void io.stderr.write(`WARNING: ${w.file === undefined ? '' : `${w.file}:${w.line ?? 0}:${w.column ?? 1}: `}${w.message}\n`);
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
