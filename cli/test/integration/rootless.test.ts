import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { compileCli, kilnBin, makeSandbox, requireTools, type KilnSandbox } from './build-helpers.js';

// Rootless kiln (cli/src/userns, docs/rootless.md) as a real non-root user: this test makes the
// user (useradd) and its /etc/subuid range (usermod --add-subuids) and removes what it made.
// One user per run: runs at the same time on one host (CI beside a developer) shared the user and
// its /etc/subuid range, and one run's setRanges([]) or userdel pulled them from under the other.
const USER_PREFIX = 'kiln-rootless-';
const USER = `${USER_PREFIX}${process.pid}`;
/** The subordinate range the ranged case gives the user: uid N inside is SUB + N - 1 outside. */
const SUB = 520000;
const SUB_COUNT = 65536;
/** Two more ranges for the several-ranges case: 1000 ids, then 65536 (as usermod --add-subuids twice). */
const SUB_SMALL = 610000;
const SUB_LARGE = 700000;

let sb: KilnSandbox;
let uid = -1;
let gid = -1;
let madeUser = false;
/** The user's own ranges before the test (`START-END`, usermod's form), put back afterwards. */
let savedRanges: { subuid: string[]; subgid: string[] } = { subuid: [], subgid: [] };

/** The user's ranges in /etc/subuid or /etc/subgid, as usermod --add-subuids takes them. */
function rangesOf(file: string): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length === 3 && (f[0] === USER || f[0] === String(uid)))
    .map(([, start, count]) => `${start}-${Number(start) + Number(count) - 1}`);
}

/** Sets the user's subordinate ranges to exactly `subuid` and `subgid`. */
function setRanges(subuid: readonly string[], subgid: readonly string[]): void {
  const del = [...rangesOf('/etc/subuid').flatMap((r) => ['--del-subuids', r]), ...rangesOf('/etc/subgid').flatMap((r) => ['--del-subgids', r])];
  if (del.length > 0) sh('usermod', [...del, USER]);
  const add = [...subuid.flatMap((r) => ['--add-subuids', r]), ...subgid.flatMap((r) => ['--add-subgids', r])];
  if (add.length > 0) sh('usermod', [...add, USER]);
}

function sh(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `pid` still runs (a zombie nobody reaped yet has ended). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Pids of running processes whose command line (arguments joined by spaces) contains `marker`. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker) && running(Number(d));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The host id of `inside` in the map rootless kiln makes from the user's `file` ranges (file order, from 1). */
function hostIdOf(inside: number, file: string): number {
  let first = 1;
  for (const r of rangesOf(file)) {
    const [start, end] = r.split('-').map(Number) as [number, number];
    if (inside < first + end - start + 1) return start + inside - first;
    first += end - start + 1;
  }
  throw new Error(`${inside} is not mapped by ${file}`);
}

/** The uid_map lines (`inside:host:count`) rootless kiln makes from the user's `file` ranges. */
function expectedMap(own: number, file: string): string {
  let first = 1;
  const lines = [`0:${own}:1`];
  for (const r of rangesOf(file)) {
    const [start, end] = r.split('-').map(Number) as [number, number];
    lines.push(`${first}:${start}:${end - start + 1}`);
    first += end - start + 1;
  }
  return lines.join(' ');
}

function ids(): void {
  uid = Number(sh('id', ['-u', USER]).trim());
  gid = Number(sh('id', ['-g', USER]).trim());
}

interface Run {
  readonly code: number | null;
  readonly stderr: string;
}

/** The real CLI as the test user (setpriv: its uid, gid and groups alone), in `cwd`. */
function spawnAsUser(args: readonly string[], cwd: string, env: Record<string, string> = { KILN_DAEMON: '0' }): ChildProcessByStdio<null, null, Readable> {
  return spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', process.execPath, kilnBin, ...args], {
    cwd,
    env: { PATH: sb.path, HOME: sb.dir, LANG: 'C', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** {@link kilnAsUser}, with its stdout. */
function kilnAsUserOut(args: readonly string[], cwd: string): Promise<Run & { readonly stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--', process.execPath, kilnBin, ...args], {
      cwd,
      env: { PATH: sb.path, HOME: sb.dir, LANG: 'C', KILN_DAEMON: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function kilnAsUser(args: readonly string[], cwd: string, env?: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawnAsUser(args, cwd, env);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

/** `path` and below owned by the test user, as a root the user made would be. */
function chownTree(path: string): void {
  sh('chown', ['-R', `${uid}:${gid}`, path]);
}

/** The layers of the single image in an OCI layout tarball, as `tar tv --numeric-owner` lines. */
function layersListing(ociTar: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  sh('tar', ['-xf', ociTar, '-C', dir]);
  const blob = (d: string): string => join(dir, 'blobs', 'sha256', d.replace('sha256:', ''));
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]?.digest ?? ''), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => sh('tar', ['-tvzf', blob(l.digest), '--numeric-owner'])).join('');
}

beforeAll(() => {
  requireTools();
  if (spawnSync('sh', ['-c', 'command -v newuidmap && command -v newgidmap && command -v setpriv']).status !== 0) {
    throw new Error('missing prerequisites: apt-get install -y uidmap util-linux');
  }
  compileCli();
  // users (and with them their ranges) of runs killed before their cleanup
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const pid = Number(line.startsWith(USER_PREFIX) ? line.slice(USER_PREFIX.length).split(':')[0] : NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) spawnSync('userdel', [`${USER_PREFIX}${pid}`]);
  }
  if (spawnSync('id', ['-u', USER]).status !== 0) {
    // -K …COUNT=0: no subordinate range of useradd's own (login.defs SUB_UID_COUNT)
    sh('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', USER]);
    madeUser = true;
  }
  ids();
  // The single-mapping cases need no range: the user's (or a killed run's) go until the end.
  savedRanges = madeUser ? { subuid: [], subgid: [] } : { subuid: rangesOf('/etc/subuid'), subgid: rangesOf('/etc/subgid') };
  setRanges([], []);
}, 300_000);

beforeAll(async () => {
  sb = await makeSandbox();
  chmodSync(sb.dir, 0o755);
  chownTree(sb.root);
  // The runc wrapper's log, written by the user's runc
  writeFileSync(sb.runcLog, '');
  chownTree(sb.runcLog);
  const ctx = join(sb.dir, 'ctx');
  mkdirSync(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM busybox\nCOPY f /f\nRUN chown 1000:1000 /f && touch /g && chown 1234:1234 /g && ls -ln /home\nRUN --network=none id -u > /id\n');
  writeFileSync(join(ctx, 'f'), 'hello\n');
  // kiln/ts-free image with root-owned files only: what a single mapping can build
  const flat = join(sb.dir, 'flat');
  mkdirSync(flat);
  writeFileSync(join(flat, 'Dockerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox id -u > /id"]\n');
  writeFileSync(join(flat, 'busybox'), readFileSync('/bin/busybox'));
  chmodSync(join(flat, 'busybox'), 0o755);
  chownTree(sb.dir);
}, 120_000);

afterAll(async () => {
  if (uid >= 0) setRanges(savedRanges.subuid, savedRanges.subgid);
  // the runtime directories (/dev/shm/kiln-HASH, naming their root in `root`) of this run's roots
  for (const d of readdirSync('/dev/shm').filter((n) => n.startsWith('kiln-'))) {
    let owner = '';
    try {
      owner = readFileSync(join('/dev/shm', d, 'root'), 'utf8');
    } catch {
      continue; // not a runtime directory that names its root
    }
    if (sb !== undefined && owner.startsWith(`${sb.dir}/`)) rmSync(join('/dev/shm', d), { recursive: true, force: true });
  }
  await sb?.cleanup();
  if (madeUser) spawnSync('userdel', [USER]);
});

describe('rootless kiln: kiln build as a non-root user', () => {
  test('without subordinate ids: root-owned images build; a file of another owner is named with how to add a range', async () => {
    const flat = await kilnAsUser(['build', 'flat', '--root', sb.root, '--progress', 'plain', '-o', 'type=tar,dest=flat.tar'], sb.dir);
    expect(flat.stderr).not.toMatch(/\n\s+at /);
    expect(flat.code).toBe(0);
    expect(sh('tar', ['-xOf', join(sb.dir, 'flat.tar'), 'id']).trim()).toBe('0');
    expect(lstatSync(join(sb.dir, 'flat.tar')).uid).toBe(uid);

    // busybox's /home/app belongs to uid 1000, which a single mapping does not have
    const owned = await kilnAsUser(['build', 'ctx', '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(owned.code).toBe(1);
    expect(owned.stderr).not.toMatch(/\n\s+at /);
    expect(owned.stderr).not.toMatch(/EPERM|EINVAL/);
    expect(owned.stderr).toMatch(/cannot make \/home\/app owned by a user other than root: rootless kiln has only uid\/gid 0 \(kiln-rootless-\d+\)/);
    expect(owned.stderr).toContain(`hint: give ${USER} subordinate ids`);
    expect(owned.stderr).toContain(`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${USER}`);
  });

  test("without HOME (cron, env -i) the default root is under the user's passwd home, not uid 0's /root", async () => {
    const home = sh('getent', ['passwd', USER]).split(':')[5] ?? '';
    const r = await kilnAsUser(['du'], sb.dir, { KILN_DAEMON: '0', HOME: '' });
    expect(r.stderr).not.toContain('/root');
    expect(r.stderr).toContain(`${home}/.local/share/kiln`);
  });

  test('kiln inspect says the builder is rootless, as whom, and its id maps (one id here)', async () => {
    const r = await kilnAsUserOut(['inspect', '--root', sb.root], sb.dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Rootless:   yes, as ${USER} (uid ${uid}); uids 0:${uid}:1, gids 0:${gid}:1 (inside:host:count; no subordinate ids: only root inside)\n`);
    const json = await kilnAsUserOut(['inspect', '--root', sb.root, '--format', 'json'], sb.dir);
    expect(JSON.parse(json.stdout)).toMatchObject({ rootless: { user: USER, uid, mode: 'single', uidMap: [{ inside: 0, outside: uid, count: 1 }], gidMap: [{ inside: 0, outside: gid, count: 1 }] } });
  });

  test('a kiln root of another user is KLN0890', async () => {
    const theirs = join(sb.dir, 'root-of-root');
    mkdirSync(theirs);
    const r = await kilnAsUser(['build', 'flat', '--root', theirs], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`kiln: error KLN0890: cannot use the kiln root ${theirs}: it belongs to another user, and kiln runs rootless as ${USER}\nhint: use a root of your own (--root DIR, KILN_ROOT=DIR; default ~/.local/share/kiln), or run kiln as the root's owner\n`);
  });

  test('with a subuid range: image owners kept (uid N inside is the range outside), outputs the user\'s', async () => {
    setRanges([`${SUB}-${SUB + SUB_COUNT - 1}`], [`${SUB}-${SUB + SUB_COUNT - 1}`]);
    const r = await kilnAsUser(['build', 'ctx', '--root', sb.root, '--progress', 'plain', '-o', 'type=oci,dest=img.tar', '-o', 'type=local,dest=out'], sb.dir);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    // the RUN ran as root of the namespace, with the image's uid-1000 directory as it is
    expect(r.stderr).toMatch(/drwx\S+\s+2 1000\s+1000\s+\d+ .* app/);

    const layer = layersListing(join(sb.dir, 'img.tar'), join(sb.dir, 'img'));
    expect(layer).toMatch(/^d\S+ 1000\/1000 .* home\/app\/$/m);
    expect(layer).toMatch(/^-\S+ 1000\/1000 .* f$/m);
    expect(layer).toMatch(/^-\S+ 1234\/1234 .* g$/m);
    expect(layer).toMatch(/^-\S+ 0\/0 .* id$/m);
    expect(lstatSync(join(sb.dir, 'img.tar')).uid).toBe(uid);

    // a local output belongs to the user running kiln, whatever the image owners
    expect(readFileSync(join(sb.dir, 'out', 'id'), 'utf8')).toBe('0\n');
    for (const f of ['f', 'g', 'home/app']) expect(lstatSync(join(sb.dir, 'out', f)).uid).toBe(uid);

    // on the host, the snapshot's files belong to the subordinate ids: 1234 inside is SUB + 1233
    const snaps = join(sb.root, 'snapshots');
    const g = readdirSync(snaps)
      .map((s) => lstatSync(join(snaps, s, 'fs', 'g'), { throwIfNoEntry: false }))
      .find((st) => st !== undefined);
    expect(g?.uid).toBe(SUB + 1233);
    expect(g?.gid).toBe(SUB + 1233);
  });

  test('kiln daemon started by the user serves from inside its namespace; the client needs none', async () => {
    const run = join(sb.dir, 'run');
    mkdirSync(run, { mode: 0o700 });
    chownTree(run);
    const env = { KILN_HOST: `unix://${join(run, 'kilnd.sock')}` };
    const daemon = spawnAsUser(['daemon', '--root', sb.root], sb.dir, env);
    let log = '';
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
    try {
      await expect.poll(() => log, { timeout: 30_000, interval: 100 }).toMatch(/serving /);
      const r = await kilnAsUser(['build', 'ctx', '--root', sb.root, '--progress', 'plain', '-o', 'type=local,dest=out-daemon'], sb.dir, env);
      expect(r.code).toBe(0);
      expect(log).toMatch(/build: client pid \d+ → exit 0/);
      expect(readFileSync(join(sb.dir, 'out-daemon', 'id'), 'utf8')).toBe('0\n');
      expect(lstatSync(join(sb.dir, 'out-daemon', 'g')).uid).toBe(uid);
    } finally {
      // to the launcher's pid: it hands SIGTERM to the daemon inside
      daemon.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(log).toMatch(/SIGTERM: stopping/);
  });

  test('a root built with a range is refused once the range is gone: its files would change owners', async () => {
    setRanges([], []);
    const r = await kilnAsUser(['build', 'ctx', '--root', sb.root, '--progress', 'plain'], sb.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `kiln: error KLN0890: cannot use the kiln root ${sb.root}: its snapshots were made with the uid map 0:${uid}:1,1:${SUB}:${SUB_COUNT}, and kiln's user namespace now has 0:${uid}:1 (inside:host:count): their files would change owners\n` +
        `hint: give ${USER} that range again in /etc/subuid and /etc/subgid, or use another root (--root DIR); kiln prune --all with the old range empties this one\n`,
    );
  });
});

describe('rootless kiln with several subordinate ranges', () => {
  let root2 = '';
  beforeAll(async () => {
    // as usermod --add-subuids twice: both ranges are mapped, one after the other from uid 1
    setRanges([`${SUB_SMALL}-${SUB_SMALL + 999}`, `${SUB_LARGE}-${SUB_LARGE + 65535}`], [`${SUB_SMALL}-${SUB_SMALL + 999}`, `${SUB_LARGE}-${SUB_LARGE + 65535}`]);
    // a root of its own (sb.root's snapshots were made under one range), with busybox as makeSandbox's
    root2 = join(sb.dir, 'root-ranges');
    await createBusyboxImage(await ContentStore.open(root2), { names: ['docker.io/library/busybox:latest'], images: await ImageStore.open(root2) });
    chownTree(root2);
  });

  test('every range is mapped, in /etc/subuid order: ids past the first range keep their owners', async () => {
    const r = await kilnAsUser(['build', 'ctx', '--root', root2, '--progress', 'plain', '-o', 'type=oci,dest=img-ranges.tar'], sb.dir);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code, r.stderr).toBe(0);
    const layer = layersListing(join(sb.dir, 'img-ranges.tar'), join(sb.dir, 'img-ranges'));
    expect(layer).toMatch(/^-\S+ 1234\/1234 .* g$/m);
    // on the host, /g (1234 inside) belongs to the id the file-order map gives it
    const snaps = join(root2, 'snapshots');
    const g = readdirSync(snaps)
      .map((s) => lstatSync(join(snaps, s, 'fs', 'g'), { throwIfNoEntry: false }))
      .find((st) => st !== undefined);
    expect(g?.uid).toBe(hostIdOf(1234, '/etc/subuid'));
    expect(g?.gid).toBe(hostIdOf(1234, '/etc/subgid'));

    const inspect = await kilnAsUserOut(['inspect', '--root', root2], sb.dir);
    expect(inspect.stdout).toContain(`Rootless:   yes, as ${USER} (uid ${uid}); uids ${expectedMap(uid, '/etc/subuid')}, gids ${expectedMap(gid, '/etc/subgid')} (inside:host:count)\n`);
    expect(expectedMap(uid, '/etc/subuid').split(' ')).toHaveLength(3);
  });

  test('a SIGKILLed kiln: the kiln inside and its RUN container stop within seconds, and the next build works', async () => {
    const marker = `sleep 30${process.pid % 1000}`;
    const ctx = join(sb.dir, 'sleepy');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo started-run; /bin/busybox ${marker}"]\n`);
    writeFileSync(join(ctx, 'busybox'), readFileSync('/bin/busybox'));
    chmodSync(join(ctx, 'busybox'), 0o755);
    chownTree(ctx);
    const launcher = spawnAsUser(['build', 'sleepy', '--root', root2, '--progress', 'plain'], sb.dir);
    let log = '';
    launcher.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const closed = new Promise<void>((resolve) => launcher.once('close', () => resolve()));
    let inner = 0;
    try {
      // the RUN's own output line, not its title
      await expect.poll(() => log, { timeout: 60_000, interval: 100 }).toMatch(/^#\d+ [\d.]+ started-run$/m);
      const pid = launcher.pid ?? 0;
      inner = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]);
      expect(running(inner)).toBe(true);
      expect(processesWith(marker).length).toBeGreaterThan(0);
      launcher.kill('SIGKILL');
      const t0 = Date.now();
      await expect.poll(() => running(inner) || processesWith(marker).length > 0, { timeout: 10_000, interval: 100 }).toBe(false);
      expect(Date.now() - t0).toBeLessThan(5000);
      await closed;
      expect(log).toContain('is gone: stopping as for SIGTERM');
      expect(log).toMatch(/KLN0705: interrupted \(SIGTERM\)/);
    } finally {
      launcher.kill('SIGKILL');
      for (const p of [inner, ...processesWith(marker)]) if (p > 0 && running(p)) process.kill(p, 'SIGKILL');
    }
    // the store was left consistent: the root builds again (the cancelled RUN anew)
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox id -u > /id"]\n');
    const again = await kilnAsUser(['build', 'sleepy', '--root', root2, '--progress', 'plain', '-o', 'type=local,dest=out-again'], sb.dir);
    expect(again.stderr).not.toMatch(/\n\s+at /);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(sb.dir, 'out-again', 'id'), 'utf8')).toBe('0\n');
  });

  test("kiln daemon --addr in root's /tmp (65534 inside the namespace) listens, and a client builds through it", async () => {
    const sock = `/tmp/${USER}-${Date.now()}.sock`;
    const env = { KILN_HOST: `unix://${sock}` };
    const daemon = spawnAsUser(['daemon', '--root', root2, '--addr', sock], sb.dir);
    let log = '';
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => daemon.once('close', (code) => resolve(code)));
    try {
      await expect.poll(() => log, { timeout: 30_000, interval: 100 }).toMatch(/serving |error/);
      expect(log).toContain(`on unix://${sock}`);
      expect(lstatSync(sock).uid).toBe(uid);
      const r = await kilnAsUser(['build', 'ctx', '--root', root2, '--progress', 'plain'], sb.dir, env);
      expect(r.code, r.stderr).toBe(0);
      expect(log).toMatch(/build: client pid \d+ → exit 0/);
    } finally {
      daemon.kill('SIGTERM');
    }
    const code = await exited;
    const left = lstatSync(sock, { throwIfNoEntry: false });
    rmSync(sock, { force: true });
    expect(code).toBe(0);
    expect(left).toBeUndefined();
  });
});
