import type { Readable, Writable } from 'node:stream';
import type { Mount } from './snapshot.js';

/** `none`: a fresh network namespace with only `lo` (up); `host`: the host's namespace. */
export type NetworkMode = 'none' | 'host';

/** `sandbox`: Docker's default capability set and masked /proc paths; `insecure`: every capability. */
export type SecurityMode = 'sandbox' | 'insecure';

/** The process to run, in BuildKit's ExecOp.Meta terms. */
export interface ProcessSpec {
  readonly args: readonly string[];
  /** `KEY=value` entries, passed as they are. */
  readonly env: readonly string[];
  /** Working directory inside the container; created (owned by the user) if missing. Default `/`. */
  readonly cwd?: string;
  /** `name`, `name:group`, `uid`, `uid:gid` (names resolved in the rootfs' /etc/passwd, /etc/group). Default root. */
  readonly user?: string;
}

/** An extra `/etc/hosts` line (BuildKit's `--add-host`). */
export interface HostEntry {
  readonly host: string;
  readonly ip: string;
}

/**
 * A mount inside the container.
 * - `snapshot`: the mounts of a snapshot (`Snapshotter.mounts`). `ro` is read-only, `rw` writes
 *   into the snapshot (commit it afterwards for an output), `rw-discard` gets a throw-away overlay on top.
 * - `bind`: a host directory (cache mounts), read-only or read-write.
 * - `tmpfs`: a fresh tmpfs; `size` in bytes.
 * - `secret`: a file held in memory: written to a private tmpfs outside the rootfs and bound read-only.
 * - `ssh`: a unix socket inside the container forwarding to the agent at `socket` on the host.
 */
export type ExecMount =
  | { readonly kind: 'snapshot'; readonly target: string; readonly mounts: readonly Mount[]; readonly mode: 'ro' | 'rw' | 'rw-discard' }
  | { readonly kind: 'bind'; readonly target: string; readonly source: string; readonly readonly: boolean }
  | { readonly kind: 'tmpfs'; readonly target: string; readonly size?: number }
  | {
      readonly kind: 'secret';
      readonly target: string;
      readonly data: Uint8Array;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
    }
  | {
      readonly kind: 'ssh';
      readonly target: string;
      /**
       * The agent's socket, or a function asked per connection for the agents to try in turn (a
       * step shared by builds uses the agent of one still attached); none refuses the connection.
       */
      readonly socket: string | (() => readonly string[]);
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
    };

/** One line of process output. */
export interface OutputLine {
  readonly stream: 'stdout' | 'stderr';
  /** The line read as UTF-8, without its newline (invalid bytes become U+FFFD). */
  readonly line: string;
  /** The bytes as the process wrote them, with the newline when the line had one. */
  readonly data: Uint8Array;
  /** Milliseconds since the epoch when the line was read. */
  readonly time: number;
}

/** What {@link Executor.run} needs. */
export interface ExecRequest {
  /** The root filesystem: `Snapshotter.mounts(activeId)` (or of a view, with `readonlyRootfs`). */
  readonly rootfs: readonly Mount[];
  readonly readonlyRootfs?: boolean;
  readonly process: ProcessSpec;
  readonly mounts?: readonly ExecMount[];
  /** Default `none`. */
  readonly network?: NetworkMode;
  /** Default `sandbox`. */
  readonly security?: SecurityMode;
  /** Default `buildkitsandbox`, as BuildKit. */
  readonly hostname?: string;
  readonly extraHosts?: readonly HostEntry[];
  /** Resource limits of the process (`RUN` with `--ulimit`): `nofile` is RLIMIT_NOFILE. */
  readonly rlimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  /** cgroup parent (`--cgroup-parent`): the container's cgroup is `<parent>/<container id>`. */
  readonly cgroupParent?: string;
  readonly signal?: AbortSignal;
  /** Called for every complete line of output as it arrives (a last unterminated line too). */
  readonly onOutput?: (line: OutputLine) => void;
  /**
   * Called (besides `onOutput`) with the lines of each read at once: whole lines with their
   * newlines, or alone a piece without one (a last unterminated line, a 1 MiB piece of a longer
   * line), so the lines in `data` are exactly the lines `onOutput` gets. For a consumer that
   * needs no object per line: a RUN printing 200 MB is 3 million lines, a few thousand reads.
   */
  readonly onOutputLines?: (stream: OutputLine['stream'], data: Uint8Array) => void;
  /** What {@link Executor.prepare} returned for this run, if it was announced; the run uses it up. */
  readonly prepared?: ExecPreparation;
  /**
   * Stream mode: the process's fd 0 reads `stdin` and its fd 1 writes to `stdout`, byte for byte
   * (an external frontend speaks gRPC over them, as buildkitd runs one); stderr still comes through
   * `onOutput`. `stdout` is ended once the process has exited and its output is all written (runc
   * copies the container's fd 1 and holds its own until it exits, so a process that closes its
   * fd 1 and runs on does not end it); `stdin` is read until it ends or the process exits, and is
   * left to the caller afterwards (unpiped, not destroyed). On cancel, output the caller has not
   * taken yet is dropped (a stuck reader cannot hold the run).
   */
  readonly stdio?: ExecStdio;
}

/** The streams of a {@link ExecRequest.stdio} run. */
export interface ExecStdio {
  readonly stdin: Readable;
  readonly stdout: Writable;
}

/**
 * An announced run ({@link Executor.prepare}). `release()` withdraws it when the run will not
 * happen after all (an input failed, the build was cancelled); after the run it does nothing.
 */
export interface ExecPreparation {
  release(): void;
}

/** How the process ended. */
export interface ExecResult {
  /** The exit status; 128+n when killed by signal n. */
  readonly exitCode: number;
  readonly durationMs: number;
}

/**
 * What {@link Executor.newContainer} makes: the filesystem and namespaces of a long-lived
 * container, without a process yet (BuildKit's gateway container before its first Start).
 * Fields as in {@link ExecRequest}.
 */
export interface ContainerRequest {
  readonly rootfs: readonly Mount[];
  readonly readonlyRootfs?: boolean;
  readonly mounts?: readonly ExecMount[];
  /** Default `none`. */
  readonly network?: NetworkMode;
  /** Default `buildkitsandbox`. */
  readonly hostname?: string;
  readonly extraHosts?: readonly HostEntry[];
  readonly cgroupParent?: string;
}

/** A process to start in an {@link ExecContainer} (BuildKit's executor.ProcessInfo). */
export interface ContainerProcessSpec extends ProcessSpec {
  /** Default `sandbox`. The init's mode also decides the container's masked paths and devices. */
  readonly security?: SecurityMode;
  /** A pseudo-terminal on fds 0-2 (`ttySize`, else 24x80, until resized): its output, stderr's too, comes through `stdout`. */
  readonly tty?: boolean;
  readonly ttySize?: { readonly rows: number; readonly cols: number };
  /**
   * Fed to fd 0 until it ends (then fd 0 reads EOF); absent: an empty stdin. When the process
   * exits first, its iterator is returned (as a `for await` `break`: a Node stream's destroys it).
   */
  readonly stdin?: AsyncIterable<Uint8Array>;
  /**
   * Fd 1's bytes as they come, not split into lines; absent: dropped. A returned promise holds
   * further reading of fd 1 until it settles (the process then blocks in its write once the pipe
   * is full); `void` takes output as fast as it comes. A throw or rejection is ignored (output goes on).
   * {@link ExecProcess.wait} resolves after the last chunk's promise settled; the container's
   * release stops waiting for them (an exited process's too).
   */
  readonly stdout?: (chunk: Uint8Array) => void | Promise<void>;
  /** Fd 2's bytes as they come; absent: dropped. Backpressure as `stdout`'s. */
  readonly stderr?: (chunk: Uint8Array) => void | Promise<void>;
}

/** A started process of an {@link ExecContainer}. */
export interface ExecProcess {
  /** Its exit status (128+n when killed by signal n), once its output is all delivered. */
  wait(): Promise<number>;
  /** Sends it a signal by name (`SIGTERM`, `TERM`); nothing happens once it has exited. */
  signal(name: string): Promise<void>;
  /** Resizes its terminal (a `tty` process; otherwise nothing happens). */
  resize(size: { readonly rows: number; readonly cols: number }): Promise<void>;
}

/**
 * A long-lived container (BuildKit's gateway container over executor.Run and executor.Exec).
 * The first {@link ExecContainer.start} runs the init process and creates the container; later
 * ones run more processes in it while the init runs. When the init exits the container is gone:
 * a start then fails with `CONTAINER_EXITED`. The caller must {@link ExecContainer.release} it.
 */
export interface ExecContainer {
  /** The runtime's id of the container (runc's container id). */
  readonly id: string;
  /** Resolves once the process runs (its pid is known); rejects when it could not start. */
  start(process: ContainerProcessSpec): Promise<ExecProcess>;
  /**
   * Kills every process, waits for them, and removes everything made for the container: runc
   * state, bundle, mounts, scratch layers. Idempotent; a start after it fails.
   */
  release(): Promise<void>;
}

/**
 * Runs one process in a container, like BuildKit's executor.Executor.Run. The call resolves when the
 * process has exited and every mount and piece of runtime state made for it is gone; it rejects
 * with `CANCELLED` when `signal` aborts (the container is killed first). A non-zero exit is a result,
 * not an error: the caller decides (and names the command and line).
 */
export interface Executor {
  run(req: ExecRequest): Promise<ExecResult>;
  /**
   * Announces a run that will come once its inputs are ready, so the executor can start what
   * does not depend on them (runc starts ahead and waits for its config). Optional: executors
   * without start-up cost leave it out.
   */
  prepare?(): ExecPreparation;
  /**
   * Makes a long-lived container to start processes in ({@link ExecContainer}). Optional: an
   * executor without it cannot serve a frontend's containers. Nothing runs until the first start.
   */
  newContainer?(req: ContainerRequest): Promise<ExecContainer>;
}
