import { readdirSync, readFileSync, readlinkSync, type Dirent } from 'node:fs';

/**
 * The CA bundles Go's crypto/x509 looks for on Linux (certFiles in root_linux.go), in its order:
 * the first one that can be read is the system's bundle, the others are not read.
 */
export const SYSTEM_CERT_FILES: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Gentoo, Arch
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL 6
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine
];

/** The directories Go's crypto/x509 reads on Linux (certDirectories in root_linux.go): every file of each. */
export const SYSTEM_CERT_DIRECTORIES: readonly string[] = ['/etc/ssl/certs', '/etc/pki/tls/certs'];

/** Where {@link readSystemRoots} looks; the defaults are Go's. Tests give their own. */
export interface SystemRootsOptions {
  /** Read for SSL_CERT_FILE and SSL_CERT_DIR (default: this process's environment). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  readonly certFiles?: readonly string[] | undefined;
  readonly certDirectories?: readonly string[] | undefined;
}

/**
 * The operating system's trusted CA certificates, read as Go's x509.SystemCertPool reads them on
 * Linux (loadSystemRoots, crypto/x509/root_unix.go), which is what buildkitd and the registry
 * clients trust:
 * - `SSL_CERT_FILE`, when set and not empty, is the only bundle tried (one that cannot be read
 *   adds nothing: Go falls back to no other file); else the first of {@link SYSTEM_CERT_FILES}
 *   that can be read;
 * - plus every file of each directory in `SSL_CERT_DIR` (colon-separated, as OpenSSL's), when set
 *   and not empty, else of each of {@link SYSTEM_CERT_DIRECTORIES}; a symbolic link to a name in
 *   its own directory (c_rehash's `HASH.0` links) is skipped, as its target is read anyway.
 *
 * Missing or unreadable files and directories are passed over, as are files without certificates
 * and PEM blocks that hold no certificate (Go's AppendCertsFromPEM). Each certificate appears once
 * (a distribution's bundle repeats its directory's files), as PEM rewritten from its DER bytes.
 * Synchronous and uncached: read once per process by the trust module.
 */
export function readSystemRoots(opts: SystemRootsOptions = {}): string[] {
  const found = new CertificateSet();
  collectSystemRoots(found, opts);
  return found.list();
}

/** {@link readSystemRoots} into `into` (whose exclusions apply). */
export function collectSystemRoots(into: CertificateSet, opts: SystemRootsOptions = {}): void {
  const env = opts.env ?? process.env;
  const file = env['SSL_CERT_FILE'];
  for (const f of file !== undefined && file !== '' ? [file] : (opts.certFiles ?? SYSTEM_CERT_FILES)) {
    const text = readText(f);
    if (text === undefined) continue;
    into.addPem(text);
    break;
  }
  const dirs = env['SSL_CERT_DIR'];
  for (const dir of dirs !== undefined && dirs !== '' ? dirs.split(':') : (opts.certDirectories ?? SYSTEM_CERT_DIRECTORIES)) {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    // (sorted as Go's os.ReadDir, so the first of two copies is always the same one)
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      // Only files and links to them: a FIFO would block the read (Go reads it, and waits).
      if (!e.isFile() && !e.isSymbolicLink()) continue;
      const path = `${dir}/${e.name}`;
      if (e.isSymbolicLink() && isSameDirLink(path)) continue;
      const text = readText(path);
      if (text !== undefined) into.addPem(text);
    }
  }
}

/**
 * Certificates kept once each, by their DER bytes, in the order first met; those of `exclude`
 * (canonical base64 of their DER, as {@link pemCertificates} gives) are never added.
 */
export class CertificateSet {
  readonly #pems: string[] = [];
  readonly #seen = new Set<string>();
  readonly #exclude: ReadonlySet<string>;

  constructor(exclude: ReadonlySet<string> = new Set()) {
    this.#exclude = exclude;
  }

  /** Adds the DER certificate given as canonical base64 (false: already there, or excluded). */
  addBase64(base64: string): boolean {
    if (this.#seen.has(base64) || this.#exclude.has(base64)) return false;
    this.#seen.add(base64);
    this.#pems.push(`-----BEGIN CERTIFICATE-----\n${base64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`);
    return true;
  }

  /** Adds every certificate of a PEM text (see {@link pemCertificates}). */
  addPem(text: string): void {
    for (const b64 of pemCertificates(text)) this.addBase64(b64);
  }

  get size(): number {
    return this.#pems.length;
  }

  /** The certificates as PEM, one block each. */
  list(): string[] {
    return [...this.#pems];
  }
}

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * The DER certificates of a PEM text, each as canonical base64: the `CERTIFICATE` blocks (not
 * `TRUSTED CERTIFICATE` nor keys), without headers (Go's AppendCertsFromPEM skips a block with
 * headers), whose body is base64 of one DER SEQUENCE. Anything else is passed over, as Go passes
 * over what does not parse; OpenSSL drops a SEQUENCE that is no certificate later, as quietly.
 */
export function pemCertificates(text: string): string[] {
  const out: string[] = [];
  for (let at = text.indexOf(BEGIN); at >= 0; at = text.indexOf(BEGIN, at)) {
    const start = at + BEGIN.length;
    const end = text.indexOf(END, start);
    if (end < 0) break;
    at = end + END.length;
    const body = text.slice(start, end);
    if (!/^[A-Za-z0-9+/=\s]*$/.test(body)) continue;
    const der = Buffer.from(body, 'base64');
    if (!isDerSequence(der)) continue;
    out.push(der.toString('base64'));
  }
  return out;
}

/** Whether `b` is exactly one DER SEQUENCE (its definite length covering the rest). */
function isDerSequence(b: Buffer): boolean {
  if (b.length < 2 || b[0] !== 0x30) return false;
  const first = b[1] ?? 0;
  if (first < 0x80) return 2 + first === b.length;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || b.length < 2 + n) return false;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (b[2 + i] ?? 0);
  return 2 + n + len === b.length;
}

function readText(path: string): string | undefined {
  try {
    // (latin1: any bytes read; PEM is ASCII)
    return readFileSync(path, 'latin1');
  } catch {
    return undefined;
  }
}

/** Go's isSameDirSymlink: a link whose target has no slash names a file of the same directory. */
function isSameDirLink(path: string): boolean {
  try {
    return !readlinkSync(path).includes('/');
  } catch {
    return false;
  }
}
