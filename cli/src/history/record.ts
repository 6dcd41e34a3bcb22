import { randomBytes } from 'node:crypto';
import { ownPidNamespace, processStart } from '@kiln/runtime';
import { pidAlive } from '@kiln/solver';

/** What a recorded build ended with; `running` until it ends (or its process dies). */
export type HistoryStatus = 'running' | 'completed' | 'error' | 'canceled';

/** Which command ran the build. */
export type HistoryKind = 'build' | 'bake' | 'solve';

/** One exporter's result, as `kiln build` prints it. */
export interface HistoryExport {
  readonly type: string;
  readonly names: readonly string[];
  /** The root manifest or index digest of an image output. */
  readonly digest?: string;
  /** The file or directory written (`-` for stdout). */
  readonly dest?: string;
  readonly pushed: readonly string[];
}

/** Where an error points in the build file (1-based). */
export interface HistoryErrorLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The instruction as written. */
  readonly source?: string;
}

/** A failed build's error. */
export interface HistoryFailure {
  /** The first line of the message, without the `kiln: error CODE:` prefix. */
  readonly message: string;
  readonly code?: string;
  readonly location?: HistoryErrorLocation;
  /** The whole report as the build printed it (the Dockerfile line, command, exit code, last output lines, hint). */
  readonly report: string;
}

/** The stored progress log of a build (the `--progress=rawjson` stream, gzip-compressed). */
export interface HistoryLog {
  /** Bytes on disk. */
  readonly size: number;
  /** The stream was cut at `limit` bytes: the rest of the step output was not kept. */
  readonly truncated: boolean;
  readonly limit: number;
}

/** The process a running build belongs to: its record is interrupted once that process is gone. */
export interface HistoryOwner {
  readonly pid: number;
  /** `<boot id>:<start time>` of the process (a later process with the same pid differs). */
  readonly start?: string;
  /** Its pid namespace: a pid says nothing in another one. */
  readonly pidNamespace?: string;
}

/**
 * One build as `kiln history` keeps it: BuildKit's BuildHistoryRecord, trimmed to what kiln knows.
 * Secrets and SSH agents appear by id only. Stored as JSON, `version` 1.
 */
export interface HistoryRecord {
  readonly version: 1;
  /** Random id (25 base-36 characters, as BuildKit's identity.NewID). */
  readonly ref: string;
  readonly kind: HistoryKind;
  /** The bake target, or buildx's build name (context / Dockerfile / target); the definition file of `kiln solve`. */
  readonly name: string;
  /** The frontend that ran (`dockerfile.v0`, `kiln/ts`, an image); absent for raw LLB. */
  readonly frontend?: string;
  /** The context directory (`-` for a context read from stdin). */
  readonly context?: string;
  /** The build file (`-` when read from stdin). */
  readonly dockerfile?: string;
  readonly target?: string;
  readonly platforms?: readonly string[];
  readonly buildArgs?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  /** `--build-context` / `--local` names and what they name. */
  readonly contexts?: Readonly<Record<string, string>>;
  /** Secret ids (never values). */
  readonly secrets?: readonly string[];
  /** SSH agent ids. */
  readonly ssh?: readonly string[];
  readonly noCache?: boolean;
  /** `--call` (check, targets), when not a plain build. */
  readonly call?: string;
  readonly status: HistoryStatus;
  /** ISO 8601. */
  readonly createdAt: string;
  readonly completedAt?: string;
  readonly durationMs?: number;
  readonly steps: { readonly total: number; readonly cached: number; readonly completed: number };
  readonly error?: HistoryFailure;
  readonly exports: readonly HistoryExport[];
  readonly log?: HistoryLog;
  /** Only while running. */
  readonly owner?: HistoryOwner;
}

/** A new record ref: 128 random bits in 25 base-36 digits. */
export function newRef(): string {
  return BigInt(`0x${randomBytes(16).toString('hex')}`).toString(36).padStart(25, '0');
}

/** A ref as {@link newRef} makes them. */
const REF_PATTERN = /^[0-9a-z]{25}$/;

/** The record in `text`, or undefined when it is not one (a torn or foreign file). */
export function parseRecord(text: string): HistoryRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const steps = o['steps'] as Record<string, unknown> | undefined;
  const ok =
    o['version'] === 1 &&
    typeof o['ref'] === 'string' &&
    REF_PATTERN.test(o['ref']) &&
    typeof o['name'] === 'string' &&
    (o['kind'] === 'build' || o['kind'] === 'bake' || o['kind'] === 'solve') &&
    (o['status'] === 'running' || o['status'] === 'completed' || o['status'] === 'error' || o['status'] === 'canceled') &&
    typeof o['createdAt'] === 'string' &&
    !Number.isNaN(Date.parse(o['createdAt'])) &&
    Array.isArray(o['exports']) &&
    typeof steps === 'object' &&
    steps !== null &&
    typeof steps['total'] === 'number';
  return ok ? (o as unknown as HistoryRecord) : undefined;
}

let own: HistoryOwner | undefined;

/** This process as the owner of the records of the builds it runs. */
export function ownOwner(): HistoryOwner {
  if (own === undefined) {
    const start = processStart(process.pid);
    const pidNamespace = ownPidNamespace();
    own = { pid: process.pid, ...(start === undefined ? {} : { start }), ...(pidNamespace === undefined ? {} : { pidNamespace }) };
  }
  return own;
}

/**
 * Whether the process that runs a `running` record's build is still there. A record written in
 * another pid namespace (a kiln in another container sharing the root) counts as running: its pid
 * says nothing here.
 */
export function ownerAlive(owner: HistoryOwner | undefined): boolean {
  if (owner === undefined) return false;
  const ns = ownPidNamespace();
  if (owner.pidNamespace !== undefined && ns !== undefined && owner.pidNamespace !== ns) return true;
  if (!pidAlive(owner.pid)) return false;
  if (owner.start === undefined) return true;
  const now = processStart(owner.pid);
  return now === undefined || now === owner.start;
}

/** What `ls` and `inspect` show: a running record whose process is gone was interrupted. */
export type ShownStatus = HistoryStatus | 'interrupted';

/** The status of `rec` as of now. */
export function shownStatus(rec: HistoryRecord, alive: (owner: HistoryOwner | undefined) => boolean = ownerAlive): ShownStatus {
  if (rec.status !== 'running') return rec.status;
  return alive(rec.owner) ? 'running' : 'interrupted';
}
