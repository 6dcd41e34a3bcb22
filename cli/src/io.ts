/** Where a command reads and writes; tests can swap these for buffers. */
export interface CliIo {
  readonly stdin: AsyncIterable<Uint8Array>;
  readonly stdout: { write(chunk: string | Uint8Array): unknown };
  readonly stderr: { write(chunk: string | Uint8Array): unknown };
}

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
