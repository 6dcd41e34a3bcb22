import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { commandConfig, configDigest, configLocation, loadConfig, parseConfig, SYSTEM_CONFIG } from './config.js';
import { locateKeys } from './config-toml.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n';
writeFileSync(join(dir, 'ca.pem'), CERT);
writeFileSync(join(dir, 'client.pem'), CERT.replace('MIIB', 'CLIENT'));
writeFileSync(join(dir, 'client.key'), KEY);
writeFileSync(join(dir, 'not-pem.txt'), 'hello\n');

/** Parses `text` as the file `kiln.toml` in the test dir (relative paths resolve there). */
const parseText = (text: string) => parseConfig(text, join(dir, 'kiln.toml'));
/** The error `text` raises. */
const errorOf = (text: string): unknown => {
  try {
    parseText(text);
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
};

describe('a buildkitd.toml as kiln reads it', () => {
  const buildkitd = `debug = true
root = "/var/lib/buildkit"
insecure-entitlements = [ "network.host" ]

[grpc]
  address = [ "tcp://0.0.0.0:1234" ]

[worker.oci]
  enabled = true
  platforms = [ "linux/amd64" ]
  snapshotter = "auto"
  gc = true
  reservedSpace = "30%"
  maxUsedSpace = "60GB"
  [[worker.oci.gcpolicy]]
    keepBytes = 512000000
    keepDuration = 172800
    filters = [ "type==source.local", "type==exec.cachemount" ]
  [[worker.oci.gcpolicy]]
    all = true
    reservedSpace = "1GB"
    keepDuration = "48h"

[worker.containerd]
  enabled = false

[registry."docker.io"]
  mirrors = ["mirror.local:5000", "harbor.local/proxy.docker.io"]
  ca = ["ca.pem"]
  [[registry."docker.io".keypair]]
    key = "client.key"
    cert = "client.pem"

[registry."mirror.local:5000"]
  http = true

[registry."secure.example"]
  insecure = true
`;

  test('registries: mirrors, http, insecure, CA and keypair files read (relative to the file)', () => {
    const c = parseText(buildkitd);
    expect(c.registry['docker.io']).toEqual({
      mirrors: ['mirror.local:5000', 'harbor.local/proxy.docker.io'],
      ca: [CERT],
      keypairs: [{ cert: CERT.replace('MIIB', 'CLIENT'), key: KEY }],
    });
    expect(c.registry['mirror.local:5000']).toEqual({ plainHttp: true });
    expect(c.registry['secure.example']).toEqual({ insecure: true });
  });

  test('worker.oci GC: gc, sizes (bytes, units, percent), gcpolicy with durations in seconds or Go syntax', () => {
    const c = parseText(buildkitd);
    expect(c.gc).toEqual({
      enabled: true,
      reservedSpace: { percent: 30 },
      maxUsedSpace: { bytes: 60 * 1024 ** 3 },
      policy: [
        { keepBytes: { bytes: 512000000 }, keepDuration: 172800 * 1000, filters: ['type==source.local', 'type==exec.cachemount'] },
        { all: true, reservedSpace: { bytes: 1024 ** 3 }, keepDuration: 48 * 3_600_000 },
      ],
    });
  });

  test('keys kiln does not use are listed, not refused', () => {
    expect(parseText(buildkitd).ignored).toEqual(['debug', 'root', 'insecure-entitlements', 'grpc', 'worker.oci.enabled', 'worker.oci.platforms', 'worker.oci.snapshotter', 'worker.containerd']);
  });

  // `htpp = true` was listed like buildkitd's own keys: nothing said it was a typo of http.
  test('a near miss of a key kiln uses is named with that key, at each level', () => {
    const c = parseText('wroker = 1\n[registry."r.example"]\nhtpp = true\nmirror = ["m.example"]\n[worker.oci]\ngckeepstorge = "1GB"\nenabled = true\n[[worker.oci.gcpolicy]]\nkeepDurations = "1h"\n');
    expect(c.ignored).toEqual(['wroker', 'registry."r.example".htpp', 'registry."r.example".mirror', 'worker.oci.gckeepstorge', 'worker.oci.enabled', 'worker.oci.gcpolicy.keepDurations']);
    expect(c.near).toEqual({ wroker: 'worker', 'registry."r.example".htpp': 'http', 'registry."r.example".mirror': 'mirrors', 'worker.oci.gckeepstorge': 'gckeepstorage', 'worker.oci.gcpolicy.keepDurations': 'keepDuration' });
    expect(parseText(buildkitd).near).toEqual({});
    // typo tour 4: a URL as the registry key matches no registry (in buildkitd too): listed, with the key to write
    const url = parseText('[registry."https://myreg:5000"]\nhttp = true\n');
    expect(url.registry).toEqual({});
    expect(url.ignored).toEqual(['registry."https://myreg:5000"']);
    expect(url.near).toEqual({ 'registry."https://myreg:5000"': 'registry."myreg:5000"' });
    const file = join(dir, 'typo.toml');
    writeFileSync(file, '[registry."r.example"]\nhtpp = true\n');
    let err = '';
    commandConfig({ stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: (s: string | Uint8Array) => ((err += String(s)), true) }, env: { KILN_CONFIG: file } });
    expect(err).toBe(`WARNING: ${file}: ignoring keys kiln does not use: registry."r.example".htpp (did you mean http?)\n`);
  });

  test('one warning line per command stderr, listing them', () => {
    const file = join(dir, 'buildkitd.toml');
    writeFileSync(file, buildkitd);
    let err = '';
    const io = { stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: (s: string | Uint8Array) => ((err += String(s)), true) }, env: { KILN_CONFIG: file } };
    const c = commandConfig(io);
    commandConfig(io);
    expect(c.path).toBe(file);
    expect(err).toBe(`WARNING: ${file}: ignoring keys kiln does not use: debug, root, insecure-entitlements, grpc, worker.oci.enabled, worker.oci.platforms, worker.oci.snapshotter, worker.containerd\n`);
  });
});

describe('bad values of keys kiln uses: KLN0941 naming file:line:col and the key', () => {
  test.for([
    ['[registry."r.example"]\n  http = "yes"\n', 2, 3, 'registry."r.example".http: expected true or false, got string "yes"', 'http = true'],
    ['[registry."r.example"]\nmirrors = "m.local"\n', 2, 1, 'registry."r.example".mirrors: expected an array of strings', 'mirrors = ["…"]'],
    ['[registry."r.example"]\nmirrors = ["bad mirror"]\n', 2, 1, 'invalid mirror "bad mirror"', 'host[:port]'],
    ['registry."r.example".insecure = 1\n', 1, 1, 'registry."r.example".insecure: expected true or false, got number 1', 'insecure = true'],
    ['[worker.oci]\ngckeepstorage = "lots"\n', 2, 1, 'worker.oci.gckeepstorage: invalid size "lots"', '"10%"'],
    ['[[worker.oci.gcpolicy]]\nall = true\n[[worker.oci.gcpolicy]]\n  keepDuration = "2 days"\n', 4, 3, 'worker.oci.gcpolicy.keepDuration: invalid duration "2 days"', '"48h"'],
    ['[[worker.oci.gcpolicy]]\nfilters = ["type==sources"]\n', 2, 1, 'worker.oci.gcpolicy.filters: invalid filter "type==sources": unknown record type', 'exec.cachemount'],
    ['[worker.oci]\ngcpolicy = { all = true }\n', 2, 1, 'worker.oci.gcpolicy: expected an array of tables', '[[worker.oci.gcpolicy]]'],
    ['[[registry."r.example".keypair]]\nkey = "client.key"\n', 1, 1, 'registry."r.example".keypair.cert: missing', 'cert = "/path/cert.pem"'],
  ] as const)('%s', ([text, line, col, message, hint]) => {
    const e = errorOf(text);
    expect(e).toMatchObject({ code: 'KLN0941', message: expect.stringContaining(`${join(dir, 'kiln.toml')}:${line}:${col}: `), hint: expect.stringContaining(hint) });
    expect((e as Error).message).toContain(message);
  });

  test('files a key names: missing or not PEM is KLN0942 (key material never quoted)', () => {
    expect(errorOf('[registry."r"]\nca = ["nope.pem"]\n')).toMatchObject({ code: 'KLN0942', message: expect.stringMatching(/kiln\.toml:2:1: registry\.r\.ca: cannot read .*nope\.pem/) });
    expect(errorOf('[registry."r"]\nca = ["not-pem.txt"]\n')).toMatchObject({ code: 'KLN0942', message: expect.stringContaining('not-pem.txt holds no PEM certificate') });
    const e = errorOf('[[registry."r".keypair]]\nkey = "ca.pem"\ncert = "client.pem"\n');
    expect(e).toMatchObject({ code: 'KLN0942', message: expect.stringMatching(/:2:1: registry\.r\.keypair\.key: .*ca\.pem holds no PEM private key/) });
    expect((e as Error).message).not.toContain('BEGIN');
  });

  test('key material written in the file instead of a path is refused without quoting it', () => {
    const secret = 'MHcCAQEEIKilnTestSecretKeyMaterialNeverShown0123456789';
    const pem = `-----BEGIN EC PRIVATE KEY-----\n${secret}\n-----END EC PRIVATE KEY-----`;
    for (const [text, key] of [
      [`[[registry."r".keypair]]\ncert = "client.pem"\nkey = """${pem}"""\n`, 'keypair.key'],
      [`[[registry."r".keypair]]\ncert = "client.pem"\nkey = "${secret}"\n`, 'keypair.key'],
      [`[[registry."r".keypair]]\ncert = ${JSON.stringify(pem)}\nkey = "client.key"\n`, 'keypair.cert'],
      [`[registry."r"]\nca = [${JSON.stringify(pem)}]\n`, 'ca'],
    ] as const) {
      const e = errorOf(text) as Error & { hint?: string };
      expect(e).toMatchObject({ message: expect.stringContaining(`registry.r.${key}: `) });
      expect(`${e.message}\n${e.hint}\n${e.stack}`).not.toContain(secret);
    }
  });

  test('user:password@ in a mirror address is dropped (as BuildKit\'s url.Parse does), never repeated in an error', () => {
    expect(parseText('[registry."docker.io"]\nmirrors = ["https://bob:hunter2secret@mirror.local:5000/proxy"]\n').registry['docker.io']?.mirrors).toEqual(['https://mirror.local:5000/proxy']);
    const e = errorOf('[registry."docker.io"]\nmirrors = ["https://bob:hunter2secret@mirror local"]\n') as Error & { hint?: string };
    expect(e).toMatchObject({ code: 'KLN0941', message: expect.stringContaining('registry."docker.io".mirrors: invalid mirror') });
    expect(`${e.message}\n${e.hint}`).not.toContain('hunter2secret');
    // Not a host: a scheme alone, or a path where the host goes.
    expect(errorOf('[registry."docker.io"]\nmirrors = ["https://"]\n')).toMatchObject({ code: 'KLN0941' });
    expect(errorOf('[registry."docker.io"]\nmirrors = ["/proxy"]\n')).toMatchObject({ code: 'KLN0941' });
  });

  test('not TOML: KLN0940 with the line and column', () => {
    expect(errorOf('[registry."r"]\nhttp = tru\n')).toMatchObject({ code: 'KLN0940', message: expect.stringMatching(/kiln\.toml:2:\d+: not valid TOML: /) });
  });
});

describe('tlsconfigdir (docker certs.d layout)', () => {
  test('*.crt are CAs, NAME.cert + NAME.key a keypair; a missing directory is skipped', () => {
    const certs = join(dir, 'certs.d', 'r.example');
    mkdirSync(certs, { recursive: true });
    writeFileSync(join(certs, 'ca.crt'), CERT);
    writeFileSync(join(certs, 'client.cert'), CERT.replace('MIIB', 'CLIENT'));
    writeFileSync(join(certs, 'client.key'), KEY);
    const c = parseText(`[registry."r.example"]\ntlsconfigdir = ["certs.d/r.example", "/nonexistent/certs"]\n`);
    expect(c.registry['r.example']).toEqual({ ca: [CERT], keypairs: [{ cert: CERT.replace('MIIB', 'CLIENT'), key: KEY }] });
  });
});

describe('which file', () => {
  const io = (env: Record<string, string>, cwd = dir) => ({ stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: () => true }, env, cwd });

  test('KILN_CONFIG (relative to the caller) must exist; the default may not', () => {
    expect(configLocation(io({ KILN_CONFIG: 'sub/k.toml' }))).toEqual({ path: join(dir, 'sub/k.toml'), explicit: true });
    if (process.getuid?.() === 0) expect(configLocation(io({}))).toEqual({ path: SYSTEM_CONFIG, explicit: false });
    expect(() => loadConfig({ path: join(dir, 'none.toml'), explicit: true })).toThrow(expect.objectContaining({ code: 'KLN0940' }));
    expect(loadConfig({ path: join(dir, 'none.toml'), explicit: false })).toMatchObject({ path: undefined, registry: {}, gc: undefined });
  });

  test('the digest a daemon compares: changes with the file, "" for no default file, "missing" for a named one', () => {
    const f = join(dir, 'd.toml');
    writeFileSync(f, '[registry."a"]\nhttp = true\n');
    const d1 = configDigest({ path: f, explicit: true });
    expect(d1).toMatch(/^[a-f0-9]{64}$/);
    expect(loadConfig({ path: f, explicit: true }).digest).toBe(d1);
    writeFileSync(f, '[registry."a"]\nhttp = false\n');
    expect(configDigest({ path: f, explicit: true })).not.toBe(d1);
    expect(configDigest({ path: join(dir, 'none.toml'), explicit: false })).toBe('');
    expect(configDigest({ path: join(dir, 'none.toml'), explicit: true })).toBe('missing');
  });
});

describe('the digest a daemon compares covers the files the config names', () => {
  const CA2 = CERT.replace('MIIB', 'MIIBOTHERCA');
  const setup = (name: string, ca: string) => {
    const d = join(dir, name);
    mkdirSync(join(d, 'certs.d'), { recursive: true });
    writeFileSync(join(d, 'kiln.toml'), '[registry."r"]\nca = ["ca.pem"]\ntlsconfigdir = ["certs.d"]\n[[registry."r".keypair]]\ncert = "c.pem"\nkey = "c.key"\n');
    writeFileSync(join(d, 'ca.pem'), ca);
    writeFileSync(join(d, 'c.pem'), CERT);
    writeFileSync(join(d, 'c.key'), KEY);
    return { path: join(d, 'kiln.toml'), explicit: true, dir: d };
  };

  test('the same text naming other files (relative paths, another directory): another digest', () => {
    const a = setup('same-a', CERT);
    const b = setup('same-b', CA2);
    expect(configDigest(b)).not.toBe(configDigest(a));
    expect(configDigest(setup('same-c', CERT))).toBe(configDigest(a));
  });

  test('a CA, key or certs.d directory edited since (the config file untouched): another digest, and the new contents read', () => {
    const a = setup('edited', CERT);
    const d0 = configDigest(a);
    expect(loadConfig(a).digest).toBe(d0);
    writeFileSync(join(a.dir, 'ca.pem'), CA2);
    const d1 = configDigest(a);
    expect(d1).not.toBe(d0);
    expect(loadConfig(a).registry['r']?.ca).toEqual([CA2]);
    writeFileSync(join(a.dir, 'c.key'), KEY.replace('MHc', 'MHcROTATED'));
    const d2 = configDigest(a);
    expect(d2).not.toBe(d1);
    expect(loadConfig(a).registry['r']?.keypairs?.[0]?.key).toContain('MHcROTATED');
    writeFileSync(join(a.dir, 'certs.d', 'extra.crt'), CERT);
    expect(configDigest(a)).not.toBe(d2);
    expect(loadConfig(a).registry['r']?.ca).toEqual([CA2, CERT]);
  });

  test('a config that no longer loads: a digest no daemon has', () => {
    const a = setup('broken', CERT);
    rmSync(join(a.dir, 'ca.pem'));
    expect(configDigest(a)).toBe('invalid');
  });
});

describe('locateKeys', () => {
  test('headers, arrays of tables, dotted and quoted keys, comments and multi-line arrays', () => {
    const text = '# c\n[a."b.c"] # t\nx = 1\n[[p]]\ny = [\n  "z = 1",\n]\n[[p]]\n  y = 2\n q."r".s = 3\n';
    const at = locateKeys(text);
    expect(at.get(JSON.stringify(['a', 'b.c']))).toEqual({ line: 2, col: 1 });
    expect(at.get(JSON.stringify(['a', 'b.c', 'x']))).toEqual({ line: 3, col: 1 });
    expect(at.get(JSON.stringify(['p', 0, 'y']))).toEqual({ line: 5, col: 1 });
    expect(at.get(JSON.stringify(['p', 1, 'y']))).toEqual({ line: 9, col: 3 });
    expect(at.get(JSON.stringify(['p', 1, 'q', 'r', 's']))).toEqual({ line: 10, col: 2 });
    expect([...at.keys()].some((k) => k.includes('"z'))).toBe(false);
  });
});
