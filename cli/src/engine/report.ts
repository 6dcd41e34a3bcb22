import { formatError, KilnError } from '@kiln/dockerfile';
import { GatewayError } from '@kiln/gateway';
import { SourcePolicyError, VertexError } from '@kiln/solver';
import { TsDslError } from '@kiln/ts-dsl';

/** Options of {@link formatBuildError}. */
export interface FormatBuildErrorOptions {
  /** The Dockerfile text, to quote the failing line. */
  readonly dockerfileText?: string;
  /** The Dockerfile name shown in `FILE:LINE:COL`. */
  readonly dockerfileName?: string;
  /** Output lines of a failed RUN to show (default 10). */
  readonly tailLines?: number;
}

/**
 * Renders a build failure for the terminal, BuildKit-style but in one block:
 * Dockerfile problems as `FILE:LINE:COL: message [CODE]` with the line and a caret; a failed
 * RUN with its Dockerfile location, the command, the exit code and its last output lines.
 * Never includes a stack trace (the caller adds it under `--debug`).
 */
export function formatBuildError(e: unknown, opts: FormatBuildErrorOptions = {}): string {
  const policyError = findCause(e, SourcePolicyError);
  if (policyError !== undefined) return formatPolicyError(policyError, findCause(e, KilnError) ?? findCause(e, TsDslError), opts);
  if (e instanceof KilnError) {
    return `kiln: error: ${formatError(e, { ...(opts.dockerfileText === undefined ? {} : { text: opts.dockerfileText }), ...(opts.dockerfileName === undefined ? {} : { file: opts.dockerfileName }) })}\n`;
  }
  const vertexError = findCause(e, VertexError);
  if (vertexError !== undefined) return formatVertexError(vertexError, opts);
  const dockerfileError = findCause(e, KilnError);
  if (dockerfileError !== undefined) return formatBuildError(dockerfileError, opts);
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  const hint = (err as { hint?: unknown }).hint;
  // An external frontend's error (KLN0610) carries the location, source line and code the
  // frontend sent: shown as a Dockerfile error in process is (a kiln/ts or buildpacks error
  // already names its place in its message).
  const loc = err instanceof GatewayError ? err.location : undefined;
  const frontendCode = err instanceof GatewayError ? err.frontendCode : undefined;
  const file = loc === undefined ? undefined : loc.file === '' ? (opts.dockerfileName ?? 'Dockerfile') : loc.file;
  const message = (err.message.split('\n')[0] ?? '').trim();
  const place = loc === undefined ? '' : `${file}:${loc.line}:${loc.column}: `;
  const where = message.startsWith(place) ? '' : place;
  let out = `kiln: error${typeof code === 'string' ? ` ${code}` : ''}: ${where}${message}${frontendCode === undefined ? '' : ` [${frontendCode}]`}\n`;
  if (loc !== undefined && err instanceof GatewayError) {
    const text = err.source ?? (file === (opts.dockerfileName ?? 'Dockerfile') ? opts.dockerfileText?.split('\n')[loc.line - 1] : undefined);
    if (text !== undefined) {
      const gutter = String(loc.line);
      out += `  ${gutter} | ${text.replace(/\r$/, '')}\n  ${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, loc.column - 1))}^\n`;
    }
  }
  const cause = err.cause instanceof Error ? err.cause.message.split('\n')[0] : undefined;
  if (cause !== undefined && cause !== '' && !err.message.includes(cause)) out += `cause: ${cause}\n`;
  if (typeof hint === 'string' && hint !== '') out += `hint: ${hint}\n`;
  return out;
}

/**
 * A source policy error with its own code, at the place the source was written: the source
 * map's location of a denied op, or the FROM (the kiln/ts `image()` call) a frontend was
 * resolving when the policy denied it.
 */
function formatPolicyError(e: SourcePolicyError, frontendError: KilnError | TsDslError | undefined, opts: FormatBuildErrorOptions): string {
  const loc = e.location ?? frontendError?.location;
  const file = loc === undefined ? undefined : loc.file === '' ? (opts.dockerfileName ?? 'Dockerfile') : loc.file;
  const lines = [`kiln: error ${e.code}: ${loc === undefined ? '' : `${file}:${loc.line}:${loc.column}: `}${e.message}`];
  const frontendSource = frontendError instanceof KilnError ? frontendError.source : undefined;
  const text = loc === undefined ? undefined : (e.location?.source ?? (file === (opts.dockerfileName ?? 'Dockerfile') ? opts.dockerfileText?.split('\n')[loc.line - 1] : undefined) ?? frontendSource);
  if (loc !== undefined && text !== undefined) lines.push(`  ${loc.line} | ${text.split('\n')[0]?.replace(/\r$/, '') ?? ''}`);
  if (e.hint !== undefined) lines.push(`hint: ${e.hint}`);
  return `${lines.join('\n')}\n`;
}

function formatVertexError(e: VertexError, opts: FormatBuildErrorOptions): string {
  const loc = e.locations[0];
  const lines: string[] = [];
  const file = loc === undefined ? undefined : loc.file === '' ? (opts.dockerfileName ?? 'Dockerfile') : loc.file;
  const where = loc === undefined ? '' : `${file}:${loc.line}:${loc.column}: `;
  lines.push(`kiln: error ${e.code}: ${where}${e.message}`);
  // The Dockerfile text is the main file's: a step of another file (a Dockerfile a buildpacks
  // extension generated) is quoted from the source map's own text only.
  const main = loc !== undefined && (loc.file === '' || file === (opts.dockerfileName ?? 'Dockerfile'));
  const text = loc === undefined ? undefined : (loc.source ?? (main ? opts.dockerfileText?.split('\n')[loc.line - 1] : undefined));
  if (loc !== undefined && text !== undefined) lines.push(`  ${loc.line} | ${text.split('\n')[0]?.replace(/\r$/, '') ?? ''}`);
  else lines.push(`  in ${e.vertexName}`);
  if (e.command !== undefined) lines.push(`command: ${e.command}`);
  if (e.exitCode !== undefined) lines.push(`exit code: ${e.exitCode}`);
  const tail = e.logTail.slice(-(opts.tailLines ?? 10));
  // A process that never ran (runc's own failure, which it also prints): output that only
  // repeats the message adds nothing. A process's own output always shows (it may echo its command).
  const repeatsMessage = e.exitCode === undefined && tail.every((l) => e.message.includes(l.trim()));
  if (tail.length > 0 && !repeatsMessage) {
    lines.push(`last output lines:`);
    for (const l of tail) lines.push(`  > ${l}`);
  }
  if (e.command === undefined && e.cause instanceof Error && e.cause.message !== e.message) lines.push(`cause: ${e.cause.message.split('\n')[0] ?? ''}`);
  const hint = firstHint(e);
  if (hint !== undefined) lines.push(`hint: ${hint}`);
  return `${lines.join('\n')}\n`;
}

/** The first error of class `cls` in `e` and its causes. */
export function findCause<T>(e: unknown, cls: abstract new (...args: never[]) => T): T | undefined {
  for (let cur: unknown = e, depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    if (cur instanceof cls) return cur;
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return undefined;
}

function firstHint(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; depth++, cur = cur.cause) {
    const h = (cur as { hint?: unknown }).hint;
    if (typeof h === 'string' && h !== '') return h;
  }
  return undefined;
}
