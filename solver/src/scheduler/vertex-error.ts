import { SolverError, type SourceLocation } from '../errors.js';

/** Fields of a failed vertex. */
export interface VertexErrorInfo {
  readonly vertex: string;
  readonly name: string;
  /** Op kind when known (`exec`, `file`, `source`, `merge`, `diff`). */
  readonly op?: string | undefined;
  readonly locations: readonly SourceLocation[];
  /** The command of a failed exec, as BuildKit prints it (`/bin/sh -c make`). */
  readonly command?: string | undefined;
  readonly exitCode?: number | undefined;
  /** The last lines the op printed (stdout and stderr interleaved). */
  readonly logTail: readonly string[];
}

/**
 * A vertex failed (code `SOLVER_EXEC_FAILED`): carries the op, its source-map locations (the
 * Dockerfile line), the command, the exit code and the last output lines in fields. The message
 * is BuildKit's: `process "/bin/sh -c false" did not complete successfully: exit code: 1`.
 */
export class VertexError extends SolverError {
  override readonly name = 'VertexError';
  readonly vertex: string;
  readonly vertexName: string;
  readonly op: string | undefined;
  readonly locations: readonly SourceLocation[];
  readonly command: string | undefined;
  readonly exitCode: number | undefined;
  readonly logTail: readonly string[];

  constructor(info: VertexErrorInfo, cause: unknown) {
    const base = cause instanceof Error ? cause.message : String(cause);
    const message =
      info.command !== undefined && info.exitCode !== undefined
        ? `process ${JSON.stringify(info.command)} did not complete successfully: exit code: ${info.exitCode}`
        : base;
    const loc = info.locations[0];
    super('SOLVER_EXEC_FAILED', message, { cause, ...(loc === undefined ? {} : { location: loc }) });
    this.vertex = info.vertex;
    this.vertexName = info.name;
    this.op = info.op;
    this.locations = info.locations;
    this.command = info.command;
    this.exitCode = info.exitCode;
    this.logTail = info.logTail;
  }
}

/** Reads `exitCode`/`command` from an op's error when it has them (the runtime's exec errors do). */
export function execDetails(err: unknown): { exitCode?: number; command?: string } {
  const out: { exitCode?: number; command?: string } = {};
  if (typeof err === 'object' && err !== null) {
    if ('exitCode' in err && typeof err.exitCode === 'number') out.exitCode = err.exitCode;
    if ('command' in err && typeof err.command === 'string') out.command = err.command;
  }
  return out;
}
