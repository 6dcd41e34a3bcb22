import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// Edges of `kiln build URL`, offline and without runc. A downloaded tarball holding a hardlink
// to a file it does not hold: BuildKit fails unpacking it too (Docker's untar: link(2) fails);
// kiln's error names the URL, the entry and the missing target instead of `extract into "/": no
// such file or directory`. And `github.com/ORG/REPO` without a scheme: a local directory of
// that name wins, as in buildx; `gitlab.com/…` is a path only.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));
let http: Server;
let base: string;

/** A tar of a Dockerfile, `app/real.txt`, and `app/copy.txt`: a hardlink to `app/gone.txt`. */
const brokenTar = (): Buffer =>
  execFileSync('python3', [
    '-c',
    `import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as t:
    for name, data in (('Dockerfile', b'FROM scratch\\nCOPY . /\\n'), ('app/real.txt', b'real\\n')):
        i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
    l = tarfile.TarInfo('app/copy.txt'); l.type = tarfile.LNKTYPE; l.linkname = 'app/gone.txt'; t.addfile(l)
sys.stdout.buffer.write(buf.getvalue())`,
  ]);

beforeAll(async () => {
  const body = brokenTar();
  http = createServer((req, res) => void (req.url === '/ctx.tar' ? res.writeHead(200).end(body) : res.writeHead(404).end()));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((r) => http.close(r));
});

test('a hardlink to a file the tarball does not hold: the error names the URL, the entry and its target', async () => {
  const r = await runKiln(sb, ['build', `${base}/ctx.tar`, '--root', sb.root, '--progress', 'plain']);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`cannot load the build context ${base}/ctx.tar`);
  expect(r.stderr).toContain('hardlink "app/copy.txt" points to "app/gone.txt"');
  expect(r.stderr).not.toContain('extract into');
  expect(r.stderr).not.toMatch(/\n\s+at /);
}, 120_000);

test('github.com/ORG/REPO: a local directory of that name is the context; gitlab.com/ORG/REPO is a path only', async () => {
  const cwd = join(sb.dir, `cwd-${token()}`);
  await writeTree(cwd, { 'github.com/org/app/Dockerfile': 'FROM scratch\nCOPY f /f\n', 'github.com/org/app/f': 'local\n' });
  const out = join(cwd, 'out');
  const r = await runKiln(sb, ['build', 'github.com/org/app', '--root', sb.root, '--progress', 'plain', '-o', `type=local,dest=${out}`], { cwd });
  expect(r.stderr).not.toContain('kiln: error');
  expect(r.stderr).not.toContain('load git source');
  expect(readFileSync(join(out, 'f'), 'utf8')).toBe('local\n');
  const other = await runKiln(sb, ['build', 'gitlab.com/org/app', '--root', sb.root], { cwd });
  expect(other.code).not.toBe(0);
  expect(other.stderr).toContain('cannot use build context gitlab.com/org/app: no such directory');
  expect(other.stderr).toContain('hint: to build the git repository, pass its URL: https://gitlab.com/org/app.git');
}, 120_000);
