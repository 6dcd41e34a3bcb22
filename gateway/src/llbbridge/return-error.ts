/**
 * A frontend's error in `Return`, both ways. The frontend side sends `google.rpc.Status{UNKNOWN,
 * message}` with, for a kiln error, kiln's ErrorInfo (code, hint, location; error-info.ts) and,
 * when the error has a location, BuildKit's errdefs.Source (file name, the file's bytes when the
 * frontend read it, the range; errdefs-source.ts), so BuildKit's clients show the lines as they do
 * for their own Dockerfile errors. The daemon side turns such a status into the GatewayError
 * KLN0610 the build fails with, carrying the location, the source line and the hint in the shape
 * of kiln's in-process errors.
 */
import { GatewayError } from '../errors.js';
import { errdefsSourceDetail, errdefsSourceFromDetail, sourceLine, type ErrorSource } from './errdefs-source.js';
import { errorInfoDetail, errorLocation, kilnErrorInfo } from './error-info.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import type { LLBBridgeCodec, WireAny, WireStatus } from './messages.js';

/** A file name as a key: without leading `./` or `/` (a location says `Dockerfile`, a read may say `/Dockerfile`). */
export function sourceFileKey(path: string): string {
  return path.replace(/^(?:\.?\/)+/, '');
}

/** Options of {@link returnErrorStatus}. */
export interface ReturnErrorOptions {
  /** The bytes of a file the frontend read, by name (see {@link sourceFileKey}). */
  readonly fileData?: (file: string) => Uint8Array | undefined;
  /** The file an error location with an empty file name means (the Dockerfile frontend's `filename`). */
  readonly defaultFile?: string;
}

/** The Return status for `error`: its message, code UNKNOWN, kiln's ErrorInfo and BuildKit's errdefs.Source when they apply. */
export function returnErrorStatus(codec: LLBBridgeCodec, error: Error, options: ReturnErrorOptions = {}): WireStatus {
  const details: WireAny[] = [];
  const info = errorInfoDetail(codec, error);
  if (info !== undefined) details.push(info);
  const loc = errorLocation(error);
  if (loc !== undefined) {
    const file = loc.file === '' ? (options.defaultFile ?? '') : loc.file;
    const data = file === '' ? undefined : options.fileData?.(sourceFileKey(file));
    const at = { line: loc.line, column: loc.column };
    const source: ErrorSource = { file, ...(data === undefined ? {} : { data }), ranges: [{ start: at, end: at }] };
    details.push(errdefsSourceDetail(source));
  }
  return { code: GrpcCode.UNKNOWN, message: error.message, ...(details.length === 0 ? {} : { details }) };
}

/** A wire `google.rpc.Status` as a GrpcStatusError (no code: UNKNOWN), its details as they came. */
export function statusFromWire(status: WireStatus): GrpcStatusError {
  return new GrpcStatusError(
    status.code ?? GrpcCode.UNKNOWN,
    status.message ?? '',
    (status.details ?? []).map((d) => ({ typeUrl: d.type_url ?? '', value: d.value ?? new Uint8Array() })),
  );
}

/**
 * The GatewayError KLN0610 a frontend's Return error becomes: the status message; the location
 * from kiln's ErrorInfo, else from the first errdefs.Source range; the source line from the
 * Source's file bytes; the hint and the frontend's own code from kiln's ErrorInfo; the status
 * itself (a GrpcStatusError with the details) as `cause`.
 */
export function returnedError(codec: LLBBridgeCodec, status: WireStatus): GatewayError {
  const cause = statusFromWire(status);
  const info = kilnErrorInfo(codec, cause.details);
  const sources = cause.details.map((d) => errdefsSourceFromDetail(codec, d)).filter((s): s is ErrorSource => s !== undefined);
  const infoFile = info?.location?.file;
  const source = (infoFile ? sources.find((s) => sourceFileKey(s.file) === sourceFileKey(infoFile)) : undefined) ?? sources[0];
  const start = source?.ranges[0]?.start;
  let location = info?.location;
  if (location === undefined && source !== undefined && start !== undefined) location = { file: source.file, ...start };
  else if (location !== undefined && location.file === '' && source !== undefined) location = { ...location, file: source.file };
  // The line only from the bytes of the very file the location names.
  const sameFile = location !== undefined && source !== undefined && sourceFileKey(source.file) === sourceFileKey(location.file);
  const line = sameFile && location !== undefined && source?.data !== undefined ? sourceLine(source.data, location.line) : undefined;
  return new GatewayError('KLN0610', status.message || `the frontend failed (status ${cause.grpcCode})`, {
    cause,
    ...(info?.hint === undefined ? {} : { hint: info.hint }),
    ...(location === undefined ? {} : { location }),
    ...(line === undefined ? {} : { source: line }),
    ...(info === undefined ? {} : { frontendCode: info.code }),
  });
}
