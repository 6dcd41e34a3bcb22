import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Files of a throw-away PKI: a CA, a server certificate for 127.0.0.1 and a client certificate. */
export interface TestPki {
  /** The CA certificate (PEM path) that signed both. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/**
 * Makes a CA and two certificates it signs with `openssl` (P-256 keys, valid two days) in `dir`:
 * the server's names `127.0.0.1` (also as `::ffff:127.0.0.1`, a name that is not localhost), `::1` and `localhost`; the client's is for client auth.
 */
export function makeTestPki(dir: string): TestPki {
  const openssl = (...args: string[]): void => {
    try {
      execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      if ((e as { code?: unknown }).code === 'ENOENT') throw new Error('openssl not found: install it with `apt-get install -y openssl`');
      throw e;
    }
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=kiln test CA');
  const sign = (name: string, subject: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,IP:::1,IP:::ffff:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  sign('client', '/CN=kiln test client', 'extendedKeyUsage=clientAuth');
  return {
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  };
}
