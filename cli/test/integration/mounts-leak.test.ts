/**
 * The secret-leak search: one build uses secrets in every supported way (file mount at the default
 * path, at a target, as an env var, `--secret src=`/`env=`/`type=file`/`type=env`, in a step with
 * a cache mount, and a multi-stage COPY of a derived file), exported as OCI and docker tarballs,
 * a local directory and into the image store, again with a mode=max provenance attestation, a
 * metadata file and local and inline cache exports; a failing RUN with secrets runs in-process
 * and through `kiln daemon`; a `--build-context` URL carries a password. Then every exported byte
 * (layers decompressed), the whole kiln root (SQLite db and history records included), the
 * executor's runtime dir, the CLI's output with `--progress=plain` and `rawjson`, the error
 * reports, `kiln history inspect` and `logs`, the daemon's log and the LLB (`kiln llb`) are
 * searched for the secret values and the password. Zero hits allowed.
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { startRegistry } from '../../../runtime/test/helpers/registry.js';
import { kilnBin, type KilnSandbox, rawJsonLogs, runKiln, startDaemon, token, useSandbox, writeTree } from './build-helpers.js';

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

/** Every regular file under `dir` (no symlinks followed). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The bytes of a file and, when it is gzip or zstd compressed (a layer), its decompressed bytes. */
function contents(file: string): Buffer[] {
  const raw = readFileSync(file);
  const out = [raw];
  if (raw[0] === 0x1f && raw[1] === 0x8b) out.push(gunzipSync(raw));
  else if (raw.length >= 4 && raw.readUInt32LE(0) === 0xfd2fb528) out.push(execFileSync('zstd', ['-dc', file], { maxBuffer: 1 << 30 }));
  return out;
}

/** Files under `dirs` whose raw or decompressed bytes contain one of `needles`. */
function hits(dirs: readonly string[], needles: readonly string[]): string[] {
  const found: string[] = [];
  for (const d of dirs) {
    const files = statSync(d).isDirectory() ? walk(d) : [d];
    for (const f of files) {
      if (contents(f).some((buf) => needles.some((n) => buf.includes(n)))) found.push(f);
    }
  }
  return found;
}

describe('secret-leak search', { timeout: 180_000 }, () => {
  test('a secret used every supported way is in no exported byte, the kiln root, the output, an error report or the LLB', async () => {
    const t = token();
    // Distinctive values; the hex form of each is searched too.
    const secret = {
      s1: `s1-${randomBytes(16).toString('hex')}`,
      s2: `s2-${randomBytes(16).toString('hex')}`,
      s3: `s3-${randomBytes(16).toString('hex')}`,
      s4: `s4-${randomBytes(16).toString('hex')}`,
    };
    // The password of a --build-context URL: BuildKit's materials redact it, kiln redacts it everywhere.
    const urlPassword = `url-${randomBytes(16).toString('hex')}`;
    const needles = [...Object.values(secret), urlPassword].flatMap((v) => [v, Buffer.from(v).toString('hex'), Buffer.from(v).toString('base64')]);
    const ctx = join(sb.dir, `leak-${t}`);
    await writeTree(sb.dir, { [`leak-${t}.s4`]: secret.s4 });
    await writeTree(ctx, {
      'app.txt': 'app\n',
      // A secret file inside the build context (not COPYed): the context transfer must not pick it up.
      's1.txt': secret.s1,
      Dockerfile: [
        '# syntax=docker/dockerfile:1',
        'ARG BASE=busybox',
        'FROM $BASE AS builder',
        `RUN --mount=type=secret,id=s1 sh -c 'sha256sum /run/secrets/s1 | cut -c1-64 > /derived1' # ${t}`,
        'RUN --mount=type=secret,id=s2,target=/root/.token,mode=0444 sh -c \'wc -c < /root/.token > /derived2\'',
        'RUN --mount=type=secret,id=s3,env=TOKEN sh -c \'printf %s "$TOKEN" | md5sum | cut -c1-32 > /derived3; echo "token length ${#TOKEN}"\'',
        'RUN --mount=type=cache,target=/cache --mount=type=secret,id=s4 sh -c \'sha1sum < /run/secrets/s4 | cut -c1-40 > /cache/h; cp /cache/h /derived4\'',
        'FROM $BASE',
        'COPY app.txt /app.txt',
        'COPY --from=builder /derived1 /derived2 /derived3 /derived4 /out/',
        'RUN --mount=type=secret,id=s1,env=S1,required=true --mount=type=secret,id=s2 sh -c \'test -n "$S1" && test -s /run/secrets/s2 && echo ok > /out/ok\'',
        'ENV PLAIN=value',
        'CMD ["cat", "/out/derived1"]',
        '',
      ].join('\n'),
    });
    const secretFlags = [
      '--secret', `id=s1,src=${join(ctx, 's1.txt')}`,
      '--secret', 'id=s2,env=LEAK_S2',
      '--secret', 'type=env,id=s3,env=LEAK_S3',
      '--secret', `type=file,id=s4,src=${join(sb.dir, `leak-${t}.s4`)}`,
    ];
    const env = { LEAK_S2: secret.s2, LEAK_S3: secret.s3 };
    const exports = join(sb.dir, `leak-exports-${t}`);
    await mkdir(exports);
    const oci = join(exports, 'image.oci.tar');
    const docker = join(exports, 'image.docker.tar');
    const local = join(exports, 'local');
    const plain = await runKiln(
      sb,
      ['build', ctx, '--root', sb.root, '--progress', 'plain', ...secretFlags,
        '--output', `type=oci,dest=${oci},name=leak:${t}`,
        '--output', `type=docker,dest=${docker},name=leak:${t}`,
        '--output', `type=local,dest=${local}`,
        '--output', `type=image,name=leak-store:${t}`],
      { env },
    );
    expect(plain.code, plain.stderr).toBe(0);
    // The build really used each secret: the derived files hold their digests (not the values).
    const sha = (alg: string, v: string): string => createHash(alg).update(v).digest('hex');
    expect(await readFile(join(local, 'out/derived1'), 'utf8')).toBe(`${sha('sha256', secret.s1)}\n`);
    expect((await readFile(join(local, 'out/derived2'), 'utf8')).trim()).toBe(String(secret.s2.length));
    expect(await readFile(join(local, 'out/derived3'), 'utf8')).toBe(`${sha('md5', secret.s3)}\n`);
    expect(await readFile(join(local, 'out/derived4'), 'utf8')).toBe(`${sha('sha1', secret.s4)}\n`);
    expect(await readFile(join(local, 'out/ok'), 'utf8')).toBe('ok\n');
    expect(plain.stderr).toContain(`token length ${secret.s3.length}`);

    // The same build with rawjson progress and no cache (every step runs and logs again), with a
    // mode=max provenance attestation (the LLB as steps, secret ids), a metadata file and cache exports.
    const prov = join(exports, 'prov.oci.tar');
    const raw = await runKiln(
      sb,
      ['build', ctx, '--root', sb.root, '--progress', 'rawjson', '--no-cache', ...secretFlags,
        '--provenance', 'mode=max', '--output', `type=oci,dest=${prov},name=leak-prov:${t}`, '--metadata-file', join(exports, 'metadata.json'),
        '--cache-to', `type=local,dest=${join(exports, 'cache')},mode=max`, '--cache-to', 'type=inline'],
      { env },
    );
    expect(raw.code, raw.stderr).toBe(0);
    expect(existsSync(join(exports, 'cache/index.json'))).toBe(true);
    expect([...rawJsonLogs(raw.stderr).values()].join('')).toContain(`token length ${secret.s3.length}`);

    // A failing RUN with secrets as a file and an env var: the error report names the command, not the values.
    const failCtx = join(sb.dir, `leak-fail-${t}`);
    await writeTree(failCtx, {
      Dockerfile: `FROM busybox\nRUN --mount=type=secret,id=s3,env=TOKEN --mount=type=secret,id=s1 sh -c 'echo failing-${t} >&2; exit 3'\n`,
    });
    const failed = await runKiln(sb, ['build', failCtx, '--root', sb.root, '--progress', 'plain', ...secretFlags], { env });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/exit code: 3/);
    expect(failed.stderr).toContain(`failing-${t}`);
    const failedDebug = await runKiln(sb, ['--debug', 'build', failCtx, '--root', sb.root, '--progress', 'rawjson', ...secretFlags], { env });
    expect(failedDebug.code).toBe(1);
    const record = await runKiln(sb, ['history', 'inspect', '--root', sb.root, '--format', 'json']);
    expect(record.stdout).toContain(`failing-${t}`);
    const recordLogs = await runKiln(sb, ['history', 'logs', '--root', sb.root]);
    expect(recordLogs.code, recordLogs.stderr).toBe(0);

    // The failing build again through `kiln daemon`: the client sends its environment (the env=
    // secrets) and the secret files' paths; neither the daemon's log nor the client's report shows a value.
    const socket = join(sb.dir, `leak-run-${t}`, 'kilnd.sock');
    const daemon = await startDaemon(sb, ['--root', sb.root, '--addr', `unix://${socket}`]);
    let viaDaemon: Awaited<ReturnType<typeof runKiln>>;
    try {
      viaDaemon = await runKiln(sb, ['--debug', 'build', failCtx, '--root', sb.root, '--progress', 'plain', '--no-cache', ...secretFlags], { env: { ...env, KILN_HOST: `unix://${socket}` } });
      expect(viaDaemon.code).toBe(1);
      expect(viaDaemon.stderr).toContain(`failing-${t}`);
      expect(daemon.log()).toMatch(/build: client pid \d+ → exit 1/);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }

    // A named context fetched over http with a password in its URL, into an image with a mode=max
    // attestation: the password reaches the server, not the attestation, the record or the output.
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      if (req.headers.authorization !== `Basic ${Buffer.from(`kiln:${urlPassword}`).toString('base64')}`) res.writeHead(401).end();
      else res.end(`extra ${t}\n`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const urlCtx = join(sb.dir, `leak-url-${t}`);
    await writeTree(urlCtx, { Dockerfile: 'FROM busybox\nCOPY --from=extra extra.txt /extra.txt\n' });
    let urlBuild: Awaited<ReturnType<typeof runKiln>>;
    try {
      const port = (server.address() as import('node:net').AddressInfo).port;
      urlBuild = await runKiln(sb, ['build', urlCtx, '--root', sb.root, '--progress', 'plain', '--provenance', 'mode=max',
        '--build-context', `extra=http://kiln:${urlPassword}@127.0.0.1:${port}/extra.txt`, '--output', `type=oci,dest=${join(exports, 'url.oci.tar')},name=leak-url:${t}`]);
    } finally {
      server.close();
    }
    expect(urlBuild.code, urlBuild.stderr).toBe(0);
    expect(seen.length).toBeGreaterThan(0);
    const urlRecord = await runKiln(sb, ['history', 'inspect', '--root', sb.root, '--format', 'json']);
    expect(urlRecord.stdout).toContain('http://127.0.0.1:');

    // The LLB, as JSON and as marshaled pb bytes (`kiln llb` resolves the base from a registry:
    // push the busybox base to a local one first).
    const registry = await startRegistry();
    let llbJson: string;
    let llbPb: Buffer;
    try {
      const base = `${registry.host}/library/busybox:latest`;
      await writeTree(join(sb.dir, `leak-base-${t}`), { Dockerfile: 'FROM busybox\n' });
      const pushed = await runKiln(sb, ['build', join(sb.dir, `leak-base-${t}`), '--root', sb.root, '--progress', 'plain', '-t', base, '--push']);
      expect(pushed.code, pushed.stderr).toBe(0);
      llbJson = execFileSync(process.execPath, [kilnBin, 'llb', ctx, '--build-arg', `BASE=${base}`], { encoding: 'utf8' });
      llbPb = execFileSync(process.execPath, [kilnBin, 'llb', ctx, '--build-arg', `BASE=${base}`, '--format', 'pb']);
    } finally {
      await registry.stop();
    }
    expect(llbJson).toContain('"secretOpt":{"ID":"s4"');
    expect(llbJson).toContain('"secretenv":[{"ID":"s3","name":"TOKEN"');

    // Unpack both tarballs so every blob (config, manifest, index, compressed layers) is a file.
    for (const [tar, dir] of [[oci, 'oci'], [docker, 'docker'], [prov, 'prov'], [join(exports, 'url.oci.tar'), 'url']] as const) {
      await mkdir(join(exports, dir));
      execFileSync('tar', ['-xf', tar, '-C', join(exports, dir)]);
    }
    const layers = walk(join(exports, 'oci')).filter((f) => readFileSync(f).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])));
    expect(layers.length).toBeGreaterThanOrEqual(2);
    // The attestations are there to search: they name the secrets by id, and the URL's host.
    const statements = [...walk(join(exports, 'prov')), ...walk(join(exports, 'url'))].map((f) => readFileSync(f, 'utf8')).filter((x) => x.includes('"predicateType":"https://slsa.dev/provenance/v0.2"'));
    expect(statements).toHaveLength(2);
    expect(statements.join('')).toContain('"secrets":[{"id":"s1"}');
    expect(statements.join('')).toContain(`127.0.0.1:`);
    const bundle = join(exports, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${join(exports, 'oci')}:${t}`, bundle], { stdio: 'pipe' });
    expect(existsSync(join(bundle, 'rootfs/out/derived4'))).toBe(true);

    // The search itself finds a secret where it is: the plain source file, and gzip-compressed.
    expect(hits([join(ctx, 's1.txt')], needles)).toHaveLength(1);
    await writeFile(join(sb.dir, `leak-${t}.gz`), gzipSync(Buffer.from(`x${secret.s4}y`)));
    expect(hits([join(sb.dir, `leak-${t}.gz`)], needles)).toHaveLength(1);

    const runtimeDir = `/dev/shm/kiln-${createHash('sha256').update(sb.root).digest('hex').slice(0, 12)}`;
    const searched = [exports, sb.root, ...(existsSync(runtimeDir) ? [runtimeDir] : [])];
    expect(hits(searched, needles)).toEqual([]);
    const outputs = {
      plainStdout: plain.stdout,
      plainStderr: plain.stderr,
      rawStdout: raw.stdout,
      rawStderr: raw.stderr,
      rawLogs: [...rawJsonLogs(raw.stderr).values()].join(''),
      failedStderr: failed.stderr,
      failedDebugStderr: failedDebug.stderr,
      failedDebugLogs: [...rawJsonLogs(failedDebug.stderr).values()].join(''),
      recordJson: record.stdout,
      recordLogs: recordLogs.stdout + recordLogs.stderr,
      daemonClient: viaDaemon.stdout + viaDaemon.stderr,
      daemonLog: daemon.log(),
      urlBuild: urlBuild.stdout + urlBuild.stderr,
      urlRecord: urlRecord.stdout,
      llbJson,
      llbPb: llbPb.toString('latin1'),
    };
    for (const [name, text] of Object.entries(outputs)) {
      for (const n of needles) expect(text.includes(n), `${name} contains a secret`).toBe(false);
    }
    // The kiln root is not trivially empty: the search covered the cache db and snapshots.
    const rootFiles = walk(sb.root);
    expect(rootFiles.some((f) => /\.db$/.test(f))).toBe(true);
    expect(rootFiles.length).toBeGreaterThan(20);
  });
});
