/**
 * A gRPC client for unary and streaming calls on one byte stream: `node:http2` with `createConnection`
 * returning the stream (h2c, prior knowledge), as a frontend talks to buildkitd over its stdio.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Duplex } from 'node:stream';
import { GRPC_CONTENT_TYPE, GrpcCode, GrpcStatusError, MessageReader, decodeGrpcMessage, frameMessage } from './grpc.js';
import { MessageWriter, messageQueue, pauseWhileFull, type ClientStreamCall } from './grpc-stream.js';

/** Decodes a `grpc-status-details-bin` trailer (a `google.rpc.Status`) into its details. */
export type StatusDetailsDecoder = (bytes: Uint8Array) => GrpcStatusError['details'];

function header(h: IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A call in flight and what has come back so far. */
interface OpenCall {
  readonly req: ClientHttp2Stream;
  readonly reader: MessageReader;
  headers: IncomingHttpHeaders | undefined;
  trailers: IncomingHttpHeaders | undefined;
  failure: unknown;
}

/** Unary and streaming calls over one HTTP/2 connection. Rejections are GrpcStatusError or GatewayError (KLN0613/KLN0614). */
export class GrpcClient {
  readonly #session: ClientHttp2Session;
  readonly #decodeDetails: StatusDetailsDecoder | undefined;
  #closeReason: string | undefined;

  constructor(stream: Duplex, decodeDetails?: StatusDetailsDecoder) {
    this.#decodeDetails = decodeDetails;
    this.#session = connect('http://localhost', { createConnection: () => stream });
    this.#session.on('error', (e: Error) => {
      this.#closeReason ??= e.message;
    });
    this.#session.once('close', () => {
      this.#closeReason ??= 'the connection closed';
    });
  }

  /** Calls `path` (`/package.Service/Method`) with one request message; resolves with the response message. */
  call(path: string, request: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      if (this.#session.closed || this.#session.destroyed) {
        reject(this.#unavailable(path));
        return;
      }
      let frame: Buffer;
      try {
        frame = frameMessage(request);
      } catch (e) {
        reject(e);
        return;
      }
      const call = this.#open(path);
      call.req.on('close', () => {
        try {
          resolve(this.#settle(path, call));
        } catch (e) {
          reject(e);
        }
      });
      call.req.end(frame);
    });
  }

  /**
   * Opens a streaming call on `path`. Response messages come as they arrive; the status in the
   * trailers ends them. The call ends when the server sends its status, whether or not this side
   * half-closed (a server may answer before reading everything).
   */
  stream(path: string): ClientStreamCall {
    const incoming = messageQueue();
    if (this.#session.closed || this.#session.destroyed) {
      incoming.fail(this.#unavailable(path));
      return { send: () => Promise.reject(this.#unavailable(path)), end: () => {}, cancel: () => {}, messages: incoming };
    }
    const call = this.#open(path, (m) => {
      incoming.push(m);
      pauseWhileFull(req, incoming);
    });
    const { req } = call;
    const writer = new MessageWriter(req);
    let cancelled = false;
    // The server's END_STREAM: its status is in. Our side may still be open; close it, the call is over.
    req.on('end', () => {
      if (!req.closed) req.close(constants.NGHTTP2_NO_ERROR);
    });
    req.on('close', () => {
      if (cancelled && header(call.trailers ?? call.headers, 'grpc-status') === undefined) {
        incoming.fail(new GrpcStatusError(GrpcCode.CANCELLED, `${path}: cancelled`));
        return;
      }
      try {
        this.#status(path, call);
        call.reader.finish();
        incoming.end();
      } catch (e) {
        incoming.fail(e);
      }
    });
    return {
      messages: incoming,
      send: (message) => {
        if (req.closed || req.writableEnded) return Promise.reject(new GrpcStatusError(GrpcCode.CANCELLED, `${path}: the call is over`));
        return writer.write(message);
      },
      end: () => {
        if (!req.closed && !req.writableEnded) req.end();
      },
      cancel: () => {
        if (req.closed) return;
        cancelled = true;
        req.close(constants.NGHTTP2_CANCEL);
      },
    };
  }

  #unavailable(path: string): GrpcStatusError {
    return new GrpcStatusError(GrpcCode.UNAVAILABLE, `${path}: ${this.#closeReason ?? 'the connection is closed'}`);
  }

  /**
   * Starts a call and records what comes back: headers, trailers, the first failure, the
   * response messages (handed to `onMessage` as they complete when given, else kept in `reader`).
   */
  #open(path: string, onMessage?: (message: Uint8Array) => void): OpenCall {
    const req = this.#session.request({ ':method': 'POST', ':path': path, 'content-type': GRPC_CONTENT_TYPE, te: 'trailers' });
    const call: OpenCall = { req, reader: new MessageReader(), headers: undefined, trailers: undefined, failure: undefined };
    req.on('response', (h) => {
      call.headers = h;
    });
    req.on('trailers', (t) => {
      call.trailers = t;
    });
    req.on('data', (chunk: Buffer) => {
      if (call.failure !== undefined) return;
      try {
        call.reader.push(chunk);
        if (onMessage !== undefined) for (const m of call.reader.take()) onMessage(m);
      } catch (e) {
        call.failure = e;
        req.close(constants.NGHTTP2_CANCEL);
      }
    });
    req.on('error', (e: Error) => {
      call.failure ??= new GrpcStatusError(GrpcCode.UNAVAILABLE, `${path}: ${e.message}`);
    });
    return call;
  }

  #settle(path: string, call: OpenCall): Uint8Array {
    this.#status(path, call);
    const messages = call.reader.finish();
    if (messages.length !== 1 || messages[0] === undefined) {
      throw new GrpcStatusError(GrpcCode.INTERNAL, `${path}: a unary response holds one message, got ${messages.length}`);
    }
    return messages[0];
  }

  /** Throws the call's failure or non-OK status (from the trailers, or the headers of a trailers-only answer). */
  #status(path: string, { failure, headers, trailers, req }: OpenCall): void {
    if (failure !== undefined) throw failure;
    if (headers === undefined) {
      throw new GrpcStatusError(GrpcCode.UNAVAILABLE, `${path}: ${this.#closeReason ?? `the stream was reset (HTTP/2 error ${req.rstCode ?? '?'})`}`);
    }
    // node:http2 gives `:status` as a number, whatever IncomingHttpHeaders says.
    const httpStatus = Number(headers[':status']);
    const status = header(trailers, 'grpc-status') ?? header(headers, 'grpc-status');
    if (status === undefined) {
      throw new GrpcStatusError(
        httpStatus === 200 ? GrpcCode.INTERNAL : GrpcCode.UNKNOWN,
        `${path}: ${httpStatus === 200 ? 'the response carried no grpc-status' : `HTTP status ${httpStatus}`}`,
      );
    }
    const code = Number(status);
    if (code !== GrpcCode.OK) {
      const message = decodeGrpcMessage(header(trailers, 'grpc-message') ?? header(headers, 'grpc-message') ?? '');
      const bin = header(trailers, 'grpc-status-details-bin') ?? header(headers, 'grpc-status-details-bin');
      let details: GrpcStatusError['details'] = [];
      if (bin !== undefined && this.#decodeDetails !== undefined) {
        try {
          details = this.#decodeDetails(Buffer.from(bin, 'base64'));
        } catch {
          // details are extra: the code and message stand on their own
        }
      }
      throw new GrpcStatusError(Number.isInteger(code) ? code : GrpcCode.UNKNOWN, message, details);
    }
  }

  /** Closes the connection after the calls in progress; resolves when it is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#session.closed || this.#session.destroyed) resolve();
      else this.#session.close(resolve);
    });
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.#session.destroy();
  }
}
