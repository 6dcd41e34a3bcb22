/**
 * A `Solve` that names a frontend (BuildKit `SolveRequest.Frontend`, `FrontendOpt`,
 * `FrontendInputs`): how its failure crosses the bridge, both ways. A nested frontend's error
 * keeps its status: the daemon side answers the Solve with the very `google.rpc.Status` an
 * external nested frontend returned (or, for an in-process one, the status its Return would have
 * carried: message, kiln's ErrorInfo, errdefs.Source), so the caller gets the message, location
 * and code of the failure itself, as BuildKit's grpcerrors carry typed details through.
 */
import { GatewayError } from '../errors.js';
import { GrpcCode, GrpcStatusError } from './grpc.js';
import type { Definition, FrontendClient } from '@kiln/llb-core';
import type { LLBBridgeCodec, WireStatus } from './messages.js';
import { errorLocation } from './error-info.js';
import { returnErrorStatus, returnedError, sourceFileKey, statusFromWire, type ReturnErrorOptions } from './return-error.js';

/**
 * The status a failed frontend solve answers with (daemon side). `options` give the bytes of the
 * file an in-process error's location names (see {@link errorSourceFile}), for its errdefs.Source.
 */
export function frontendSolveErrorStatus(codec: LLBBridgeCodec, error: unknown, options: ReturnErrorOptions = {}): GrpcStatusError {
  if (error instanceof GrpcStatusError) return error;
  // An external frontend's Return error (KLN0610 from serveLLBBridge): its status, as it came.
  if (error instanceof GatewayError && error.code === 'KLN0610' && error.cause instanceof GrpcStatusError) {
    const { grpcCode, details } = error.cause;
    return new GrpcStatusError(grpcCode === GrpcCode.OK ? GrpcCode.UNKNOWN : grpcCode, error.cause.message || error.message, details);
  }
  return statusFromWire(returnErrorStatus(codec, error instanceof Error ? error : new Error(String(error)), options));
}

/**
 * The error a failed frontend solve rejects with (frontend side): for a status from the daemon,
 * GatewayError KLN0610 with the status message (no `Solve:` prefix), its location, source line,
 * hint and `frontendCode` (the failure's own stable code, e.g. KLN0601 for an unknown frontend),
 * the status as `cause`; other errors (transport, a missing capability) unchanged.
 */
export function frontendSolveError(codec: LLBBridgeCodec, error: unknown): unknown {
  if (!(error instanceof GatewayError) || error.code !== 'KLN0612' || !(error.cause instanceof GrpcStatusError)) return error;
  return returnedError(codec, statusToWire(error.cause));
}

/** A status as the wire message (to send it again, unchanged, in Return). */
export function statusToWire(status: GrpcStatusError): WireStatus {
  return {
    code: status.grpcCode,
    message: status.message,
    ...(status.details.length === 0 ? {} : { details: status.details.map((d) => ({ type_url: d.typeUrl, value: d.value })) }),
  };
}

/** Files larger than this are not sent in an error's errdefs.Source (the frontend side keeps 1 MiB too). */
const SOURCE_FILE_MAX = 1 << 20;

/**
 * For an in-process nested frontend's error with a location (a Dockerfile error): the bytes of
 * that file, read from the nested request's `dockerfile` input (else `context`), so its
 * errdefs.Source carries them as BuildKit's Dockerfile frontend attaches its Dockerfile. An
 * empty file name is the `filename` option (default `Dockerfile`). Best effort: nothing when
 * there is no such input or file.
 */
export async function errorSourceFile(
  client: FrontendClient,
  error: unknown,
  opts: ReadonlyMap<string, string>,
  inputs: ReadonlyMap<string, Definition>,
): Promise<ReturnErrorOptions> {
  const defaultFile = opts.get('filename') ?? 'Dockerfile';
  const loc = error instanceof Error && !(error instanceof GatewayError && error.code === 'KLN0610') ? errorLocation(error) : undefined;
  const definition = inputs.get('dockerfile') ?? inputs.get('context');
  if (loc === undefined || definition === undefined) return { defaultFile };
  const key = sourceFileKey(loc.file === '' ? defaultFile : loc.file);
  try {
    const ref = await client.solve({ definition });
    const stat = await ref.statFile(key);
    if (stat.size > SOURCE_FILE_MAX) return { defaultFile };
    const data = await ref.readFile(key);
    return { defaultFile, fileData: (file) => (file === key ? data : undefined) };
  } catch {
    return { defaultFile };
  }
}
