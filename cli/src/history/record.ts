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
  /** 1 as this kiln writes them; a newer kiln's record is read for the fields this one knows. */
  readonly version: number;
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

/**
 * The record in `text`, or undefined when it is not one (a torn or foreign file). A record is
 * read leniently, as written by another kiln version or edited by hand: its required fields
 * (ref, kind, name, status, createdAt, steps.total, exports) must be there; an optional field of
 * the wrong type is left out, a field this kiln does not know is dropped, and times are
 * normalized to UTC ISO 8601. A higher `version` (a newer kiln) is read for what this kiln knows.
 */
export function parseRecord(text: string): HistoryRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  const steps = v['steps'];
  const createdAt = isoTime(v['createdAt']);
  const { ref, kind, name, status, version } = v;
  const ok =
    typeof version === 'number' &&
    Number.isInteger(version) &&
    version >= 1 &&
    typeof ref === 'string' &&
    REF_PATTERN.test(ref) &&
    typeof name === 'string' &&
    (kind === 'build' || kind === 'bake' || kind === 'solve') &&
    (status === 'running' || status === 'completed' || status === 'error' || status === 'canceled') &&
    createdAt !== undefined &&
    Array.isArray(v['exports']) &&
    isObject(steps) &&
    count(steps['total']) !== undefined;
  if (!ok) return undefined;
  const opt = <T>(key: string, value: T | undefined): Record<string, T> => (value === undefined ? {} : { [key]: value });
  const str = (key: string): Record<string, string> => opt(key, typeof v[key] === 'string' ? v[key] : undefined);
  const completedAt = isoTime(v['completedAt']);
  const durationMs = v['durationMs'];
  return {
    version,
    ref,
    kind,
    name,
    ...str('frontend'),
    ...str('context'),
    ...str('dockerfile'),
    ...str('target'),
    ...opt('platforms', strings(v['platforms'])),
    ...opt('buildArgs', stringMap(v['buildArgs'])),
    ...opt('labels', stringMap(v['labels'])),
    ...opt('contexts', stringMap(v['contexts'])),
    ...opt('secrets', strings(v['secrets'])),
    ...opt('ssh', strings(v['ssh'])),
    ...(v['noCache'] === true ? { noCache: true } : {}),
    ...str('call'),
    status,
    createdAt,
    ...opt('completedAt', completedAt),
    ...opt('durationMs', typeof durationMs === 'number' && Number.isFinite(durationMs) ? durationMs : undefined),
    steps: { total: count(steps['total']) ?? 0, cached: count(steps['cached']) ?? 0, completed: count(steps['completed']) ?? 0 },
    ...opt('error', failure(v['error'])),
    exports: (v['exports'] as unknown[]).flatMap((x) => exported(x) ?? []),
    ...opt('log', logOf(v['log'])),
    ...opt('owner', ownerOf(v['owner'])),
  } as HistoryRecord;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-negative integer. */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined;
}

/** A time as UTC ISO 8601 (a hand-edited one may carry an offset). */
function isoTime(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

/** The string values of a map (others left out). */
function stringMap(v: unknown): Record<string, string> | undefined {
  if (!isObject(v)) return undefined;
  const out = Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'));
  return Object.keys(out).length === 0 ? undefined : out;
}

function exported(v: unknown): HistoryExport | undefined {
  if (!isObject(v) || typeof v['type'] !== 'string') return undefined;
  const names = typeof v['names'] === 'string' ? [v['names']] : (strings(v['names']) ?? []);
  const { digest, dest } = v;
  return { type: v['type'], names, ...(typeof digest === 'string' ? { digest } : {}), ...(typeof dest === 'string' ? { dest } : {}), pushed: strings(v['pushed']) ?? [] };
}

function failure(v: unknown): HistoryFailure | undefined {
  if (!isObject(v)) return undefined;
  const { message, report, code, location: l } = v;
  const text = typeof report === 'string' ? report : typeof message === 'string' ? message : undefined;
  if (text === undefined) return undefined;
  const location: HistoryErrorLocation | undefined =
    isObject(l) && typeof l['file'] === 'string' && count(l['line']) !== undefined && count(l['column']) !== undefined
      ? { file: l['file'], line: l['line'] as number, column: l['column'] as number, ...(typeof l['source'] === 'string' ? { source: l['source'] } : {}) }
      : undefined;
  return { message: typeof message === 'string' ? message : (text.split('\n')[0] ?? ''), ...(typeof code === 'string' ? { code } : {}), ...(location === undefined ? {} : { location }), report: text };
}

function logOf(v: unknown): HistoryLog | undefined {
  if (!isObject(v) || count(v['size']) === undefined) return undefined;
  return { size: v['size'] as number, truncated: v['truncated'] === true, limit: count(v['limit']) ?? 0 };
}

/** A running record's process; one that is not (a hand-edited owner) reads as gone: the build was interrupted. */
function ownerOf(v: unknown): HistoryOwner | undefined {
  if (!isObject(v) || count(v['pid']) === undefined || v['pid'] === 0) return undefined;
  const { start, pidNamespace } = v;
  return { pid: v['pid'] as number, ...(typeof start === 'string' ? { start } : {}), ...(typeof pidNamespace === 'string' ? { pidNamespace } : {}) };
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
