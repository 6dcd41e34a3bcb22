/**
 * `RUN --mount` secret, ssh, bind and tmpfs mounts, `RUN --network` and `--security=insecure`,
 * and errors for bad mount specs: real builds through the CLI (`node cli/bin/kiln.js build`) on
 * real runc with the busybox base. Results are read from `--output type=local` directories.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileCli, copyHostPrograms, makeSandbox, requireTools, runKiln, token, writeTree, type KilnSandbox } from './build-helpers.js';

let sb: KilnSandbox;
const agents: ChildProcess[] = [];

beforeAll(async () => {
  requireTools();
  for (const tool of ['ssh-agent', 'ssh-add', 'ssh-keygen']) {
    if (!existsSync(`/usr/bin/${tool}`)) throw new Error(`missing prerequisite ${tool}: apt-get install -y openssh-client`);
  }
  compileCli();
  sb = await makeSandbox();
}, 300_000);

afterAll(async () => {
  for (const a of agents) if (a.exitCode === null) a.kill('SIGTERM');
  await sb?.cleanup();
});

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
/** What `… | sha256sum` prints for these bytes. */
const sumLine = (s: string): string => `${sha(s)}  -\n`;
const read = (dir: string, p: string): Promise<string> => readFile(join(dir, p), 'utf8');
const noStack = (stderr: string): void => expect(stderr).not.toMatch(/\n\s+at /);

/** Builds `ctx` into a fresh local directory; returns it and the CLI outcome. */
async function buildLocal(ctx: string, extra: readonly string[] = [], env: Record<string, string> = {}) {
  const out = `${ctx}-out-${token()}`;
  const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${out}`, ...extra], { env });
  return { r, out };
}

/** A real ssh-agent (foreground, its own socket) holding a freshly generated ed25519 key. */
async function startAgentWithKey(name: string): Promise<{ socket: string; key: string; fingerprint: string }> {
  const dir = join(sb.dir, `agent-${name}`);
  mkdirSync(dir, { recursive: true });
  const key = join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `kiln-${name}`, '-f', key]);
  const socket = join(dir, 'agent.sock');
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  agents.push(agent);
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10));
  execFileSync('ssh-add', [key], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'pipe' });
  return { socket, key, fingerprint: fingerprintOf(`${key}.pub`) };
}

/** `SHA256:…` of a public key, as `ssh-add -l` prints it. */
function fingerprintOf(pub: string): string {
  const m = /SHA256:\S+/.exec(execFileSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }));
  if (m === null) throw new Error(`no fingerprint for ${pub}`);
  return m[0];
}

/** A context dir holding the host's ssh-add and the shared libraries it needs, at their paths. */
function sshToolsContext(): string {
  return copyHostPrograms(join(sb.dir, 'ssh-tools'), ['/usr/bin/ssh-add']);
}

describe('RUN --mount=type=secret', { timeout: 180_000 }, () => {
  test('every --secret form; default path and target; mode/uid/gid; env= only for that RUN; optional secret absent', async () => {
    const t = token();
    const ctx = join(sb.dir, `secret-${t}`);
    const vals = { a: `file-a-${t}`, b: `env-b-${t}`, c: `file-c-${t}`, d: `env-d-${t}` };
    await writeTree(sb.dir, { [`secret-${t}-a.txt`]: vals.a, [`secret-${t}-c.txt`]: vals.c });
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        `RUN --mount=type=secret,id=a sh -c 'cat /run/secrets/a | sha256sum > /a.sum; stat -c "%a %u %g" /run/secrets/a > /a.stat' # ${t}`,
        'RUN --mount=type=secret,id=b,target=/etc/b.txt sh -c \'cat /etc/b.txt | sha256sum > /b.sum; test ! -e /run/secrets/b && echo only-target > /b.where\'',
        'RUN --mount=type=secret,id=c,target=/tmp/c,mode=0440,uid=1234,gid=2345 sh -c \'stat -c "%a %u %g" /tmp/c > /c.stat; cat /tmp/c | sha256sum > /c.sum\'',
        'RUN --mount=type=secret,id=KILN_D,env=MY_D sh -c \'printf %s "$MY_D" | sha256sum > /d.sum; test ! -e /run/secrets/KILN_D && echo no-file > /d.file\'',
        'RUN sh -c \'env > /later.env; test -z "$MY_D" && echo unset > /d.later\'',
        'RUN --mount=type=secret,id=absent sh -c \'test ! -e /run/secrets/absent && echo skipped > /absent.txt\'',
        '',
      ].join('\n'),
    });
    const { r, out } = await buildLocal(
      ctx,
      ['--secret', `id=a,src=${join(sb.dir, `secret-${t}-a.txt`)}`, '--secret', 'id=b,env=KILN_B', '--secret', `type=file,id=c,source=${join(sb.dir, `secret-${t}-c.txt`)}`, '--secret', 'type=env,id=KILN_D'],
      { KILN_B: vals.b, KILN_D: vals.d },
    );
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(await read(out, 'a.sum')).toBe(sumLine(vals.a));
    expect(await read(out, 'a.stat')).toBe('400 0 0\n'); // BuildKit's defaults
    expect(await read(out, 'b.sum')).toBe(sumLine(vals.b));
    expect(await read(out, 'b.where')).toBe('only-target\n');
    expect(await read(out, 'c.stat')).toBe('440 1234 2345\n');
    expect(await read(out, 'c.sum')).toBe(sumLine(vals.c));
    expect(await read(out, 'd.sum')).toBe(sumLine(vals.d));
    expect(await read(out, 'd.file')).toBe('no-file\n');
    expect(await read(out, 'd.later')).toBe('unset\n');
    expect(await read(out, 'later.env')).not.toContain(vals.d);
    expect(await read(out, 'absent.txt')).toBe('skipped\n');
    // The mount points are not left in the result.
    for (const p of ['run/secrets/a', 'etc/b.txt', 'tmp/c']) expect(existsSync(join(out, p))).toBe(false);
    const all = execFileSync('sh', ['-c', `grep -r -l -a -e '${vals.a}' -e '${vals.b}' -e '${vals.c}' -e '${vals.d}' ${out} ${sb.root} || true`], { encoding: 'utf8' });
    expect(all).toBe('');
    for (const v of Object.values(vals)) expect(r.stderr + r.stdout).not.toContain(v);
  });

  test('the secret value is not part of the cache key (a new value hits the cache, as BuildKit); deep targets leave no stub dirs', async () => {
    const t = token();
    const ctx = join(sb.dir, `secret-key-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=secret,id=k,target=/deep/er/k sh -c 'test -s /deep/er/k && echo ${t} > /done.txt'\n` });
    const first = await buildLocal(ctx, ['--secret', 'id=k,env=KILN_K'], { KILN_K: `first-${t}` });
    expect(first.r.code, first.r.stderr).toBe(0);
    expect(first.r.stderr).not.toMatch(/RUN --mount=type=secret,id=k,[^\n]*\n#\d+ CACHED/);
    expect(existsSync(join(first.out, 'deep'))).toBe(false);
    const second = await buildLocal(ctx, ['--secret', 'id=k,env=KILN_K'], { KILN_K: `second-${t}` });
    expect(second.r.code, second.r.stderr).toBe(0);
    expect(second.r.stderr).toMatch(/RUN --mount=type=secret,id=k,[^\n]*\n#\d+ CACHED/);
    expect(await read(second.out, 'done.txt')).toBe(`${t}\n`);
  });

  test('required=true without --secret: clear error at the RUN line, exit 1', async () => {
    const t = token();
    const ctx = join(sb.dir, `secret-req-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${t}\nRUN --mount=type=secret,id=npmrc,required=true cat /run/secrets/npmrc\n` });
    const { r } = await buildLocal(ctx);
    noStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:3:1: .*secret npmrc/);
    expect(r.stderr).toMatch(/--secret id=npmrc/);
    // A missing --secret file is a clear CLI error before anything runs.
    const bad = await buildLocal(ctx, ['--secret', `id=npmrc,src=${join(sb.dir, 'no-such-file')}`]);
    expect(bad.r.code).toBe(1);
    expect(bad.r.stderr).toMatch(/--secret npmrc: cannot read/);
    noStack(bad.r.stderr);
  });
});

describe('RUN --mount=type=ssh (real ssh-agent, ssh-add -l inside the container)', { timeout: 180_000 }, () => {
  test('--ssh default (SSH_AUTH_SOCK), ID=SOCKET and ID=KEYFILE each forward the right agent; target and SSH_AUTH_SOCK; mode/uid', async () => {
    const t = token();
    const def = await startAgentWithKey(`default-${t}`);
    const other = await startAgentWithKey(`sock-${t}`);
    const keyDir = join(sb.dir, `keyfile-${t}`);
    mkdirSync(keyDir);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kiln-keyfile', '-f', join(keyDir, 'id')]);
    const keyFp = fingerprintOf(join(keyDir, 'id.pub'));
    const ctx = join(sb.dir, `ssh-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        'COPY --from=sshtools / /',
        `RUN --mount=type=ssh sh -c 'ssh-add -l > /fp-default.txt; echo "$SSH_AUTH_SOCK" > /sock-default.txt' # ${t}`,
        'RUN --mount=type=ssh,id=other,target=/tmp/agent.sock,uid=1000,mode=0660 sh -c \'ssh-add -l > /fp-other.txt; echo "$SSH_AUTH_SOCK" > /sock-other.txt; stat -c "%a %u %F" /tmp/agent.sock > /stat-other.txt\'',
        'RUN --mount=type=ssh,id=keyf,required=true ssh-add -l > /fp-keyf.txt',
        'RUN --mount=type=ssh,id=notgiven sh -c \'test ! -S /run/buildkit/ssh_agent.0 && echo skipped > /optional.txt\'',
        '',
      ].join('\n'),
    });
    // The build's own TMPDIR holds the agent kiln starts for the key file: it is told apart from
    // the agents of tests running at the same time by that.
    const tmp = join(sb.dir, `ssh-tmp-${t}`);
    mkdirSync(tmp);
    const { r, out } = await buildLocal(ctx, ['--build-context', `sshtools=${sshToolsContext()}`, '--ssh', 'default', '--ssh', `other=${other.socket}`, '--ssh', `keyf=${join(keyDir, 'id')}`], {
      SSH_AUTH_SOCK: def.socket,
      TMPDIR: tmp,
    });
    noStack(r.stderr);
    expect(r.code).toBe(0);
    const defaultList = await read(out, 'fp-default.txt');
    expect(defaultList).toContain(def.fingerprint);
    expect(defaultList).not.toContain(other.fingerprint);
    expect(await read(out, 'sock-default.txt')).toBe('/run/buildkit/ssh_agent.0\n');
    const otherList = await read(out, 'fp-other.txt');
    expect(otherList).toContain(other.fingerprint);
    expect(otherList).not.toContain(def.fingerprint);
    expect(await read(out, 'sock-other.txt')).toBe('/tmp/agent.sock\n');
    expect(await read(out, 'stat-other.txt')).toBe('660 1000 socket\n');
    expect(await read(out, 'fp-keyf.txt')).toContain(keyFp);
    expect(await read(out, 'optional.txt')).toBe('skipped\n');
    // No socket is left in the result, and the agent kiln started for the key file is gone.
    expect(existsSync(join(out, 'tmp/agent.sock'))).toBe(false);
    expect(execFileSync('sh', ['-c', 'ps -eo args'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith(`ssh-agent -D -a ${tmp}/kiln-ssh-`))).toEqual([]);
  });

  test('a non-root USER reads a secret and uses the agent only when uid= gives them to it', async () => {
    const t = token();
    const agent = await startAgentWithKey(`user-${t}`);
    await writeTree(sb.dir, { [`user-${t}.secret`]: `user-secret-${t}` });
    const ctx = join(sb.dir, `user-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        'COPY --from=sshtools / /',
        `RUN mkdir /out && chown 1000:1000 /out # ${t}`,
        'USER 1000:1000',
        'RUN --mount=type=secret,id=s,uid=1000 sh -c \'cat /run/secrets/s | sha256sum > /out/s.sum\'',
        'RUN --mount=type=secret,id=s sh -c \'(cat /run/secrets/s > /dev/null 2>&1 && echo readable || echo denied) > /out/s.default\'',
        'RUN --mount=type=ssh,uid=1000 sh -c \'ssh-add -l > /out/fp.txt\'',
        'RUN --mount=type=ssh sh -c \'ssh-add -l > /dev/null 2>&1; echo $? > /out/ssh.default\'',
        '',
      ].join('\n'),
    });
    const { r, out } = await buildLocal(ctx, ['--build-context', `sshtools=${sshToolsContext()}`, '--secret', `id=s,src=${join(sb.dir, `user-${t}.secret`)}`, '--ssh', `default=${agent.socket}`]);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(await read(out, 'out/s.sum')).toBe(sumLine(`user-secret-${t}`));
    expect(await read(out, 'out/s.default')).toBe('denied\n'); // 0400 root:root by default
    expect(await read(out, 'out/fp.txt')).toContain(agent.fingerprint);
    expect(await read(out, 'out/ssh.default')).toBe('2\n'); // ssh-add: cannot connect (0600 root socket)
  });

  test('required=true without --ssh fails clearly; --ssh default without SSH_AUTH_SOCK fails clearly', async () => {
    const t = token();
    const ctx = join(sb.dir, `ssh-req-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=ssh,required=true echo ${t}\n` });
    const { r } = await buildLocal(ctx);
    noStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:2:1: .*no SSH key default/);
    expect(r.stderr).toMatch(/--ssh default/);
    const noSock = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--ssh', 'default'], { env: { SSH_AUTH_SOCK: '' } });
    expect(noSock.code).toBe(1);
    expect(noSock.stderr).toMatch(/--ssh default: SSH_AUTH_SOCK is not set/);
    const stale = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain', '--ssh', 'default'], { env: { SSH_AUTH_SOCK: join(sb.dir, 'no-agent.sock') } });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/--ssh default: SSH_AUTH_SOCK \S+no-agent\.sock is not a socket/);
    noStack(stale.stderr);
  });
});

describe('RUN --mount=type=bind and type=tmpfs', { timeout: 180_000 }, () => {
  test('bind from the context, a stage, an image and a named context; source subpath; read-only by default; rw changes discarded', async () => {
    const t = token();
    const ctx = join(sb.dir, `bind-${t}`);
    await writeTree(ctx, {
      'sub/f.txt': `ctx-${t}\n`,
      Dockerfile: [
        'FROM busybox AS data',
        `RUN mkdir -p /data/deep && echo stage-${t} > /data/deep/s.txt`,
        'FROM busybox',
        'RUN --mount=type=bind,source=sub,target=/ctx sh -c \'cat /ctx/f.txt > /from-ctx.txt; (touch /ctx/new 2>/dev/null && echo writable || echo read-only) > /ro.txt\'',
        'RUN --mount=type=bind,target=/whole ls /whole > /whole.txt',
        'RUN --mount=type=bind,from=data,source=/data/deep,target=/s cat /s/s.txt > /from-stage.txt',
        'RUN --mount=type=bind,from=busybox,source=/bin,target=/img ls /img/busybox > /from-image.txt',
        'RUN --mount=type=bind,from=extra,source=note.txt,target=/n.txt cp /n.txt /from-named.txt',
        'RUN --mount=type=bind,source=sub,target=/ctx,rw sh -c \'echo changed > /ctx/f.txt && echo new > /ctx/new.txt && cat /ctx/f.txt > /rw-saw.txt\'',
        'RUN --mount=type=bind,source=sub,target=/ctx sh -c \'cat /ctx/f.txt > /after-rw.txt; ls /ctx > /after-rw.ls\'',
        '',
      ].join('\n'),
    });
    const extra = join(sb.dir, `bind-extra-${t}`);
    await writeTree(extra, { 'note.txt': `named-${t}\n` });
    const { r, out } = await buildLocal(ctx, ['--build-context', `extra=${extra}`]);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    expect(await read(out, 'from-named.txt')).toBe(`named-${t}\n`);
    expect(await read(out, 'from-ctx.txt')).toBe(`ctx-${t}\n`);
    expect(await read(out, 'ro.txt')).toBe('read-only\n');
    expect((await read(out, 'whole.txt')).split('\n').filter(Boolean).sort()).toEqual(['Dockerfile', 'sub']);
    expect(await read(out, 'from-stage.txt')).toBe(`stage-${t}\n`);
    expect(await read(out, 'from-image.txt')).toBe('/img/busybox\n');
    expect(await read(out, 'rw-saw.txt')).toBe('changed\n');
    expect(await read(out, 'after-rw.txt')).toBe(`ctx-${t}\n`);
    expect(await read(out, 'after-rw.ls')).toBe('f.txt\n');
    expect(await read(ctx, 'sub/f.txt')).toBe(`ctx-${t}\n`);
    expect(existsSync(join(ctx, 'sub/new.txt'))).toBe(false);
    expect(existsSync(join(out, 'ctx/f.txt'))).toBe(false);
    expect(existsSync(join(out, 'img/busybox'))).toBe(false);
  });

  test('a source that is a symlink resolves inside its stage, never on the host (bind ro/rw, cache from=)', async () => {
    const t = token();
    const ctx = join(sb.dir, `bind-link-${t}`);
    const escape = `/etc/kiln-escape-${t}`;
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox AS s',
        `RUN mkdir -p /etc && echo stage-${t} > /etc/marker && ln -s /etc /abs && ln -s ../../../../../../../../etc /up`,
        'FROM busybox',
        'RUN --mount=type=bind,from=s,source=/abs,target=/x sh -c \'ls /x > /abs.ls\'',
        'RUN --mount=type=bind,from=s,source=/up,target=/y sh -c \'ls /y > /up.ls\'',
        `RUN --mount=type=bind,from=s,source=/abs,target=/z,rw sh -c 'touch /z/kiln-escape-${t}; ls /z > /rw.ls'`,
        `RUN --mount=type=cache,id=link-${t},target=/c,from=s,source=/up sh -c 'ls /c > /cache.ls'`,
        '',
      ].join('\n'),
    });
    const { r, out } = await buildLocal(ctx);
    const escaped = existsSync(escape);
    if (escaped) rmSync(escape, { force: true });
    noStack(r.stderr);
    expect(r.code, r.stderr).toBe(0);
    expect(escaped).toBe(false);
    // The stage's /etc (busybox's few files plus the marker), not the host's.
    const hostEtc = readdirSync('/etc');
    expect(hostEtc).toContain('hostname');
    for (const f of ['abs.ls', 'up.ls', 'cache.ls', 'rw.ls']) {
      const names = (await read(out, f)).split('\n').filter(Boolean);
      expect(names, f).toContain('marker');
      expect(names, f).not.toContain('hostname');
      expect(names.length, f).toBeLessThan(hostEtc.length);
    }
    expect((await read(out, 'rw.ls')).split('\n')).toContain(`kiln-escape-${t}`);
  });

  test('tmpfs with size: df shows the limit; nothing reaches the image', async () => {
    const t = token();
    const ctx = join(sb.dir, `tmpfs-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        `RUN --mount=type=tmpfs,target=/t,size=8m sh -c 'df -k /t | tail -n 1 > /t.df; echo ${t} > /t/f; grep " /t " /proc/mounts > /t.mount'`,
        'RUN --mount=type=tmpfs,target=/u sh -c \'grep " /u " /proc/mounts > /u.mount\'',
        'RUN sh -c \'(ls -A /t 2>/dev/null || echo no-dir) > /t.after\'',
        '',
      ].join('\n'),
    });
    const { r, out } = await buildLocal(ctx);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    const df = (await read(out, 't.df')).trim().split(/\s+/);
    expect(df[1]).toBe('8192'); // 1K-blocks
    expect(await read(out, 't.mount')).toMatch(/^tmpfs \/t tmpfs .*size=8192k/);
    expect(await read(out, 'u.mount')).toMatch(/^tmpfs \/u tmpfs /);
    expect(await read(out, 'u.mount')).not.toMatch(/size=/);
    // Nothing written to the tmpfs is left; the mount point itself is removed like other mount stubs.
    expect(['', 'no-dir\n']).toContain(await read(out, 't.after'));
    expect(existsSync(join(out, 't/f'))).toBe(false);
  });
});

describe('RUN --network and --security', { timeout: 180_000 }, () => {
  test('--network=none has only lo; host (needs --allow network.host, as buildx) and default see the host interfaces', async () => {
    const t = token();
    const ctx = join(sb.dir, `net-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        `RUN --network=none sh -c 'cat /proc/net/dev > /none.txt' # ${t}`,
        'RUN --network=host cat /proc/net/dev > /host.txt',
        'RUN --network=default cat /proc/net/dev > /default.txt',
        'RUN cat /proc/net/dev > /unset.txt',
        '',
      ].join('\n'),
    });
    const refused = await buildLocal(ctx);
    noStack(refused.r.stderr);
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toMatch(/Dockerfile:3:1: .*network\.host is not allowed/);
    expect(refused.r.stderr).toMatch(/--allow network\.host/);
    const { r, out } = await buildLocal(ctx, ['--allow', 'network.host']);
    noStack(r.stderr);
    expect(r.code).toBe(0);
    const ifaces = (text: string): string[] =>
      text
        .split('\n')
        .slice(2)
        .map((l) => l.split(':')[0]?.trim() ?? '')
        .filter(Boolean)
        .sort();
    const host = ifaces(readFileSync('/proc/net/dev', 'utf8'));
    expect(host.length).toBeGreaterThan(1);
    expect(ifaces(await read(out, 'none.txt'))).toEqual(['lo']);
    expect(ifaces(await read(out, 'host.txt'))).toEqual(host);
    // BuildKit's default network without CNI is the host's.
    expect(ifaces(await read(out, 'default.txt'))).toEqual(host);
    expect(ifaces(await read(out, 'unset.txt'))).toEqual(host);
  });

  test('--security=insecure is refused without --allow security.insecure; with it the RUN has every capability', async () => {
    const t = token();
    const ctx = join(sb.dir, `insecure-${t}`);
    await writeTree(ctx, {
      Dockerfile: [
        'FROM busybox',
        `RUN grep CapEff /proc/self/status > /sandbox.caps # ${t}`,
        'RUN --security=insecure grep CapEff /proc/self/status > /insecure.caps',
        '',
      ].join('\n'),
    });
    const refused = await buildLocal(ctx);
    noStack(refused.r.stderr);
    expect(refused.r.code).toBe(1);
    expect(refused.r.stderr).toMatch(/security\.insecure is not allowed/);
    expect(refused.r.stderr).toMatch(/--allow security\.insecure/);
    expect(refused.r.stderr).toMatch(/Dockerfile:3:1/);
    const ok = await buildLocal(ctx, ['--allow', 'security.insecure']);
    noStack(ok.r.stderr);
    expect(ok.r.code).toBe(0);
    const bnd = /CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    expect(await read(ok.out, 'insecure.caps')).toBe(`CapEff:\t${bnd}\n`);
    // The default sandbox has BuildKit's default capability set (0xa80425fb), not all of them.
    expect(await read(ok.out, 'sandbox.caps')).toBe('CapEff:\t00000000a80425fb\n');
    // Refused again without --allow, although the insecure step is now in the cache.
    const again = await buildLocal(ctx);
    expect(again.r.code).toBe(1);
    expect(again.r.stderr).toMatch(/security\.insecure is not allowed/);
  });
});

describe('cli/MOUNTS.md', { timeout: 180_000 }, () => {
  test('the example Dockerfile builds with the documented command; the cache count goes up when the RUN runs again, --no-cache starts it over', async () => {
    const doc = readFileSync(join(import.meta.dirname, '../../MOUNTS.md'), 'utf8');
    const dockerfile = /```dockerfile\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(dockerfile).toContain('--mount=type=ssh');
    const command = /^kiln build .*$/m.exec(doc)?.[0];
    expect(command).toBe('kiln build . --secret id=api_token,src=token.txt --ssh default --output type=local,dest=out');
    const t = token();
    const ctx = join(sb.dir, `doc-${t}`);
    // A unique cache target per run: the count starts at 1 in this shared root.
    await writeTree(ctx, { Dockerfile: (dockerfile ?? '').replaceAll('/var/cache/app', `/var/cache/app-${t}`), 'token.txt': `doc-token-${t}` });
    const agent = await startAgentWithKey(`doc-${t}`);
    const args = (command ?? '').split(' ').slice(1).map((a) => (a === '.' ? ctx : a.startsWith('type=local') ? `type=local,dest=${join(ctx, 'out')}` : a.startsWith('id=api_token') ? `id=api_token,src=${join(ctx, 'token.txt')}` : a));
    const source = (dockerfile ?? '').replaceAll('/var/cache/app', `/var/cache/app-${t}`);
    // 1; the RUN edited (it runs again, with the cache mount kept): 2; --no-cache empties the mount: 1.
    for (const [expected, text, flags] of [
      ['1', source, []],
      ['2', source.replace('echo build >>', 'echo rebuild >>'), []],
      ['1', source, ['--no-cache']],
    ] as const) {
      expect(text).toContain('>> /var/cache');
      await writeFile(join(ctx, 'Dockerfile'), text);
      const r = await runKiln(sb, [...args, '--root', sb.root, '--progress', 'plain', ...flags], { env: { SSH_AUTH_SOCK: agent.socket } });
      noStack(r.stderr);
      expect(r.code, r.stderr).toBe(0);
      expect((await read(join(ctx, 'out'), 'builds.txt')).trim()).toBe(expected);
    }
    expect(await read(join(ctx, 'out'), 'token.txt')).toBe('token present\n');
    expect(await read(join(ctx, 'out'), 'env.txt')).toBe('env present\n');
    expect(await read(join(ctx, 'out'), 'ssh.txt')).toBe('agent forwarded\n');
  });
});

describe('bad mount specs point at FILE:LINE:COL', () => {
  const cases: Array<{ name: string; run: string; message: RegExp }> = [
    { name: 'unknown type', run: 'RUN --mount=type=cach,target=/c true', message: /unsupported mount type "cach" \(did you mean "cache"\?\)/ },
    { name: 'unknown option', run: 'RUN --mount=type=cache,target=/c,colour=red true', message: /unexpected key 'colour'/ },
    { name: 'bad sharing value', run: 'RUN --mount=type=cache,target=/c,sharing=exclusive true', message: /unsupported sharing value "exclusive"/ },
    { name: 'missing target (resolves to /)', run: 'RUN --mount=type=cache true', message: /invalid mount target "\/"/ },
    { name: 'secret without id, source or target', run: 'RUN --mount=type=secret true', message: /one of source, target required/ },
    { name: 'option of another type', run: 'RUN --mount=type=bind,target=/b,size=1m true', message: /unexpected key 'size' for mount type 'bind'/ },
    { name: 'bad mode', run: 'RUN --mount=type=cache,target=/c,mode=999 true', message: /invalid value 999 for mode/ },
    { name: 'bad bool', run: 'RUN --mount=type=bind,target=/b,readonly=maybe true', message: /invalid value for readonly: maybe/ },
    { name: 'bad tmpfs size', run: 'RUN --mount=type=tmpfs,target=/t,size=lots true', message: /invalid value for size: lots/ },
    { name: 'relative target that is the root', run: 'RUN --mount=type=tmpfs,target=. true', message: /invalid mount target "\/"/ },
    { name: 'secret with from', run: 'RUN --mount=type=secret,id=a,from=busybox true', message: /secret mount should not have a from/ },
    { name: 'field without a value', run: 'RUN --mount=type=cache,target=/c,bogus true', message: /invalid field 'bogus' must be a key=value pair/ },
  ];
  test.for(cases)('$name', async ({ run, message }) => {
    const ctx = join(sb.dir, `bad-${token()}`);
    await writeTree(ctx, { 'mounts.Dockerfile': `FROM busybox\nWORKDIR /\n${run}\n` });
    const r = await runKiln(sb, ['build', ctx, '-f', join(ctx, 'mounts.Dockerfile'), '--root', sb.root, '--progress', 'plain']);
    noStack(r.stderr);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mounts\.Dockerfile:3:\d+: /);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/KLN04\d\d/);
  });

  test('a relative target is joined to WORKDIR, as BuildKit does', async () => {
    const t = token();
    const ctx = join(sb.dir, `reltarget-${t}`);
    await writeTree(ctx, { 'x.txt': `${t}\n`, Dockerfile: 'FROM busybox\nWORKDIR /w\nRUN --mount=type=bind,source=x.txt,target=rel/x.txt cat /w/rel/x.txt > /rel.txt\n' });
    const { r, out } = await buildLocal(ctx);
    expect(r.code).toBe(0);
    expect(await read(out, 'rel.txt')).toBe(`${t}\n`);
    expect((await stat(join(out, 'w'))).isDirectory()).toBe(true);
    expect(await readdir(join(out, 'w'))).toEqual([]);
  });
});
