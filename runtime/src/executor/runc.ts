import { execFile, spawn } from 'node:child_process';
import type { TerminalSize } from './pty-relay.js';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, readdir, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { WorkerError, throwIfAborted } from '../api/errors.js';
import type { ContainerRequest, ExecContainer, ExecMount, ExecPreparation, ExecRequest, ExecResult, ExecStdio, Executor, HostEntry } from '../api/executor.js';
import { RuncContainer, runcFailure, type Cleanup, type Configured } from './container.js';
import { childExit } from './child-exit.js';
import type { Mount } from '../api/snapshot.js';
import { mountAt, unmount } from '../snapshot/mount.js';
import { mountPointLayers, rootLayout } from './rootfs.js';
import { splitLines, type OutputSinks } from './output.js';
import { boundingCapabilities, buildSpec, specJson, type OciMount } from './spec.js';
import { startSshProxy } from './ssh-proxy.js';
import { LowerStatCache, type Stub } from './root-view.js';
import { resolveUser } from './user.js';
import { onKilnGone, sealViaHelper, spawnViaHelper, warmProcessHelper } from './process-helper.js';
import { RuncPrestarter, type PrestartedRunc, type RunDirs, type Started } from './prestart.js';
import { processAlive } from '../api/process-alive.js';
import type { Socket } from 'node:net';
import { rootlessProcessIds, usernsState } from '../userns/index.js';

const execFileP = promisify(execFile);

/** statfs(2) f_type of tmpfs. */
const TMPFS_MAGIC = 0x01021994;

/** Options for {@link RuncExecutor}. */
export interface RuncExecutorOptions {
  /** The kiln root: bundles go to `<root>/executor`, runc state to `<root>/runc` (`runc --root`). */
  readonly root: string;
  /** The runc binary; default `runc` from PATH. */
  readonly runc?: string;
  /** The resolv.conf copied into containers; default `/etc/resolv.conf`. */
  readonly resolvConf?: string;
  /**
   * Where per-run bundles (config.json, which holds the process environment; hosts; secret files;
   * ssh sockets) and runc's state (`runc --root`) live. Should be a tmpfs so none of it reaches a
   * disk; secret files get a private tmpfs when it is not. Default `/dev/shm/kiln-<hash of root>`.
   */
  readonly runtimeDir?: string;
}

/**
 * Runs processes with runc from a config.json kiln writes (see `buildSpec`). Per run: a
 * bundle dir in the runtime dir (config, secret files, ssh-agent proxy sockets), and on disk
 * `<root>/executor/<id>` only for throw-away overlay uppers; hosts and resolv.conf files are
 * shared by content in the runtime dir. The rootfs and every other mount are mounted by runc inside the
 * container's mount namespace (an overlay rootfs goes on `/` first), so nothing is mounted on the
 * host for them and they vanish with the container. Mount stubs runc creates in a writable rootfs
 * are removed afterwards. Everything is undone before {@link RuncExecutor.run} settles.
 */
export class RuncExecutor implements Executor {
  readonly #root: string;
  readonly #runc: string;
  readonly #state: string;
  readonly #bundles: string;
  readonly #resolvConf: string;
  /** Where bundles and runc state live (see {@link RuncExecutorOptions.runtimeDir}). */
  readonly runtimeDir: string;
  #insecureCaps: Promise<string[]> | undefined;
  readonly #lowerStats = new LowerStatCache();
  #inMemory: boolean | undefined;
  #stateReady = false;
  #resolv: { readonly key: string; readonly text: string } | undefined;
  /** The runtime dir is the default one, in /dev/shm beside those of other roots. */
  readonly #sharedRuntimeParent: boolean;
  /** Shared file path by content (see #sharedFile). */
  readonly #shared = new Map<string, string>();
  readonly #prestart: RuncPrestarter;
  /** Whether the process helper was asked to run runc from a sealed copy (see sealViaHelper). */
  #sealed = false;

  constructor(opts: RuncExecutorOptions) {
    this.#root = opts.root;
    this.#runc = opts.runc ?? 'runc';
    this.runtimeDir = opts.runtimeDir ?? join('/dev/shm', `kiln-${createHash('sha256').update(opts.root).digest('hex').slice(0, 12)}`);
    this.#sharedRuntimeParent = opts.runtimeDir === undefined;
    this.#state = join(this.runtimeDir, 'runc');
    this.#bundles = join(this.runtimeDir, 'bundles');
    this.#resolvConf = opts.resolvConf ?? '/etc/resolv.conf';
    // Started while this process is still small (forking it is cheap), ready for the first run.
    warmProcessHelper();
    this.#prestart = new RuncPrestarter({
      newRun: () => this.#newRun(),
      start: (run, held) => this.#start(run, held),
    });
  }

  /** Starts a runc for the announced run now; it waits for its config (see `RuncPrestarter`). */
  prepare(): ExecPreparation {
    this.#ensureState();
    return this.#prestart.prepare();
  }

  /**
   * A long-lived container (`RuncContainer`): its own runc per process, started with pipes,
   * apart from the build steps' fast path (pre-started runc, process helper). Its set-up is
   * {@link RuncExecutor.run}'s; its leftovers after a crash are cleaned by {@link recover}.
   */
  async newContainer(req: ContainerRequest): Promise<ExecContainer> {
    this.#ensureState();
    const { id, bundle } = this.#newRun();
    const scratch = join(this.#root, 'executor', id);
    return new RuncContainer(req, {
      id,
      bundle,
      scratch,
      runc: this.#runc,
      state: this.#state,
      configure: (r, cleanups, terminal) => this.#configure(r, { id, bundle }, scratch, cleanups, terminal),
      insecureCapabilities: () => this.#boundingCaps(),
      runcError,
      missing: () => this.#missing(),
    });
  }

  async run(req: ExecRequest): Promise<ExecResult> {
    const { signal } = req;
    throwIfAborted(signal);
    const started = Date.now();
    this.#ensureState();
    // A stream run starts its own runc with pipes (see #runStdio): an announced one is withdrawn.
    if (req.stdio !== undefined) req.prepared?.release();
    let pre = req.stdio === undefined ? await this.#prestart.take(req.prepared) : undefined;
    const { id, bundle } = pre ?? this.#newRun();
    const scratch = join(this.#root, 'executor', id);
    if (pre === undefined) mkdirSync(bundle, { recursive: true, mode: 0o711 });
    const cleanups: Cleanup[] = [];
    let configured: Configured | undefined;
    try {
      configured = await this.#configure(req, { id, bundle }, scratch, cleanups);
      const { spec } = configured;
      throwIfAborted(signal);
      const waiting = pre;
      pre = undefined;
      const exitCode =
        req.stdio === undefined
          ? await this.#runc_run({ id, bundle }, specJson(spec), waiting, req, signal)
          : await this.#runStdio({ id, bundle }, specJson(spec), req.stdio, req, signal);
      return { exitCode, durationMs: Date.now() - started };
    } finally {
      pre?.discard();
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
      if (configured !== undefined && configured.stubs.length > 0) configured.view.removeStubs(configured.stubs);
      rmSync(bundle, { recursive: true, force: true });
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  /**
   * Puts a run's container together: root layout, user, cwd, mount stubs, shared hosts and
   * resolv.conf files, mounts (their undo steps go to `cleanups`) and the spec. Shared by
   * {@link RuncExecutor.run} and the long-lived containers of {@link RuncExecutor.newContainer}.
   */
  async #configure(req: ExecRequest, run: RunDirs, scratch: string, cleanups: Cleanup[], terminal?: TerminalSize): Promise<Configured> {
    const { id, bundle } = run;
    const mountPoints = mountPointLayers(join(this.runtimeDir, 'mount-points'));
    const root = await rootLayout(req, bundle, scratch, this.#lowerStats, mountPoints, req.security !== 'insecure');
    const view = root.view;
    const resolved = await resolveUser(async (p) => view.readFile(p), req.process.user);
    // Rootless kiln: only the ids of its user namespace exist (see runtime/src/userns).
    const ns = usernsState();
    const user = ns === undefined ? resolved : rootlessProcessIds(resolved, ns, req.process.user);
    const cwd = posix.normalize(`/${req.process.cwd ?? '/'}`);
    const extra = req.mounts ?? [];
    const network = req.network ?? 'none';
    let stubs: Stub[] = [];
    if (root.keepChanges) {
      const destinations = ['/proc', '/dev', '/sys', '/etc/hosts', '/etc/resolv.conf', ...extra.map((m) => m.target)];
      stubs = view.stubs(destinations);
    }
    // Removed below if the rest fails; once returned, the caller removes them.
    const configured = { view, stubs };
    try {
      view.mkdirAll(cwd, user.uid, user.gid);
      const hostname = req.hostname ?? 'buildkitsandbox';
      const hostsFile = this.#sharedFile(hostsContent(hostname, req.extraHosts ?? []), 'utf8');
      // latin1: the host file's bytes as they are.
      const resolvConfFile = this.#sharedFile(this.#hostResolvConf(), 'latin1');
      const env = [...req.process.env];
      const mounts = await this.#mounts(extra, bundle, scratch, cleanups, env);
      const spec = buildSpec({
        rootPath: root.path,
        readonlyRoot: root.readonly,
        ...(root.mount === undefined ? {} : { rootMount: root.mount }),
        args: req.process.args,
        env,
        cwd,
        user,
        hostname,
        network,
        security: req.security ?? 'sandbox',
        insecureCapabilities: req.security === 'insecure' ? await this.#boundingCaps() : [],
        hostsFile,
        resolvConfFile,
        mounts,
        ...(req.rlimits === undefined ? {} : { rlimits: req.rlimits }),
        ...(req.cgroupParent === undefined || req.cgroupParent === '' ? {} : { cgroupsPath: `/${req.cgroupParent.replace(/^\/+|\/+$/g, '')}/${id}` }),
        ...(terminal === undefined ? {} : { terminal }),
        ...(ns === undefined ? {} : { idsInside: ns.ids }),
      });
      return { ...configured, spec };
    } catch (e) {
      if (stubs.length > 0) view.removeStubs(stubs);
      throw e;
    }
  }

  /**
   * Cleans up after runs of processes that died (crash, SIGKILL): kills and deletes their runc
   * containers and removes their bundles and scratch dirs. Runs of live processes are left alone.
   * Returns the number of runs cleaned. Call once at start-up (and from `kiln prune`).
   */
  async recover(): Promise<number> {
    const ids = new Set<string>();
    for (const dir of [this.#state, this.#bundles, join(this.#root, 'executor')]) {
      for (const name of await readdir(dir).catch(() => [] as string[])) ids.add(name);
    }
    let cleaned = 0;
    let waiting: Map<string, ObservedProcess> | undefined;
    for (const id of ids) {
      const pid = ownerPid(id);
      if (pid === undefined || processAlive(pid)) continue;
      // A runc started ahead whose kiln and helper were both killed may still wait to open its
      // config FIFO (nobody will ever write it): found by its command line.
      waiting ??= await runcProcessesByBundle(this.#bundles);
      const stuck = waiting.get(join(this.#bundles, id));
      if (stuck !== undefined) killQuietly(stuck); // unless its pid names another process by now
      await this.#delete(id);
      const secrets = join(this.#bundles, id, 'secrets');
      await unmount(secrets).catch(() => undefined);
      rmSync(join(this.#bundles, id), { recursive: true, force: true });
      rmSync(join(this.#root, 'executor', id), { recursive: true, force: true });
      rmSync(join(this.#state, id), { recursive: true, force: true });
      cleaned += 1;
    }
    if (this.#sharedRuntimeParent) await dropOrphanedRuntimeDirs(dirname(this.runtimeDir), this.runtimeDir);
    return cleaned;
  }

  /**
   * A file holding `content` in the runtime dir, named by its digest and shared read-only by every
   * run that binds the same bytes (/etc/hosts, /etc/resolv.conf are mostly the same for every
   * run): made once instead of written and removed per run. Re-made when the runtime dir was
   * cleaned meanwhile (one stat per call). Small files: synchronous calls skip thread-pool round
   * trips that dominate at this size.
   */
  #sharedFile(content: string, encoding: 'utf8' | 'latin1'): string {
    const memo = `${encoding}:${content}`;
    let file = this.#shared.get(memo);
    if (file === undefined) {
      file = join(this.runtimeDir, 'files', createHash('sha256').update(content, encoding).digest('hex').slice(0, 32));
      if (this.#shared.size > 1000) this.#shared.clear();
      this.#shared.set(memo, file);
    }
    if (!existsSync(file)) {
      mkdirSync(join(this.runtimeDir, 'files'), { recursive: true, mode: 0o711 });
      // Complete or absent: a concurrent run (another process) never binds half a file.
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, content, { encoding, mode: 0o644 });
      renameSync(tmp, file);
    }
    return file;
  }

  async #bundlesInMemory(): Promise<boolean> {
    if (this.#inMemory === undefined) {
      const st = await statfs(this.#bundles).catch(() => undefined);
      this.#inMemory = st?.type === TMPFS_MAGIC;
    }
    return this.#inMemory;
  }

  /** The host's resolv.conf (latin1: bytes as they are); read again only when its stat changes (one stat per run). */
  #hostResolvConf(): string {
    const st = statSync(this.#resolvConf, { throwIfNoEntry: false });
    const key = st === undefined ? 'missing' : `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    if (this.#resolv?.key !== key) {
      let text = 'nameserver 8.8.8.8\n';
      try {
        text = readFileSync(this.#resolvConf, 'latin1');
      } catch {
        // none on the host: a public resolver
      }
      this.#resolv = { key, text };
    }
    return this.#resolv.text;
  }

  #boundingCaps(): Promise<string[]> {
    this.#insecureCaps ??= readFile('/proc/self/status', 'utf8').then(boundingCapabilities);
    return this.#insecureCaps;
  }

  async #mounts(extra: readonly ExecMount[], bundle: string, scratch: string, cleanups: Cleanup[], env: string[]): Promise<OciMount[]> {
    const out: OciMount[] = [];
    const secrets = extra.filter((m) => m.kind === 'secret');
    let secretDir: string | undefined;
    if (secrets.length > 0) {
      // Secrets live in memory only, outside the rootfs: the bundle when it is on a tmpfs,
      // otherwise a private tmpfs mounted for this run.
      secretDir = join(bundle, 'secrets');
      await mkdir(secretDir, { mode: 0o700 });
    }
    if (secretDir !== undefined && !(await this.#bundlesInMemory())) {
      const bytes = secrets.reduce((n, s) => n + s.data.length + 4096, 0);
      await mountAt({ type: 'tmpfs', source: 'tmpfs', options: [`size=${bytes + 65536}`, 'mode=0700', 'nosuid', 'nodev', 'noexec'] }, secretDir);
      const dir = secretDir;
      cleanups.push(() => unmount(dir));
    }
    let n = 0;
    for (const m of extra) {
      n += 1;
      const destination = posix.normalize(`/${m.target}`);
      switch (m.kind) {
        case 'bind':
          out.push({ destination, type: 'bind', source: m.source, options: ['rbind', m.readonly ? 'ro' : 'rw'] });
          break;
        case 'tmpfs':
          out.push({
            destination,
            type: 'tmpfs',
            source: 'tmpfs',
            options: ['nosuid', 'nodev', 'mode=1777', ...(m.size === undefined ? [] : [`size=${m.size}`])],
          });
          break;
        case 'snapshot':
          out.push(...(await this.#snapshotMount(m.mounts, m.mode, destination, scratch, n)));
          break;
        case 'secret': {
          const file = join(secretDir as string, `s${n}`);
          await writeFile(file, m.data, { mode: 0o600 });
          await chown(file, m.uid ?? 0, m.gid ?? 0);
          await chmod(file, m.mode ?? 0o400);
          out.push({ destination, type: 'bind', source: file, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
          break;
        }
        case 'ssh': {
          const dir = join(bundle, 'ssh');
          await mkdir(dir, { recursive: true, mode: 0o711 });
          const proxy = await startSshProxy(join(dir, `${n}.sock`), m.socket, m.mode ?? 0o600, m.uid ?? 0, m.gid ?? 0);
          cleanups.push(() => proxy.close());
          out.push({ destination, type: 'bind', source: proxy.path, options: ['rbind'] });
          if (!env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${destination}`);
          break;
        }
      }
    }
    return out;
  }

  async #snapshotMount(mounts: readonly Mount[], mode: 'ro' | 'rw' | 'rw-discard', destination: string, scratchRoot: string, n: number): Promise<OciMount[]> {
    const m = mounts[0];
    if (m === undefined || mounts.length !== 1) throw new WorkerError('MOUNT_FAILED', `snapshot mount at ${destination} needs exactly one mount`);
    if (mode === 'rw-discard') {
      // A throw-away upper on top: lowers are the snapshot's layers (an active snapshot's upper included).
      const lowers =
        m.type === 'bind'
          ? [m.source]
          : [
              ...m.options.filter((o) => o.startsWith('upperdir=')).map((o) => o.slice('upperdir='.length)),
              ...m.options
                .filter((o) => o.startsWith('lowerdir='))
                .flatMap((o) => o.slice('lowerdir='.length).split(':')),
            ];
      const scratch = join(scratchRoot, `discard${n}`);
      await mkdir(join(scratch, 'upper'), { recursive: true });
      await mkdir(join(scratch, 'work'));
      return [
        {
          destination,
          type: 'overlay',
          source: 'overlay',
          options: [`lowerdir=${lowers.join(':')}`, `upperdir=${join(scratch, 'upper')}`, `workdir=${join(scratch, 'work')}`],
        },
      ];
    }
    const ro = mode === 'ro';
    if (m.type === 'bind') {
      return [{ destination, type: 'bind', source: m.source, options: ['rbind', ro ? 'ro' : 'rw'] }];
    }
    return [{ destination, type: m.type, source: m.source, options: [...m.options, ...(ro ? ['ro'] : [])] }];
  }

  /** A new run's container id and bundle path. */
  #newRun(): RunDirs {
    // The pid in the id lets recover() tell a crashed run's leftovers from another process's live run.
    const id = `kiln-${process.pid}-${randomBytes(4).toString('hex')}`;
    return { id, bundle: join(this.#bundles, id) };
  }

  /** The error of a runc binary that is not there. */
  #missing(): WorkerError {
    return new WorkerError('PREREQUISITE_MISSING', `runc not found (${this.#runc})`, { hint: 'apt-get install runc' });
  }

  #runArgs(r: RunDirs): string[] {
    return ['--root', this.#state, '--log', join(r.bundle, 'runc.log'), '--log-format', 'json', 'run', '--bundle', r.bundle, r.id];
  }

  #ensureState(): void {
    if (!this.#stateReady) {
      if (this.#sharedRuntimeParent) checkPrivateRuntimeDir(this.runtimeDir);
      mkdirSync(this.#state, { recursive: true, mode: 0o700 });
      // Whose runtime dir this is: recover() of another root drops it once that root is gone.
      if (this.#sharedRuntimeParent) writeFileSync(join(this.runtimeDir, ROOT_MARKER), this.#root);
      this.#stateReady = true;
    }
  }

  /** Deletes what runc left of container `id` (after a cancel, or a failure in runc itself). */
  async #delete(id: string): Promise<void> {
    await execFileP(this.#runc, ['--root', this.#state, 'delete', '-f', id]).catch(() => undefined);
  }

  /**
   * A non-zero exit that runc's `log` explains is runc's own failure (no container process ran
   * to its end), not the process's exit status: EXEC_FAILED, after deleting what runc left.
   */
  async #runcFailed(id: string, log: string, code: number): Promise<WorkerError | undefined> {
    if (code === 0) return undefined;
    const err = await runcError(log);
    if (err === undefined) return undefined;
    await this.#delete(id);
    return runcFailure(err);
  }

  /**
   * Runs the container of `config` with the pre-started runc `pre` when it takes it, else a new
   * runc. A pre-started runc that died before it read its config (killed from outside, crashed at
   * start) never created the container: the run starts a new runc instead of reporting that exit.
   */
  async #runc_run(
    run: RunDirs,
    config: string,
    pre: PrestartedRunc | undefined,
    output: OutputSinks,
    signal: AbortSignal | undefined,
    afterPrestart = pre !== undefined,
  ): Promise<number> {
    const { id, bundle } = run;
    const log = join(bundle, 'runc.log');
    let child = await pre?.deliver(config);
    const delivered = child === undefined ? undefined : pre;
    if (child === undefined) {
      // A pre-started runc that gave up left its FIFO (writing to it would block) and maybe a log.
      if (afterPrestart) {
        rmSync(join(bundle, 'config.json'), { force: true });
        rmSync(log, { force: true });
      }
      // The spec holds the process environment (secrets exposed with env=): root-only.
      writeFileSync(join(bundle, 'config.json'), config, { mode: 0o600 });
      child = await this.#start(run);
    }
    const streams = Promise.all([splitLines(child.stdout, 'stdout', output), splitLines(child.stderr, 'stderr', output)]);
    let cancelled = false;
    const started = child;
    const onAbort = (): void => {
      cancelled = true;
      void this.#kill(id, started);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted === true) onAbort();
    try {
      const code = await child.exit.catch(async (e: unknown) => {
        // The process helper died under this runc (killed alone): runc and its container run on
        // with nobody to take the result, and the caller removes the bundle. Stop the container
        // (delete -f kills it) before reporting; runc then exits by itself.
        if ((e as { code?: unknown }).code === 'EHELPER') await this.#delete(id);
        throw e;
      });
      // Asked right away: the FIFO closes once this turn of the event loop is over.
      const unread = delivered?.configUnread() === true;
      // Kiln's work between this step and the next overlaps the next runc's start-up.
      this.#prestart.refill();
      await streams;
      if (cancelled) {
        await this.#delete(id);
        throw new WorkerError('CANCELLED', 'process cancelled', { cause: signal?.reason });
      }
      if (unread) {
        signal?.removeEventListener('abort', onAbort);
        return await this.#runc_run(run, config, undefined, output, signal, true);
      }
      const failed = await this.#runcFailed(id, log, code);
      if (failed !== undefined) throw failed;
      return code;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * A stream run ({@link ExecRequest.stdio}): runc started with `child_process.spawn` and pipes on
   * fds 0-2. `runc run` (no terminal, not detached) gives the container pipes of its own and copies
   * between them and its fds 0-2 byte for byte; it exits only once the container's fds 1/2 are
   * copied out, so its stdout is always read to the end (see onAbort). Not through the process
   * helper, which relays output only and gives /dev/null as stdin. Cancellation, runc
   * errors and cleanup as in {@link RuncExecutor.#runc_run}.
   */
  async #runStdio(
    run: RunDirs,
    config: string,
    stdio: ExecStdio,
    output: OutputSinks,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const { id, bundle } = run;
    // The spec holds the process environment: root-only.
    writeFileSync(join(bundle, 'config.json'), config, { mode: 0o600 });
    // If this kiln is killed, the process helper stops the container (runc alone, in its own
    // group, would keep it running), as for runs it starts itself and long-lived containers.
    const drop = onKilnGone([this.#runc, '--root', this.#state, 'kill', id, 'KILL']);
    // Its own process group (as #start's fallback): kiln stops containers on Ctrl-C itself.
    const child = spawn(this.#runc, this.#runArgs(run), { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const exit = childExit(child, () => this.#missing());
    // The container may exit (or never read) while input is pending: EPIPE is not an error here.
    child.stdin.on('error', () => undefined);
    stdio.stdin.pipe(child.stdin);
    const copied = new Promise<void>((resolve) => {
      child.stdout.once('end', resolve);
      child.stdout.once('error', () => resolve());
      // The caller's stream failed or was destroyed: drain the rest so runc is never blocked.
      const gone = (): void => {
        child.stdout.unpipe(stdio.stdout);
        child.stdout.resume();
        resolve();
      };
      stdio.stdout.once('error', gone);
      stdio.stdout.once('close', gone);
    });
    child.stdout.pipe(stdio.stdout);
    const errors = splitLines(child.stderr, 'stderr', output);
    const started: Started = {
      stdout: child.stdout,
      stderr: child.stderr,
      exit,
      running: () => child.exitCode === null && child.signalCode === null,
      hold: () => undefined,
      kill: () => child.kill('SIGKILL'),
    };
    let cancelled = false;
    const onAbort = (): void => {
      cancelled = true;
      // Output not yet taken is dropped: runc copies the container's fd 1 to its own and exits only
      // once that copy is done, so a caller that stopped reading would keep it (and this run) alive.
      child.stdout.unpipe(stdio.stdout);
      child.stdout.resume();
      void this.#kill(id, started);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted === true) onAbort();
    try {
      const code = await exit;
      // The container and runc are gone: nothing reads the caller's stream any more.
      stdio.stdin.unpipe(child.stdin);
      child.stdin.destroy();
      await Promise.all([copied, errors]);
      if (cancelled) {
        await this.#delete(id);
        throw new WorkerError('CANCELLED', 'process cancelled', { cause: signal?.reason });
      }
      const failed = await this.#runcFailed(id, join(bundle, 'runc.log'), code);
      if (failed !== undefined) throw failed;
      return code;
    } finally {
      drop?.();
      signal?.removeEventListener('abort', onAbort);
      stdio.stdin.unpipe(child.stdin);
    }
  }

  /** Kills the container; retried while runc is still creating it. */
  async #kill(id: string, child: Started): Promise<void> {
    for (let i = 0; i < 100 && child.running(); i++) {
      try {
        await execFileP(this.#runc, ['--root', this.#state, 'kill', id, 'KILL']);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /**
   * Starts runc with `args`: through the process helper (no fork of this Node process, whose
   * cost grows with its memory and blocks the event loop: 10-40 ms per container), or with
   * `child_process.spawn` when the helper is unavailable.
   */
  async #start(run: RunDirs, held = true): Promise<Started> {
    const args = this.#runArgs(run);
    // If this kiln is killed, the helper stops the container: runc alone would leave it running.
    const hp = spawnViaHelper(this.#runc, args, { held, onOrphan: [this.#runc, '--root', this.#state, 'kill', run.id, 'KILL'] });
    if (!this.#sealed) {
      this.#sealed = true;
      // After the first start (the helper answers in order): the copy (~10 ms) is made while
      // that runc runs, instead of delaying it; the starts after it use the copy.
      sealViaHelper(this.#runc)?.catch(() => undefined);
    }
    if (hp !== undefined) {
      try {
        const pid = await hp.pid;
        // Observed now: the helper may reap it (or, once the helper is gone, init) and the pid go
        // to another process before a kill below; the kill checks it is still this one.
        const proc = observeProcess(pid);
        let waiting = !held;
        // An exec failure reported after the fork (the helper looks the program up first).
        const exit = hp.exit.then(
          (r) => r.code ?? 128 + (r.signal ?? 0),
          (e: unknown) => {
            // The helper died (killed alone) with this runc waiting for its config: the helper
            // cannot kill it any more, and it may not have opened its FIFO yet (then closing it
            // would not end it either).
            if (waiting && (e as { code?: unknown }).code === 'EHELPER' && proc !== undefined) killQuietly(proc);
            throw (e as { code?: unknown }).code === 'ENOENT' ? this.#missing() : e;
          },
        );
        // A waiting runc's exit is awaited only once it is delivered or discarded: the helper
        // dying first must not be an unhandled rejection (it ended kiln on Ctrl-C).
        if (waiting) exit.catch(() => undefined);
        return {
          stdout: hp.stdout,
          stderr: hp.stderr,
          exit,
          running: () => !hp.done,
          hold: () => {
            waiting = false;
            hp.hold();
          },
          // Not reported done: runc's, unless the helper reaped it and its report is on its way
          // (the start time tells).
          kill: () => {
            if (!hp.done && proc !== undefined) killQuietly(proc);
          },
        };
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code === 'ENOENT') throw this.#missing();
        if (code !== 'EHELPER') throw e;
      }
    }
    // Its own process group (see the process helper): kiln stops containers on Ctrl-C itself.
    const child = spawn(this.#runc, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const exit = childExit(child, () => this.#missing());
    const pipes = [child.stdout, child.stderr] as unknown as Socket[];
    if (!held) {
      child.unref();
      for (const p of pipes) p.unref();
      // Awaited only once it is delivered or discarded (as with the helper above).
      exit.catch(() => undefined);
    }
    return {
      stdout: child.stdout,
      stderr: child.stderr,
      exit,
      running: () => child.exitCode === null && child.signalCode === null,
      hold: () => {
        child.ref();
        for (const p of pipes) p.ref();
      },
      kill: () => child.kill('SIGKILL'),
    };
  }
}

/** The pid in a run's id (`kiln-<pid>-<hex>`, see #newRun): whose run it is. */
function ownerPid(id: string): number | undefined {
  const m = /^kiln-(\d+)-[0-9a-f]+$/.exec(id);
  return m === null ? undefined : Number(m[1]);
}

function runOfLiveProcess(id: string): boolean {
  const pid = ownerPid(id);
  return pid !== undefined && processAlive(pid);
}

/** A process as observed: its pid and start time, which together name it (a reused pid has another start time). */
export interface ObservedProcess {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot (10 ms at USER_HZ 100). */
  readonly started: string;
}

/** Process `pid` as it is now, or undefined when there is none (one read of /proc/<pid>/stat). */
export function observeProcess(pid: number): ObservedProcess | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Field 2 (comm, in parentheses) may hold spaces and ')': fields 3.. follow the last ')'.
  const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  return started === undefined || !/^\d+$/.test(started) ? undefined : { pid, started };
}

/**
 * SIGKILLs an observed process if its pid still names it (the same start time, read right before
 * the kill), so a pid another process took since is left alone. Returns whether it was signalled.
 * Not atomic: the process could still exit, be reaped and its pid be reused between that read
 * and the kill, which takes a pid wrap-around in microseconds (a pidfd would close it; Node has none).
 */
export function killQuietly(proc: ObservedProcess): boolean {
  if (observeProcess(proc.pid)?.started !== proc.started) return false;
  try {
    process.kill(proc.pid, 'SIGKILL');
    return true;
  } catch {
    return false; // gone already
  }
}

/** The file in a default runtime dir that names its kiln root. */
const ROOT_MARKER = 'root';

/**
 * Makes the default runtime dir (`/dev/shm/kiln-<hash of root>`, a name anyone can compute) or
 * checks the one there is kiln's own: a directory of this user, closed to others. One another
 * user made first (rootless kiln puts every user's in /dev/shm) would let them swap the bundles,
 * runc state and shared hosts files of every RUN (config.json holds secret env values).
 */
function checkPrivateRuntimeDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(dir);
  const uid = process.geteuid?.() ?? st.uid;
  // This user's, and writable by it alone (kiln before dca1bb1 made it 711 with its first bundle,
  // as a bundle or shared-file mkdir still does if it was removed meanwhile): nobody else could
  // have put anything there, so it is closed, not refused (an upgrade would fail until reboot).
  if (st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0 && (st.mode & 0o077) !== 0) {
    chmodSync(dir, 0o700);
    return;
  }
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : !st.isDirectory() ? 'not a directory' : `owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}`;
    throw new WorkerError('EXEC_FAILED', `unsafe runtime directory ${dir} (${what}): kiln keeps the RUN steps' bundles and secrets there, and makes it private to its user (mode 700)`, {
      hint: `remove it (sudo rm -rf ${dir}) and run kiln again: another user may have made it`,
    });
  }
}

/**
 * Removes the default runtime dirs (`/dev/shm/kiln-<hash>`) of kiln roots that no longer exist
 * (a deleted temp root, a CI cache): small (shared hosts/resolv.conf files, mount-point
 * skeletons), but in memory, and nothing else ever removes them. Only dirs that name their root
 * and have no run of a live process.
 */
async function dropOrphanedRuntimeDirs(parent: string, own: string): Promise<void> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!/^kiln-[0-9a-f]{12}$/.test(name)) continue;
    const dir = join(parent, name);
    if (dir === own) continue;
    const root = await readFile(join(dir, ROOT_MARKER), 'utf8').catch(() => undefined);
    if (root === undefined || root === '' || existsSync(root)) continue;
    const runs = await readdir(join(dir, 'bundles')).catch(() => [] as string[]);
    if (runs.some(runOfLiveProcess)) continue;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `runc … run --bundle <dir>` processes with a bundle under `bundles`, by bundle dir. */
async function runcProcessesByBundle(bundles: string): Promise<Map<string, ObservedProcess>> {
  const bundleOf = async (pid: string): Promise<string | undefined> => {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '')).split('\0');
    const i = argv.indexOf('--bundle');
    const bundle = i >= 0 ? argv[i + 1] : undefined;
    return bundle !== undefined && argv.includes('run') && bundle.startsWith(`${bundles}/`) ? bundle : undefined;
  };
  const found = new Map<string, ObservedProcess>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const bundle = await bundleOf(name);
    if (bundle === undefined) continue;
    // The start time, then the command line once more: both are the same process's (a pid
    // reused between the two reads of the command line would not still run this bundle).
    const proc = observeProcess(Number(name));
    if (proc !== undefined && (await bundleOf(name)) === bundle) found.set(bundle, proc);
  }
  return found;
}

async function runcError(log: string): Promise<string | undefined> {
  const text = await readFile(log, 'utf8').catch(() => '');
  for (const line of text.split('\n').reverse()) {
    if (line === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' || entry.level === 'fatal') return entry.msg ?? line;
    } catch {
      // not JSON: ignore
    }
  }
  return undefined;
}

function hostsContent(hostname: string, extra: readonly HostEntry[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `127.0.0.1\t${hostname}`,
    ...extra.map((h) => `${h.ip}\t${h.host}`),
  ];
  return `${lines.join('\n')}\n`;
}
