import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type RequestOptions, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, rootCertificates, type ConnectionOptions, type SecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTestPki, type TestPki } from '../../test/helpers/pki.js';
import { readAddedRoots, secureContextWith, trustedFetch, trustedSecureContext } from './trust.js';

let dir: string;
let pki: TestPki;
let ca: string;
let https: HttpsServer;
let mtls: HttpsServer;
let http: HttpServer;
const port = (s: HttpServer | HttpsServer): number => (s.address() as AddressInfo).port;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-trust-'));
  pki = makeTestPki(dir);
  ca = readFileSync(pki.ca, 'utf8');
  const cert = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) };
  https = createHttpsServer(cert, (_req, res) => res.end('over https'));
  mtls = createHttpsServer({ ...cert, ca, requestCert: true, rejectUnauthorized: true }, (_req, res) => res.end('with a client certificate'));
  http = createHttpServer((_req, res) => res.end('over http'));
  await Promise.all([https, mtls, http].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
});
afterAll(async () => {
  await Promise.all([https, mtls, http].map((s) => new Promise<void>((r) => (s.closeAllConnections(), s.close(() => r())))));
  rmSync(dir, { recursive: true, force: true });
});

/** A TLS handshake with `server` on 127.0.0.1 given `ctx`: 'ok' or the error's code. */
function handshake(server: HttpsServer, secureContext: SecureContext): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port: port(server), secureContext }, () => {
      s.destroy();
      resolve('ok');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** Only the given places: nothing of the machine's /etc/ssl is read. */
const only = (env: Record<string, string>) => ({ env, certFiles: [], certDirectories: [] });
const subject = (pem: string): string => new X509Certificate(pem).subject;

describe('readAddedRoots: system roots and NODE_EXTRA_CA_CERTS beyond Node\'s bundled ones', () => {
  test('both sources, each certificate once; those Node bundles are left out (every context has them)', () => {
    const bundled = rootCertificates[0] ?? '';
    const sys = join(dir, 'system.pem');
    const extra = join(dir, 'extra.pem');
    writeFileSync(sys, `${bundled}\n${ca}`);
    writeFileSync(extra, `${ca}${readFileSync(pki.clientCert, 'utf8')}`);
    expect(readAddedRoots(only({ SSL_CERT_FILE: sys, NODE_EXTRA_CA_CERTS: extra })).map(subject)).toEqual(['CN=kiln test CA', 'CN=kiln test client']);
    // A NODE_EXTRA_CA_CERTS that cannot be read adds nothing (Node warned at startup).
    expect(readAddedRoots(only({ SSL_CERT_FILE: sys, NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem') })).map(subject)).toEqual(['CN=kiln test CA']);
    expect(readAddedRoots(only({ SSL_CERT_FILE: extra, NODE_EXTRA_CA_CERTS: '' }))).toHaveLength(2);
  });
});

describe('secureContextWith: one TLS context for every connection', () => {
  test("an added CA (the system's) is trusted; without it the server's certificate is not", async () => {
    expect(await handshake(https, secureContextWith([]))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(await handshake(https, secureContextWith(readAddedRoots(only({ SSL_CERT_FILE: pki.ca }))))).toBe('ok');
    // The same through a directory (SSL_CERT_DIR), among files that are no certificates.
    const certs = mkdtempSync(join(dir, 'certs-'));
    writeFileSync(join(certs, 'corp.crt'), ca);
    writeFileSync(join(certs, 'README'), 'not a certificate\n');
    expect(await handshake(https, secureContextWith(readAddedRoots(only({ SSL_CERT_DIR: certs }))))).toBe('ok');
  });

  test("a host's ca adds to them, caOnly trusts it alone, keypairs answer a server that wants a client certificate", async () => {
    expect(await handshake(https, secureContextWith([], { ca: [ca] }))).toBe('ok');
    expect(await handshake(https, secureContextWith([], { ca: [ca], caOnly: true }))).toBe('ok');
    const other = readFileSync(pki.clientCert, 'utf8');
    // caOnly: the added (system) CAs are not trusted either.
    expect(await handshake(https, secureContextWith([ca], { ca: [other], caOnly: true }))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(await handshake(https, secureContextWith([ca], { ca: [other] }))).toBe('ok');
    const keypairs = [{ cert: readFileSync(pki.clientCert, 'utf8'), key: readFileSync(pki.clientKey, 'utf8') }];
    const withCert = await fetchOver(mtls, secureContextWith([ca], { keypairs }));
    expect(withCert).toBe('with a client certificate');
  });

  test('a key that does not match its certificate throws (tlsConnectOptions then leaves it to each connection)', () => {
    expect(() => secureContextWith([], { keypairs: [{ cert: readFileSync(pki.clientCert, 'utf8'), key: readFileSync(pki.serverKey, 'utf8') }] })).toThrow(/key values mismatch/);
  });
});

/** GET / of `server` over node:https with `secureContext`: the body, or the error's code. */
async function fetchOver(server: HttpsServer, secureContext: SecureContext): Promise<string> {
  const { request } = await import('node:https');
  // (https.request takes tls.connect's options, as documented; @types/node lists only some)
  const options: RequestOptions & Pick<ConnectionOptions, 'secureContext'> = { host: '127.0.0.1', port: port(server), path: '/', secureContext, agent: false };
  return new Promise((resolve) => {
    const req = request(options, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });
}

describe('trustedSecureContext and trustedFetch', () => {
  test('one context per settings object, one for none', () => {
    const settings = { ca: [ca] };
    expect(trustedSecureContext()).toBe(trustedSecureContext());
    expect(trustedSecureContext({ insecure: true })).toBe(trustedSecureContext());
    expect(trustedSecureContext(settings)).toBe(trustedSecureContext(settings));
    expect(trustedSecureContext(settings)).not.toBe(trustedSecureContext({ ca: [ca] }));
  });

  test("trustedFetch: Node's fetch, plain http as before, https checked against kiln's CAs (this machine's: not the test CA)", async () => {
    expect(await (await trustedFetch(`http://127.0.0.1:${port(http)}/`)).text()).toBe('over http');
    const e = await trustedFetch(`https://127.0.0.1:${port(https)}/`).catch((x: unknown) => x);
    expect(e).toMatchObject({ message: 'fetch failed', cause: { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } });
    // A redirect from http to https is followed with the same trust.
    const redirect = createHttpServer((_req, res) => res.writeHead(302, { location: `https://127.0.0.1:${port(https)}/` }).end());
    await new Promise<void>((r) => redirect.listen(0, '127.0.0.1', r));
    try {
      const r = await trustedFetch(`http://127.0.0.1:${port(redirect)}/`).catch((x: unknown) => x);
      expect(r).toMatchObject({ message: 'fetch failed', cause: { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } });
    } finally {
      await new Promise<void>((r) => redirect.close(() => r()));
    }
  });
});
