import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, readdir, readlink, rm, lstat, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  LocalSnapshotter,
  RuncExecutor,
  applyLayer,
  changes,
  runStreaming,
  unpackLayer,
  type ExecRequest,
  type ExecResult,
  type OutputLine,
} from '@kiln/runtime';
import { mountsUnder } from '../../src/snapshot/mount.js';
import { BUSYBOX_LAYER, useExecutorSandbox } from './executor-helpers.js';

const sb = useExecutorSandbox('kiln-exec-');
let counter = 0;

interface Run {
  readonly result: ExecResult;
  readonly lines: OutputLine[];
  readonly stdout: string;
  readonly stderr: string;
  readonly snapshot: string;
}

async function run(args: string[], opts: Partial<Omit<ExecRequest, 'rootfs' | 'process'>> & { user?: string; cwd?: string; env?: string[] } = {}): Promise<Run> {
  const snapshot = `s${++counter}`;
  await sb.snapshotter.prepare(snapshot, 'busybox');
  const lines: OutputLine[] = [];
  const { user, cwd, env, ...rest } = opts;
  const result = await sb.executor.run({
    rootfs: await sb.snapshotter.mounts(snapshot),
    process: { args, env: env ?? [], ...(user === undefined ? {} : { user }), ...(cwd === undefined ? {} : { cwd }) },
    onOutput: (l) => lines.push(l),
    ...rest,
  });
  const pick = (s: string): string => lines.filter((l) => l.stream === s).map((l) => `${l.line}\n`).join('');
  return { result, lines, stdout: pick('stdout'), stderr: pick('stderr'), snapshot };
}

describe('runc executor', () => {
  test('echo streams stdout and exits 0; the snapshot has no leftovers (mount stubs removed)', async () => {
    const r = await run(['echo', 'hello', 'world']);
    expect(r.result.exitCode).toBe(0);
    expect(r.stdout).toBe('hello world\n');
    const left: string[] = [];
    for await (const c of changes(await sb.snapshotter.diffSource(r.snapshot), join(sb.root, 'mounts'))) left.push(c.path);
    expect(left).toEqual([]);
  });

  test('output lines carry the bytes as written: Latin-1, a last line without newline, long lines in pieces', async () => {
    const r = await run(['sh', '-c', "printf 'caf\\351\\n\\342\\230\\203\\n'; head -c 1048580 /dev/zero | tr '\\0' x; printf '\\ntail'"]);
    expect(r.result.exitCode).toBe(0);
    const out = r.lines.filter((l) => l.stream === 'stdout');
    expect(Buffer.from(out[0]?.data ?? [])).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
    expect(out[0]?.line).toBe('caf\ufffd');
    expect(out[1]?.line).toBe('\u2603');
    // A line longer than 1 MiB arrives in pieces; together they are the whole line.
    const long = out.slice(2, -1);
    expect(long.length).toBe(2);
    expect(Buffer.concat(long.map((l) => l.data)).toString()).toBe(`${'x'.repeat(1048580)}\n`);
    expect(Buffer.from(out.at(-1)?.data ?? []).toString()).toBe('tail');
  });

  test('runc runs from a sealed in-memory copy of itself (it then skips copying itself on every start)', async () => {
    // The copy is made after the executor's first start, without delaying it.
    expect((await run(['true'])).result.exitCode).toBe(0);
    const running = run(['sh', '-c', 'sleep 0.6']);
    const exes = new Set<string>();
    for (let i = 0; i < 100 && exes.size === 0; i++) {
      for (const pid of await readdir('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        const argv = (await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '')).split('\0');
        const bundle = argv[argv.indexOf('--bundle') + 1] ?? '';
        if (argv.includes('run') && bundle.startsWith(sb.executor.runtimeDir)) exes.add(await readlink(`/proc/${pid}/exe`).catch(() => ''));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await running).result.exitCode).toBe(0);
    expect([...exes].filter((e) => e !== '')).toEqual([expect.stringMatching(/^\/memfd:kiln-sealed/)]);
  });

  test('mount points missing from the image (/proc, /dev, /sys, /etc/hosts, /etc/resolv.conf) come from a layer below it: the writable layer never gets them', async () => {
    const r = await run(['sh', '-c', 'ls -d /proc /dev /sys && test -f /proc/self/status && test -c /dev/null && grep -q localhost /etc/hosts && echo ok > /written']);
    expect([r.result.exitCode, r.stdout]).toEqual([0, '/dev\n/proc\n/sys\n']);
    const src = await sb.snapshotter.diffSource(r.snapshot);
    if (src.driver !== 'overlay') throw new Error('overlay expected');
    // Not even /etc is copied up for the /etc/hosts and /etc/resolv.conf mount points.
    expect(await readdir(src.upper)).toEqual(['written']);
    // A later run on top of it still sees them and leaves its own layer clean too.
    await sb.snapshotter.commit(`${r.snapshot}-c`, r.snapshot);
    await sb.snapshotter.prepare(`${r.snapshot}-2`, `${r.snapshot}-c`);
    // Not even while it runs (runc creates missing mount points in the writable layer).
    const src2 = await sb.snapshotter.diffSource(`${r.snapshot}-2`);
    if (src2.driver !== 'overlay') throw new Error('overlay expected');
    let during: string[] | undefined;
    const again = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts(`${r.snapshot}-2`),
      process: { args: ['sh', '-c', 'cat /written; sleep 1'], env: [] },
      onOutput: () => void readdir(src2.upper).then((names) => (during = names)),
    });
    expect(again.exitCode).toBe(0);
    expect(during).toEqual([]);
    expect(await readdir(src2.upper)).toEqual([]);
  });

  test('an opaque /etc hides the mount point layer: runc creates /etc/hosts in the writable layer, and it is removed again', async () => {
    // A layer that replaced /etc (overlayfs marks the new directory opaque).
    await sb.snapshotter.prepare('opaque-etc-a', 'busybox');
    const m = await sb.snapshotter.mount('opaque-etc-a');
    try {
      await rm(join(m.path, 'etc'), { recursive: true });
      await mkdir(join(m.path, 'etc'));
      await writeFile(join(m.path, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    } finally {
      await m.release();
    }
    await sb.snapshotter.commit('opaque-etc', 'opaque-etc-a');
    await sb.snapshotter.prepare('opaque-etc-run', 'opaque-etc');
    const lines: OutputLine[] = [];
    const r = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts('opaque-etc-run'),
      process: { args: ['sh', '-c', 'ls /etc; grep -c localhost /etc/hosts'], env: [] },
      onOutput: (l) => lines.push(l),
    });
    expect([r.exitCode, lines.map((l) => l.line)]).toEqual([0, ['hosts', 'passwd', 'resolv.conf', '2']]);
    const left: string[] = [];
    for await (const c of changes(await sb.snapshotter.diffSource('opaque-etc-run'), join(sb.root, 'mounts'))) left.push(c.path);
    // (The copied-up opaque /etc itself shows as a change, as it did before the mount point layer.)
    expect(left.filter((p) => p !== 'etc')).toEqual([]);
  });

  test('a writable rootfs without parent (plain directory) is used in place and stays clean', async () => {
    await sb.snapshotter.prepare('flat');
    const m = await sb.snapshotter.mount('flat');
    try {
      await applyLayer(m.path, createReadStream(BUSYBOX_LAYER));
    } finally {
      await m.release();
    }
    const lines: OutputLine[] = [];
    const r = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts('flat'),
      process: { args: ['sh', '-c', 'echo out > /out.txt; cat /out.txt'], env: [], cwd: '/new/dir' },
      onOutput: (l) => lines.push(l),
    });
    expect([r.exitCode, lines.map((l) => l.line)]).toEqual([0, ['out']]);
    const v = await sb.snapshotter.mount('flat');
    try {
      expect((await readdir(v.path)).sort()).toEqual(['bin', 'etc', 'home', 'new', 'out.txt', 'root', 'sbin', 'tmp', 'usr']);
      expect((await readdir(join(v.path, 'etc'))).sort()).toEqual(['group', 'passwd']);
    } finally {
      await v.release();
    }
  });

  test('snapshots of the copying fallback driver run too', async () => {
    const copyRoot = join(sb.root, 'copy-driver');
    const cs = new LocalSnapshotter({ root: copyRoot, driver: 'copy' });
    await unpackLayer(cs, 'bb', undefined, createReadStream(BUSYBOX_LAYER));
    await cs.prepare('w', 'bb');
    const lines: OutputLine[] = [];
    const r = await sb.executor.run({
      rootfs: await cs.mounts('w'),
      process: { args: ['sh', '-c', 'echo copy > /home/app/copied; cat /home/app/copied'], env: [], user: 'app:app' },
      onOutput: (l) => lines.push(l),
    });
    expect([r.exitCode, lines.map((l) => l.line)]).toEqual([0, ['copy']]);
    await cs.commit('done', 'w');
    const names: string[] = [];
    for await (const c of changes(await cs.diffSource('done'), join(copyRoot, 'mounts'))) names.push(c.path);
    expect(names).toEqual(['home', 'home/app', 'home/app/copied']);
  });

  test('bundles and runc state are kept in memory (tmpfs)', async () => {
    const { statfs } = await import('node:fs/promises');
    expect((await statfs(sb.executor.runtimeDir)).type).toBe(0x01021994);
  });

  test('exit codes and stderr', async () => {
    const r = await run(['sh', '-c', 'echo oops >&2; exit 3']);
    expect(r.result.exitCode).toBe(3);
    expect(r.stderr).toBe('oops\n');
    expect((await run(['false'])).result.exitCode).toBe(1);
  });

  test('a missing command fails with runc error', async () => {
    await expect(run(['/no/such/binary'])).rejects.toMatchObject({ code: 'EXEC_FAILED' });
  });

  test('output is streamed as it happens (callback and AsyncIterable)', async () => {
    await sb.snapshotter.prepare('streaming', 'busybox');
    const started = Date.now();
    const { output, result } = runStreaming(sb.executor, {
      rootfs: await sb.snapshotter.mounts('streaming'),
      process: { args: ['sh', '-c', 'echo first; sleep 1; echo second >&2'], env: [] },
    });
    const seen: [string, string, number][] = [];
    for await (const l of output) seen.push([l.stream, l.line, Date.now() - started]);
    expect((await result).exitCode).toBe(0);
    expect(seen.map(([s, l]) => [s, l])).toEqual([
      ['stdout', 'first'],
      ['stderr', 'second'],
    ]);
    // the first line was read about a second before the process ended
    expect((seen[1]?.[2] ?? 0) - (seen[0]?.[2] ?? 0)).toBeGreaterThanOrEqual(800);
  });

  test('env, cwd (created, owned by the user) and user by name', async () => {
    const r = await run(['sh', '-c', 'id -u; id -g; id -G; pwd; echo "$FOO"; echo "$PATH"'], {
      user: 'app',
      cwd: '/work/dir',
      env: ['FOO=bar baz'],
    });
    expect(r.result.exitCode).toBe(0);
    expect(r.stdout).toBe('1000\n1000\n1000\n/work/dir\nbar baz\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n');
    const m = await sb.snapshotter.mount(r.snapshot);
    try {
      const st = await lstat(join(m.path, 'work/dir'));
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([1000, 1000, 0o755]);
    } finally {
      await m.release();
    }
  });

  test.for([
    ['nobody:app', '65534:1000'],
    ['app:0', '1000:0'],
    ['123:456', '123:456'],
    ['1000', '1000:1000'],
    ['', '0:0'],
  ] as const)('user %s runs as %s', async ([user, expected]) => {
    const r = await run(['sh', '-c', 'echo "$(id -u):$(id -g)"'], { user });
    expect(r.stdout.trim()).toBe(expected);
  });

  test('unknown users and groups are refused', async () => {
    await expect(run(['true'], { user: 'ghost' })).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
    await expect(run(['true'], { user: 'app:ghosts' })).rejects.toMatchObject({ code: 'USER_NOT_FOUND' });
  });

  test('network none has only a loopback interface, and it is up', async () => {
    const r = await run(['sh', '-c', 'ls /sys/class/net; ip -o link']);
    const [names, ...links] = r.stdout.trim().split('\n');
    expect(names).toBe('lo');
    expect(links).toHaveLength(1);
    expect(links[0]).toMatch(/lo: <LOOPBACK,UP,LOWER_UP>/);
  });

  test('network host shares the host interfaces', async () => {
    const r = await run(['ls', '/sys/class/net'], { network: 'host' });
    expect(r.stdout.trim().split('\n').sort()).toEqual((await readdir('/sys/class/net')).sort());
  });

  test('hostname, /etc/hosts extra hosts and resolv.conf', async () => {
    const r = await run(['sh', '-c', 'hostname; cat /etc/hosts; cat /etc/resolv.conf'], {
      hostname: 'kiln-box',
      extraHosts: [{ host: 'registry.test', ip: '10.1.2.3' }],
    });
    const [name, ...rest] = r.stdout.split('\n');
    expect(name).toBe('kiln-box');
    expect(rest.join('\n')).toContain('10.1.2.3\tregistry.test');
    expect(rest.join('\n')).toContain('127.0.0.1\tkiln-box');
    expect(r.stdout).toContain(await readFile('/etc/resolv.conf', 'utf8'));
  });

  test('capabilities: Docker defaults, everything when insecure', async () => {
    const sandbox = await run(['sh', '-c', 'grep CapEff /proc/self/status']);
    // chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap
    expect(sandbox.stdout.trim()).toBe('CapEff:\t00000000a80425fb');
    const insecure = await run(['sh', '-c', 'grep CapEff /proc/self/status'], { security: 'insecure' });
    // every capability kiln itself holds (its bounding set), which is all of them when run as real root
    const bounding = /CapBnd:\t([0-9a-f]+)/.exec(await readFile('/proc/self/status', 'utf8'))?.[1];
    expect(insecure.stdout.trim()).toBe(`CapEff:\t${bounding}`);
  });

  test('/sys and a committed rootfs are read-only; /dev has the standard devices', async () => {
    const r = await run(['sh', '-c', 'touch /sys/x 2>/dev/null || echo sys-ro; ls /dev; echo x > /dev/null && echo ok']);
    expect(r.stdout).toContain('sys-ro');
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'ptmx']) expect(r.stdout).toContain(d);
    const lines: OutputLine[] = [];
    const ro = await sb.executor.run({
      rootfs: await sb.snapshotter.mounts('busybox'),
      process: { args: ['sh', '-c', 'touch /newfile || echo refused'], env: [] },
      onOutput: (l) => lines.push(l),
    });
    expect(ro.exitCode).toBe(0);
    expect(lines.map((l) => l.line)).toContain('refused');
    // runc's mount points went to a throw-away layer, not into the committed snapshot
    const b = await sb.snapshotter.mount('busybox');
    try {
      expect((await readdir(b.path)).sort()).toEqual(['bin', 'etc', 'home', 'root', 'sbin', 'tmp', 'usr']);
      expect((await readdir(join(b.path, 'etc'))).sort()).toEqual(['group', 'passwd']);
    } finally {
      await b.release();
    }
  });

  test('snapshot mounts: ro refuses writes, rw writes through, rw-discard keeps nothing', async () => {
    await sb.snapshotter.prepare('input-rw', 'busybox');
    const r = await run(
      [
        'sh',
        '-c',
        'touch /ro/x 2>/dev/null || echo ro-refused; echo data > /rw/etc/written; echo tmp > /discard/etc/gone; cat /discard/etc/gone',
      ],
      {
        mounts: [
          { kind: 'snapshot', target: '/ro', mounts: await sb.snapshotter.mounts('busybox'), mode: 'ro' },
          { kind: 'snapshot', target: '/rw', mounts: await sb.snapshotter.mounts('input-rw'), mode: 'rw' },
          { kind: 'snapshot', target: '/discard', mounts: await sb.snapshotter.mounts('busybox'), mode: 'rw-discard' },
        ],
      },
    );
    expect(r.stdout).toBe('ro-refused\ntmp\n');
    const m = await sb.snapshotter.mount('input-rw');
    try {
      expect(await readFile(join(m.path, 'etc/written'), 'utf8')).toBe('data\n');
    } finally {
      await m.release();
    }
    const b = await sb.snapshotter.mount('busybox');
    try {
      expect(existsSync(join(b.path, 'etc/gone'))).toBe(false);
    } finally {
      await b.release();
    }
  });

  test('cache directories are plain binds that keep their content', async () => {
    const cache = join(sb.root, 'cache-dir');
    await mkdir(cache);
    await writeFile(join(cache, 'seed'), 'seed');
    const r = await run(['sh', '-c', 'cat /cache/seed; echo more > /cache/more'], {
      mounts: [{ kind: 'bind', target: '/cache', source: cache, readonly: false }],
    });
    expect(r.stdout).toBe('seed\n');
    expect(await readFile(join(cache, 'more'), 'utf8')).toBe('more\n');
  });

  test('tmpfs with size', async () => {
    const r = await run(['sh', '-c', 'df -k /scratch | tail -1'], {
      mounts: [{ kind: 'tmpfs', target: '/scratch', size: 4 * 1024 * 1024 }],
    });
    expect(r.stdout).toMatch(/^tmpfs\s+4096\s/);
  });

  test('secret files: mode/uid/gid, from memory, nowhere on disk or in the snapshot afterwards', async () => {
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const r = await run(['sh', '-c', 'stat -c "%a %u %g" /run/secrets/token; cat /run/secrets/token; echo; grep /run/secrets /proc/mounts'], {
      user: 'app',
      mounts: [{ kind: 'secret', target: '/run/secrets/token', data: Buffer.from(secret), mode: 0o440, uid: 1000, gid: 1000 }],
    });
    const [modeLine, value, mountLine] = r.stdout.split('\n');
    expect(modeLine).toBe('440 1000 1000');
    expect(value).toBe(secret);
    expect(mountLine).toMatch(/^\S+ \/run\/secrets\/token tmpfs ro/);
    // not under the kiln root (snapshots, executor bundles, anything) and not in the snapshot
    const grep = spawn('grep', ['-r', '-l', '-a', secret, sb.root]);
    const found = await new Promise<string>((resolve) => {
      let out = '';
      grep.stdout.on('data', (d: Buffer) => (out += d.toString()));
      grep.on('close', () => resolve(out));
    });
    expect(found).toBe('');
    // the bundle that held it (in memory) is gone too
    expect(await readdir(join(sb.executor.runtimeDir, 'bundles'))).toEqual([]);
    const m = await sb.snapshotter.mount(r.snapshot);
    try {
      expect(existsSync(join(m.path, 'run'))).toBe(false);
    } finally {
      await m.release();
    }
  });

  test('ssh: a forwarded agent socket lists the key of a real ssh-agent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
    const sock = join(dir, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
      execFileSync('ssh-add', [join(dir, 'key')], { env: { SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      const fingerprint = execFileSync('ssh-keygen', ['-lf', join(dir, 'key.pub')]).toString().split(' ')[1] ?? '';
      const sshAdd = execFileSync('which', ['ssh-add']).toString().trim();
      const libs = '/usr/lib/x86_64-linux-gnu';
      const r = await run(['sh', '-c', 'test -S "$SSH_AUTH_SOCK" && echo "sock $SSH_AUTH_SOCK"; /opt/ssh-add -l'], {
        user: 'app',
        mounts: [
          { kind: 'ssh', target: '/run/buildkit/ssh_agent.0', socket: sock, uid: 1000, gid: 1000 },
          // ssh-add from the host and what it links against, so the test image needs nothing else
          { kind: 'bind', target: '/opt/ssh-add', source: sshAdd, readonly: true },
          { kind: 'bind', target: libs, source: libs, readonly: true },
          { kind: 'bind', target: '/lib/x86_64-linux-gnu', source: libs, readonly: true },
          { kind: 'bind', target: '/lib64', source: '/lib64', readonly: true },
        ],
      });
      expect(r.stdout.split('\n')[0]).toBe('sock /run/buildkit/ssh_agent.0');
      expect(r.stdout).toContain(fingerprint);
      expect(r.result.exitCode).toBe(0);
    } finally {
      agent.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('cancel kills a sleeping container quickly and leaves no mounts and no runc state', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = run(['sleep', '1007'], { signal: ac.signal, mounts: [{ kind: 'secret', target: '/s', data: Buffer.from('x') }] });
    setTimeout(() => ac.abort(), 500);
    await expect(p).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await mountsUnder(sb.root)).toEqual([]);
    expect(await readdir(join(sb.executor.runtimeDir, 'runc'))).toEqual([]);
    expect(await readdir(join(sb.executor.runtimeDir, 'bundles'))).toEqual([]);
    expect(await readdir(join(sb.root, 'executor'))).toEqual([]);
    // the container's process is gone (1007: a duration nothing else on the machine sleeps)
    expect(spawnSync('pgrep', ['-f', '^sleep 1007$']).status).toBe(1);
  });

  test('recover() removes the container, bundle and state of a run whose process died', async () => {
    const dead = spawnSync('true').pid ?? 999_999;
    const id = `kiln-${dead}-deadbeef`;
    const bundle = join(sb.executor.runtimeDir, 'bundles', id);
    await mkdir(bundle, { recursive: true });
    execFileSync('runc', ['spec'], { cwd: bundle });
    const cfg = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { terminal: boolean; args: string[] };
      root: { path: string; readonly: boolean };
    };
    cfg.process.terminal = false;
    cfg.process.args = ['sleep', '1008'];
    cfg.root = { path: (await sb.snapshotter.mounts('busybox'))[0]?.source ?? '', readonly: true };
    await writeFile(join(bundle, 'config.json'), JSON.stringify(cfg));
    execFileSync('runc', ['--root', join(sb.executor.runtimeDir, 'runc'), 'run', '-d', '--bundle', bundle, id], { stdio: 'ignore' });
    expect(spawnSync('pgrep', ['-f', '^sleep 1008$']).status).toBe(0);
    // a live process's run is not touched
    const live = join(sb.executor.runtimeDir, 'bundles', `kiln-${process.pid}-00000000`);
    await mkdir(live);
    expect(await new RuncExecutor({ root: sb.root }).recover()).toBe(1);
    expect(spawnSync('pgrep', ['-f', '^sleep 1008$']).status).toBe(1);
    expect(await readdir(join(sb.executor.runtimeDir, 'runc'))).toEqual([]);
    expect(await readdir(join(sb.executor.runtimeDir, 'bundles'))).toEqual([`kiln-${process.pid}-00000000`]);
    await rm(live, { recursive: true });
  });

  test("a default runtime dir someone else made first (/dev/shm/kiln-<hash of root>) is refused, not used", async () => {
    const exRoot = join(await mkdtemp(join(tmpdir(), 'kiln-shm-')), 'root');
    const ex = new RuncExecutor({ root: exRoot });
    const req = { rootfs: await sb.snapshotter.mounts('busybox'), process: { args: ['true'], env: [] } };
    try {
      // open to everyone, as another user could make it before kiln's first run
      await mkdir(ex.runtimeDir, { mode: 0o777 });
      await chmod(ex.runtimeDir, 0o777);
      await expect(ex.run(req)).rejects.toThrow(`unsafe runtime directory ${ex.runtimeDir} (owner uid 0, mode 777)`);
      expect(await readdir(ex.runtimeDir)).toEqual([]);
      // private, but another user's (nobody)
      await chmod(ex.runtimeDir, 0o700);
      await chown(ex.runtimeDir, 65534, 65534);
      await expect(ex.run(req)).rejects.toThrow(`unsafe runtime directory ${ex.runtimeDir} (owner uid 65534, mode 700)`);
      await rm(ex.runtimeDir, { recursive: true });
      // kiln's own (made by it) is used
      expect((await ex.run(req)).exitCode).toBe(0);
      expect(((await lstat(ex.runtimeDir)).mode & 0o777).toString(8)).toBe('700');
      // this user's, writable by it alone (kiln before dca1bb1 made it 711 with the first bundle):
      // closed to others and used, not refused after an upgrade
      await chmod(ex.runtimeDir, 0o711);
      const upgraded = new RuncExecutor({ root: exRoot });
      expect((await upgraded.run(req)).exitCode).toBe(0);
      expect(((await lstat(ex.runtimeDir)).mode & 0o777).toString(8)).toBe('700');
    } finally {
      await rm(ex.runtimeDir, { recursive: true, force: true });
    }
  });
});
