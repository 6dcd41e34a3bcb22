/** What went wrong in a TLS handshake, from the error fetch threw. */
export interface TlsProblem {
  readonly kind: 'untrusted' | 'plain-http' | 'handshake';
  /** OpenSSL's/Node's code and message: `SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain`. */
  readonly detail: string;
}

const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME/;

/** Classifies a fetch failure as a TLS problem (fetch wraps the socket error as its cause), else undefined. */
export function tlsProblem(e: unknown): TlsProblem | undefined {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    // OpenSSL's text ("80FC…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/…") → its reason.
    const detail = `${code}: ${/SSL routines:[^:]*:([^:]+)/.exec(c.message)?.[1] ?? c.message}`;
    if (code.startsWith('ERR_SSL_WRONG_VERSION') || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long|http request/i.test(c.message)) return { kind: 'plain-http', detail };
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_HANDSHAKE')) return UNTRUSTED.test(code) && !code.includes('ALERT') ? { kind: 'untrusted', detail } : { kind: 'handshake', detail };
    if (UNTRUSTED.test(code)) return { kind: 'untrusted', detail };
  }
  return undefined;
}
