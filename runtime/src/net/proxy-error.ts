/**
 * A request kiln sent through an HTTP(S) proxy failed at the proxy (it refused the connection,
 * does not resolve, wants credentials, would not open a tunnel), or a proxy variable names no
 * proxy. The message names the proxy (scheme, host and port: never its user or password) and
 * the variable it came from; the hint says what to change.
 */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly code = 'KLN0880';
  readonly hint: string;

  constructor(message: string, opts: { hint: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.hint = opts.hint;
  }
}
