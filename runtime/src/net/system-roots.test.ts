import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTestPki } from '../../test/helpers/pki.js';
import { CertificateSet, pemCertificates, readSystemRoots, SYSTEM_CERT_DIRECTORIES, SYSTEM_CERT_FILES } from './system-roots.js';

let dir: string;
/** Three certificates (PEM files) and their subjects. */
let ca: string;
let server: string;
let client: string;
const subject = (pem: string): string => new X509Certificate(pem).subject;
const subjects = (pems: readonly string[]): string[] => pems.map(subject);
const CA = 'CN=kiln test CA';
const SERVER = 'CN=127.0.0.1';
const CLIENT = 'CN=kiln test client';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-roots-'));
  const pki = makeTestPki(mkdtempSync(join(dir, 'pki-')));
  ca = readFileSync(pki.ca, 'utf8');
  server = readFileSync(pki.serverCert, 'utf8');
  client = readFileSync(pki.clientCert, 'utf8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh directory under the test's, with `files` (name → text; a `{ link }` is a symbolic link). */
function tree(files: Record<string, string | { link: string }>): string {
  const d = join(dir, `t${n++}`);
  mkdirSync(d);
  for (const [name, v] of Object.entries(files)) {
    if (typeof v === 'string') writeFileSync(join(d, name), v);
    else symlinkSync(v.link, join(d, name));
  }
  return d;
}

/** Only the given places: nothing of the machine's /etc/ssl is read. */
const none = { env: {}, certFiles: [], certDirectories: [] };

describe("readSystemRoots: Go's loadSystemRoots (crypto/x509/root_unix.go)", () => {
  test("the defaults are Go's on Linux", () => {
    expect(SYSTEM_CERT_FILES).toEqual([
      '/etc/ssl/certs/ca-certificates.crt',
      '/etc/pki/tls/certs/ca-bundle.crt',
      '/etc/ssl/ca-bundle.pem',
      '/etc/pki/tls/cacert.pem',
      '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
      '/etc/ssl/cert.pem',
    ]);
    expect(SYSTEM_CERT_DIRECTORIES).toEqual(['/etc/ssl/certs', '/etc/pki/tls/certs']);
  });

  test('default files: the first that can be read, and no other', () => {
    const d = tree({ 'b.pem': server, 'c.pem': client });
    const roots = readSystemRoots({ ...none, certFiles: [join(d, 'missing.pem'), join(d, 'b.pem'), join(d, 'c.pem')] });
    expect(subjects(roots)).toEqual([SERVER]);
  });

  test('a default file that exists but cannot be read (here a directory) is passed over for the next', () => {
    const d = tree({ 'b.pem': server });
    mkdirSync(join(d, 'a.pem'));
    expect(subjects(readSystemRoots({ ...none, certFiles: [join(d, 'a.pem'), join(d, 'b.pem')] }))).toEqual([SERVER]);
  });

  test('SSL_CERT_FILE is the only file tried; an empty one counts as unset', () => {
    const d = tree({ 'a.pem': ca, 'b.pem': server });
    const certFiles = [join(d, 'a.pem')];
    expect(subjects(readSystemRoots({ ...none, certFiles, env: { SSL_CERT_FILE: join(d, 'b.pem') } }))).toEqual([SERVER]);
    expect(subjects(readSystemRoots({ ...none, certFiles, env: { SSL_CERT_FILE: '' } }))).toEqual([CA]);
  });

  test('an SSL_CERT_FILE that cannot be read adds nothing: the default files are not tried instead (as Go)', () => {
    const d = tree({ 'a.pem': ca, 'c.pem': client });
    const roots = readSystemRoots({ env: { SSL_CERT_FILE: join(d, 'missing.pem') }, certFiles: [join(d, 'a.pem')], certDirectories: [tree({ 'c.pem': client })] });
    expect(subjects(roots)).toEqual([CLIENT]);
  });

  test('directories: every file of each, with the file; links to another directory are read, c_rehash links beside their files add nothing', () => {
    const other = tree({ 'client.crt': client });
    const d = tree({ 'server.pem': server, 'f1a2b3c4.0': { link: 'server.pem' }, 'client.pem': { link: join(other, 'client.crt') }, 'dangling.pem': { link: join(other, 'gone.pem') } });
    mkdirSync(join(d, 'sub'));
    writeFileSync(join(d, 'sub', 'inner.pem'), ca);
    const roots = readSystemRoots({ ...none, certFiles: [tree({ 'bundle.crt': ca }) + '/bundle.crt'], certDirectories: [d] });
    // (sorted by name within a directory; subdirectories are not descended into)
    expect(subjects(roots)).toEqual([CA, CLIENT, SERVER]);
  });

  test('SSL_CERT_DIR: colon-separated, replaces the default directories; empty and missing entries are passed over', () => {
    const a = tree({ 'a.pem': ca });
    const b = tree({ 'b.pem': server });
    const roots = readSystemRoots({ ...none, certDirectories: [tree({ 'c.pem': client })], env: { SSL_CERT_DIR: `${a}::${join(dir, 'missing')}:${b}` } });
    expect(subjects(roots)).toEqual([CA, SERVER]);
  });

  test('a certificate met twice (the bundle and its directory, other line breaks) is kept once', () => {
    const crlf = server.replace(/\n/g, '\r\n');
    const d = tree({ 'server.pem': crlf, 'again.pem': `${server}${ca}` });
    const roots = readSystemRoots({ ...none, certFiles: [tree({ 'bundle.crt': `${ca}\n${server}` }) + '/bundle.crt'], certDirectories: [d, d] });
    expect(subjects(roots)).toEqual([CA, SERVER]);
    // Rewritten from the DER: the same certificate as read.
    expect(new X509Certificate(roots[1] ?? '').fingerprint256).toBe(new X509Certificate(server).fingerprint256);
  });

  test('what is no certificate is passed over, and does not hide the certificates after it', () => {
    const body = server.replace(/-----[^\n]*-----\n?/g, '');
    const garbage = [
      '\x00\x01binary\xff',
      '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n',
      `-----BEGIN TRUSTED CERTIFICATE-----\n${body}-----END TRUSTED CERTIFICATE-----\n`,
      `-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n${body}-----END CERTIFICATE-----\n`,
      '-----BEGIN CERTIFICATE-----\n!!!! not base64 ****\n-----END CERTIFICATE-----\n',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      `-----BEGIN CERTIFICATE-----\n${body.slice(0, 40)}\n-----END CERTIFICATE-----\n`,
    ].join('');
    const d = tree({ 'garbage.pem': garbage, 'mixed.pem': `${garbage}${client}`, 'README': 'see update-ca-certificates(8)\n', 'empty.pem': '' });
    const roots = readSystemRoots({ ...none, certFiles: [tree({ 'bundle.crt': `${garbage}${ca}-----BEGIN CERTIFICATE-----\nunterminated` }) + '/bundle.crt'], certDirectories: [d] });
    expect(subjects(roots)).toEqual([CA, CLIENT]);
  });

  test('the machine: what Go would read here (no environment override)', () => {
    // Whatever this machine holds, each one is a certificate and none is repeated.
    const roots = readSystemRoots({ env: {} });
    const prints = roots.map((p) => new X509Certificate(p).fingerprint256);
    expect(new Set(prints).size).toBe(prints.length);
  });
});

describe('pemCertificates and CertificateSet', () => {
  test('canonical base64 of each DER; an excluded certificate is not added', () => {
    const [b64] = pemCertificates(ca);
    expect(Buffer.from(b64 ?? '', 'base64').equals(new X509Certificate(ca).raw)).toBe(true);
    const set = new CertificateSet(new Set([b64 ?? '']));
    set.addPem(`${ca}${server}${server}`);
    expect(subjects(set.list())).toEqual([SERVER]);
    expect(set.size).toBe(1);
  });
});
