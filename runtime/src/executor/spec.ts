import type { NetworkMode, SecurityMode } from '../api/executor.js';
import type { ResolvedUser } from './user.js';

/** One entry of config.json's `mounts`. */
export interface OciMount {
  readonly destination: string;
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/** Docker's default capability set (moby/oci/caps/defaults.go), which BuildKit uses too. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Every capability runc 1.1 knows, by number (0 … 40). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The capabilities in a `/proc/<pid>/status` text's `CapBnd` mask, by name: runc cannot grant a
 * container more than kiln holds (a root in a restricted sandbox may lack some).
 */
export function boundingCapabilities(status: string): string[] {
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) return [...DEFAULT_CAPABILITIES];
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPABILITIES.filter((_c, n) => ((mask >> BigInt(n)) & 1n) === 1n);
}

/** Inputs of {@link buildSpec}, already resolved on the host. */
export interface SpecInput {
  readonly rootPath: string;
  readonly readonlyRoot: boolean;
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: ResolvedUser;
  readonly hostname: string;
  readonly network: NetworkMode;
  readonly security: SecurityMode;
  readonly hostsFile: string;
  readonly resolvConfFile: string;
  /** What `insecure` grants: every capability the caller holds ({@link boundingCapabilities}). */
  readonly insecureCapabilities: readonly string[];
  /** Mounted by runc at `/` before anything else (an overlay rootfs kiln does not mount on the host). */
  readonly rootMount?: OciMount;
  /** Mounts after the standard ones, in order. */
  readonly mounts: readonly OciMount[];
  /** `RLIMIT_*` limits of the process (names as `ulimit` takes them: nofile, nproc, core …). */
  readonly rlimits?: readonly { readonly name: string; readonly soft: number; readonly hard: number }[];
  /** `linux.cgroupsPath` (runc's cgroupfs driver: a path under each controller). */
  readonly cgroupsPath?: string;
  /**
   * `process.terminal`: the process gets a pseudo-terminal on fds 0-2 (a container's tty process),
   * created at this size (`process.consoleSize`): runc otherwise sizes it from its own terminal
   * only after the process started, which saw 0x0 in 3 of 15 `runc exec`s of `stty size`.
   */
  readonly terminal?: { readonly rows: number; readonly cols: number };
  /** Ids that exist where runc runs (rootless kiln's namespace); default all. Below 6, devpts gets no `gid=5`. */
  readonly idsInside?: number;
}

/**
 * The standard container filesystem: /proc, /dev (+pts, shm, mqueue), /sys read-only. `ttyGroup`
 * false: devpts without `gid=5`, for a user namespace where gid 5 does not exist (rootless kiln
 * with one id; runc's own `spec --rootless` drops it likewise), which the kernel refuses.
 */
export function standardMounts(network: NetworkMode, ttyGroup = true): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', ...(ttyGroup ? ['gid=5'] : [])],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    // sysfs can only be mounted from a network namespace of one's own; with the host's, bind it.
    network === 'none'
      ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] }
      : { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

/**
 * A limit as config.json carries it: -1 (`ulimit` unlimited) is RLIM_INFINITY, 2^64-1, which a
 * JavaScript number cannot hold; {@link specJson} writes the placeholder as that exact number.
 */
function rlimitValue(n: number): number | string {
  return n < 0 ? RLIM_INFINITY : n;
}

const RLIM_INFINITY = '__kiln_rlim_infinity__';

/** The spec as config.json text (RLIM_INFINITY written as the exact unsigned 64-bit number). */
export function specJson(spec: Record<string, unknown>): string {
  return JSON.stringify(spec).replaceAll(`"${RLIM_INFINITY}"`, '18446744073709551615');
}

/** What {@link processSpec} needs: the process part of {@link SpecInput}. */
export type ProcessSpecInput = Pick<SpecInput, 'args' | 'env' | 'cwd' | 'user' | 'security' | 'insecureCapabilities' | 'rlimits' | 'terminal'>;

/**
 * The `process` object of config.json, also what `runc exec --process` reads for a process
 * started in a running container (BuildKit's Executor.Exec). Pure.
 */
export function processSpec(i: ProcessSpecInput): Record<string, unknown> {
  const caps = i.security === 'insecure' ? i.insecureCapabilities : DEFAULT_CAPABILITIES;
  const env = i.env.some((e) => e.startsWith('PATH=')) ? [...i.env] : [DEFAULT_PATH, ...i.env];
  return {
    terminal: i.terminal !== undefined,
    ...(i.terminal === undefined ? {} : { consoleSize: { height: i.terminal.rows, width: i.terminal.cols } }),
    user: { uid: i.user.uid, gid: i.user.gid, ...(i.user.additionalGids.length > 0 ? { additionalGids: i.user.additionalGids } : {}) },
    args: i.args,
    env,
    cwd: i.cwd,
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: false,
    // As BuildKit's oci.WithRlimits: `nofile` becomes RLIMIT_NOFILE.
    ...(i.rlimits !== undefined && i.rlimits.length > 0 ? { rlimits: i.rlimits.map((r) => ({ type: `RLIMIT_${r.name.toUpperCase()}`, soft: rlimitValue(r.soft), hard: rlimitValue(r.hard) })) } : {}),
  };
}

/** Builds the OCI runtime spec (config.json) runc runs. Pure. */
export function buildSpec(i: SpecInput): Record<string, unknown> {
  const namespaces: { type: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  // A network namespace without a path: runc creates it and brings `lo` up.
  if (i.network === 'none') namespaces.push({ type: 'network' });
  const sandbox = i.security !== 'insecure';
  return {
    ociVersion: '1.0.2-dev',
    process: processSpec(i),
    root: { path: i.rootPath, readonly: i.readonlyRoot },
    hostname: i.hostname,
    mounts: [
      ...(i.rootMount === undefined ? [] : [i.rootMount]),
      ...standardMounts(i.network, (i.idsInside ?? Infinity) > 5),
      { destination: '/etc/hosts', type: 'bind', source: i.hostsFile, options: ['rbind', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: i.resolvConfFile, options: ['rbind', 'ro'] },
      ...i.mounts,
    ],
    linux: {
      ...(i.cgroupsPath === undefined ? {} : { cgroupsPath: i.cgroupsPath }),
      namespaces,
      resources: { devices: [{ allow: !sandbox, access: 'rwm' }] },
      ...(sandbox ? { maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS } : {}),
    },
  };
}
