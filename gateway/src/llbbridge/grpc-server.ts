/**
 * A gRPC server for unary and streaming calls on one byte stream: HTTP/2 with prior knowledge (h2c) through
 * `node:http2`'s `performServerHandshake`, as buildkitd serves LLBBridge on a frontend
 * container's stdin/stdout. grpc-js cannot serve a bare stream, hence this.
 */
import { constants, performServerHandshake, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { GatewayError } from '../errors.js';
import { GRPC_CONTENT_TYPE, GrpcCode, GrpcStatusError, MAX_MESSAGE_BYTES, MessageReader, encodeGrpcMessage, frameMessage, tooLarge } from './grpc.js';
import { MessageWriter, messageQueue, pauseWhileFull, type ServerStreamCall, type StreamHandler } from './grpc-stream.js';

/** Answers one unary call: the request message in, the response message out (or a thrown status). */
export type UnaryHandler = (request: Uint8Array) => Promise<Uint8Array>;

/** Options of {@link GrpcServer}. */
export interface GrpcServerOptions {
  /** Encodes a `google.rpc.Status` for the `grpc-status-details-bin` trailer (sent when details exist). */
  readonly encodeStatus?: (status: GrpcStatusError) => Uint8Array;
  /** Called after a call's response (or error status) has been handed to HTTP/2, with the method path. */
  readonly onResponded?: (path: string) => void;
  /** Streaming methods by full path (client, server or bidirectional streams alike). */
  readonly streams?: ReadonlyMap<string, StreamHandler>;
}

/** The status a handler's failure is reported with. */
export function statusOf(error: unknown): GrpcStatusError {
  if (error instanceof GrpcStatusError) return error;
  if (error instanceof GatewayError) {
    if (error.code === 'KLN0613') return new GrpcStatusError(GrpcCode.RESOURCE_EXHAUSTED, error.message);
    if (error.code === 'KLN0614') return new GrpcStatusError(GrpcCode.INTERNAL, error.message);
  }
  return new GrpcStatusError(GrpcCode.UNKNOWN, error instanceof Error ? error.message : String(error));
}

function isGrpcContentType(value: string | undefined): boolean {
  return value !== undefined && (value === GRPC_CONTENT_TYPE || value.startsWith(`${GRPC_CONTENT_TYPE}+`) || value.startsWith(`${GRPC_CONTENT_TYPE};`));
}

/** Serves unary gRPC methods (by full path, `/package.Service/Method`) on one HTTP/2 connection. */
export class GrpcServer {
  /** Settles when the connection is gone (peer closed it, {@link close}, or an I/O error). */
  readonly closed: Promise<void>;
  readonly #session: ServerHttp2Session;
  readonly #handlers: ReadonlyMap<string, UnaryHandler>;
  readonly #options: GrpcServerOptions;

  constructor(stream: Duplex, handlers: ReadonlyMap<string, UnaryHandler>, options: GrpcServerOptions = {}) {
    this.#handlers = handlers;
    this.#options = options;
    this.#session = performServerHandshake(stream);
    this.closed = new Promise((resolve) => {
      this.#session.once('close', resolve);
    });
    // A peer that goes away mid-call (a frontend killed, a pipe broken) ends the session; the
    // owner learns of it through `closed`.
    this.#session.on('error', () => {});
    stream.on('error', () => this.#session.destroy());
    stream.once('end', () => {
      if (!this.#session.destroyed) this.#session.destroy();
    });
    this.#session.on('stream', (s, headers) => this.#onStream(s, headers));
  }

  /** Stops taking calls and closes the connection once the calls in progress have been answered. */
  close(): void {
    if (!this.#session.closed) this.#session.close();
  }

  /** Drops the connection at once (calls in progress are reset). */
  destroy(): void {
    this.#session.destroy();
  }

  #onStream(s: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    s.on('error', () => {});
    const path = headers[':path'] ?? '';
    if (headers[':method'] !== 'POST' || !isGrpcContentType(headers['content-type'])) {
      if (!s.headersSent) s.respond({ ':status': 415 }, { endStream: true });
      s.resume();
      return;
    }
    const streamHandler = this.#options.streams?.get(path);
    if (streamHandler !== undefined) {
      this.#serveStream(s, path, streamHandler);
      return;
    }
    const handler = this.#handlers.get(path);
    if (handler === undefined) {
      s.resume();
      this.#fail(s, path, new GrpcStatusError(GrpcCode.UNIMPLEMENTED, `unknown method ${path}`));
      return;
    }
    const reader = new MessageReader();
    let failed = false;
    s.on('data', (chunk: Buffer) => {
      if (failed) return;
      try {
        reader.push(chunk);
      } catch (e) {
        failed = true;
        this.#fail(s, path, statusOf(e));
      }
    });
    s.on('end', () => {
      if (failed) return;
      let request: Uint8Array;
      try {
        const messages = reader.finish();
        if (messages.length !== 1 || messages[0] === undefined) {
          throw new GrpcStatusError(GrpcCode.INTERNAL, `grpc: a unary call takes one request message, got ${messages.length}`);
        }
        request = messages[0];
      } catch (e) {
        this.#fail(s, path, statusOf(e));
        return;
      }
      handler(request).then(
        (response) => this.#respond(s, path, response),
        (e: unknown) => this.#fail(s, path, statusOf(e)),
      );
    });
  }

  #respond(s: ServerHttp2Stream, path: string, response: Uint8Array): void {
    if (s.destroyed || s.headersSent) return;
    let frame: Buffer;
    try {
      frame = frameMessage(response);
    } catch (e) {
      this.#fail(s, path, statusOf(e));
      return;
    }
    s.respond({ ':status': 200, 'content-type': GRPC_CONTENT_TYPE }, { waitForTrailers: true });
    s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end(frame);
    this.#options.onResponded?.(path);
  }

  /**
   * One streaming call: request messages go to the handler as they arrive, its messages go out
   * as DATA frames after the response headers, and its outcome becomes the trailers (the client
   * closes its side when they arrive). A reset stream aborts `signal`; node's client half-closes
   * before it resets, so `messages` may end normally first.
   */
  #serveStream(s: ServerHttp2Stream, path: string, handler: StreamHandler): void {
    const reader = new MessageReader();
    const incoming = messageQueue();
    const writer = new MessageWriter(s);
    const gone = new AbortController();
    let trailers: Record<string, string> = { 'grpc-status': '0' };
    s.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (const m of reader.take()) incoming.push(m);
        pauseWhileFull(s, incoming);
      } catch (e) {
        incoming.fail(statusOf(e));
      }
    });
    s.on('end', () => {
      try {
        reader.finish();
        incoming.end();
      } catch (e) {
        incoming.fail(statusOf(e));
      }
    });
    s.once('close', () => {
      incoming.fail(new GrpcStatusError(GrpcCode.CANCELLED, `${path}: the call was cancelled`));
      gone.abort(new GrpcStatusError(GrpcCode.CANCELLED, `${path}: the call was cancelled`));
    });
    const respond = (): void => {
      if (s.headersSent) return;
      s.respond({ ':status': 200, 'content-type': GRPC_CONTENT_TYPE }, { waitForTrailers: true });
      s.once('wantTrailers', () => {
        s.sendTrailers(trailers);
      });
    };
    const call: ServerStreamCall = {
      messages: incoming,
      signal: gone.signal,
      send: (message) => {
        if (s.destroyed || s.writableEnded) return Promise.reject(new GrpcStatusError(GrpcCode.CANCELLED, `${path}: the call is over`));
        if (message.byteLength > MAX_MESSAGE_BYTES) return Promise.reject(tooLarge(message.byteLength, 'sent'));
        respond();
        return writer.write(message);
      },
    };
    const finish = (status: GrpcStatusError | undefined): void => {
      if (s.destroyed || s.writableEnded) return;
      if (!s.headersSent) {
        s.respond({ ':status': 200, 'content-type': GRPC_CONTENT_TYPE, ...(status === undefined ? trailers : this.#statusHeaders(status)) }, { endStream: true });
        this.#options.onResponded?.(path);
        return;
      }
      if (status !== undefined) trailers = this.#statusHeaders(status);
      s.end();
      this.#options.onResponded?.(path);
    };
    handler(call).then(
      () => finish(undefined),
      (e: unknown) => finish(statusOf(e)),
    );
  }

  #statusHeaders(status: GrpcStatusError): Record<string, string> {
    const headers: Record<string, string> = { 'grpc-status': String(status.grpcCode), 'grpc-message': encodeGrpcMessage(status.message) };
    if (status.details.length > 0 && this.#options.encodeStatus !== undefined) {
      headers['grpc-status-details-bin'] = Buffer.from(this.#options.encodeStatus(status)).toString('base64').replace(/=+$/, '');
    }
    return headers;
  }

  /** A trailers-only response: the status in the one HEADERS frame, which ends the stream. */
  #fail(s: ServerHttp2Stream, path: string, status: GrpcStatusError): void {
    if (s.destroyed) return;
    if (s.headersSent) {
      s.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    s.respond({ ':status': 200, 'content-type': GRPC_CONTENT_TYPE, ...this.#statusHeaders(status) }, { endStream: true });
    this.#options.onResponded?.(path);
  }
}
