import { formatBytes } from '@kiln/solver';
import { HistoryError } from './errors.js';
import { shownStatus, type HistoryOwner, type HistoryRecord, type ShownStatus } from './record.js';

/** Liveness of a running record's process (injected by tests). */
export type OwnerCheck = (owner: HistoryOwner | undefined) => boolean;

const STATUS_TEXT: Readonly<Record<ShownStatus, string>> = { running: 'Running', completed: 'Completed', error: 'Error', canceled: 'Canceled', interrupted: 'Interrupted' };

/**
 * docker's go-units HumanDuration, which buildx's `CREATED AT` column uses
 * (`Less than a second`, `About a minute`, `3 days`).
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

/** buildx's duration column: `1.4s` under a minute, else `2m 5s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m ${String(Math.floor(ms / 1000) % 60).padStart(2)}s`;
}

/** The duration shown for `rec`: a running build's so far, with buildx's `+`. */
function durationOf(rec: HistoryRecord, status: ShownStatus, now: number): string {
  if (rec.durationMs !== undefined) return formatDuration(rec.durationMs);
  return status === 'running' ? `${formatDuration(now - Date.parse(rec.createdAt))}+` : '';
}

/** A `--filter` of `kiln history ls`: `status=` or `status!=` (buildx's comparisons), `name=` / `name!=`. */
export interface HistoryFilter {
  readonly key: 'status' | 'name';
  readonly negate: boolean;
  readonly value: string;
}

const STATUSES = ['running', 'completed', 'error', 'canceled'];

/** Parses `--filter` values. */
export function parseFilters(values: readonly string[]): HistoryFilter[] {
  return values.map((v) => {
    const m = /^([a-z]+)(!?=)(.*)$/.exec(v);
    if (m === null || (m[1] !== 'status' && m[1] !== 'name')) {
      throw new HistoryError('KLN0931', `invalid --filter "${v}"`, { hint: 'use status=running|completed|error|canceled, status!=…, name=NAME or name!=NAME' });
    }
    const value = m[3] as string;
    if (m[1] === 'status' && !STATUSES.includes(value)) throw new HistoryError('KLN0931', `invalid status "${value}" in --filter "${v}"`, { hint: `use one of ${STATUSES.join(', ')}` });
    return { key: m[1], negate: m[2] === '!=', value };
  });
}

/** Whether `rec` passes every filter (an interrupted build counts as canceled). */
export function matches(rec: HistoryRecord, filters: readonly HistoryFilter[], alive: OwnerCheck): boolean {
  return filters.every((f) => {
    const shown = shownStatus(rec, alive);
    const actual = f.key === 'name' ? rec.name : shown === 'interrupted' ? 'canceled' : shown;
    return (actual === f.value) !== f.negate;
  });
}

/** `ls` order, as buildx's: builds still running first, then the others, each newest first (`recs` come newest first). */
export function lsOrder(recs: readonly HistoryRecord[], alive: OwnerCheck): HistoryRecord[] {
  const running = recs.filter((r) => shownStatus(r, alive) === 'running');
  return [...running, ...recs.filter((r) => !running.includes(r))];
}

/** buildx's trimBeginning: a name longer than `n` keeps its last `n - 2` characters after `..`. */
function trimBeginning(s: string, n: number): string {
  return s.length <= n ? s : `..${s.slice(s.length - n + 2)}`;
}

/** buildx's `history ls` table: BUILD ID, NAME, STATUS, CREATED AT, DURATION; long names cut from the left. */
export function formatTable(recs: readonly HistoryRecord[], o: { readonly now: number; readonly noTrunc: boolean; readonly alive: OwnerCheck }): string {
  const rows = [['BUILD ID', 'NAME', 'STATUS', 'CREATED AT', 'DURATION']];
  for (const rec of recs) {
    const status = shownStatus(rec, o.alive);
    const name = o.noTrunc ? rec.name : trimBeginning(rec.name, 36);
    rows.push([rec.ref, name, STATUS_TEXT[status], `${humanDuration(o.now - Date.parse(rec.createdAt))} ago`, durationOf(rec, status, o.now)]);
  }
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('').trimEnd()).join('\n') + '\n';
}

/** The JSON view of a record: its stored fields with the status as of now (no process details). */
export function jsonView(rec: HistoryRecord, alive: OwnerCheck): Record<string, unknown> {
  const { owner: _, ...rest } = rec;
  const status = shownStatus(rec, alive);
  return { ...rest, status: status === 'interrupted' ? 'canceled' : status, ...(status === 'interrupted' ? { interrupted: true } : {}) };
}

const utc = (iso: string): string => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;

/** `kiln history inspect`: buildx's field list, then exports, the log and the error. */
export function formatInspect(rec: HistoryRecord, o: { readonly now: number; readonly alive: OwnerCheck }): string {
  const status = shownStatus(rec, o.alive);
  const lines: string[] = [];
  const field = (label: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') lines.push(`${`${label}:`.padEnd(16)}${value}`);
  };
  const map = (label: string, m: Readonly<Record<string, string>> | undefined): void => {
    const entries = Object.entries(m ?? {});
    entries.forEach(([k, v], i) => lines.push(`${(i === 0 ? `${label}:` : '').padEnd(16)}${k}=${v}`));
  };
  field('ID', rec.ref);
  field('Name', rec.name);
  field('Command', `kiln ${rec.kind}`);
  field('Frontend', rec.frontend);
  field('Context', rec.context);
  field(rec.kind === 'solve' ? 'Definition' : 'Dockerfile', rec.dockerfile);
  field('Target', rec.target);
  field('Platforms', rec.platforms?.join(', '));
  map('Build Args', rec.buildArgs);
  map('Labels', rec.labels);
  map(rec.kind === 'solve' ? 'Local Dirs' : 'Contexts', rec.contexts);
  field('Secrets', rec.secrets?.join(', '));
  field('SSH', rec.ssh?.join(', '));
  field('No Cache', rec.noCache === true ? 'true' : undefined);
  field('Call', rec.call);
  lines.push('');
  field('Status', STATUS_TEXT[status]);
  field('Created', utc(rec.createdAt));
  field('Completed', rec.completedAt === undefined ? undefined : utc(rec.completedAt));
  field('Duration', durationOf(rec, status, o.now));
  field('Build Steps', `${rec.steps.total} total, ${rec.steps.cached} cached, ${rec.steps.completed} completed`);
  if (rec.log !== undefined) field('Log', `${formatBytes(rec.log.size)} (gzip)${rec.log.truncated ? `, truncated at ${formatBytes(rec.log.limit)}: later step output was not kept` : ''}`);
  if (status === 'interrupted') field('Note', `kiln (pid ${rec.owner?.pid ?? '?'}) ended before the build did: no result or log was recorded`);
  if (rec.exports.length > 0) {
    lines.push('', 'Exports:');
    const rows = [['TYPE', 'NAME / DEST', 'DIGEST']];
    for (const x of rec.exports) {
      rows.push([x.type, [...x.names, ...(x.dest === undefined ? [] : [x.dest])].join(', '), x.digest ?? '']);
      for (const p of x.pushed) rows.push(['', `pushed ${p}`, '']);
    }
    const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    for (const r of rows) lines.push(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('').trimEnd());
  }
  if (rec.error !== undefined) lines.push('', 'Error:', ...rec.error.report.trimEnd().split('\n'));
  return `${lines.join('\n')}\n`;
}
