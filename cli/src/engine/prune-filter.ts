import { EngineError } from './errors.js';
import { parseGoDuration as goDuration } from '@kiln/llb-core';

/**
 * What a `--filter` selector looks at: one `kiln du` / `kiln prune` row. `kind` is the BuildKit
 * UsageRecordType name (`regular`, `source.local`, `exec.cachemount`, `internal`, `frontend`,
 * `source.git.checkout`), or kiln's own `orphan` / `content`.
 */
export interface FilterableRecord {
  readonly id: string;
  readonly kind: string;
  readonly description: string;
}

/** Parsed `--filter` and `--keep-duration` flags of `kiln prune` / `kiln du`. */
export interface RecordSelection {
  /** Keep what was used within this many ms (`until=`, `unused-for=`, `--keep-duration`). */
  readonly keepDuration?: number;
  /** Whether a record matches every selector (absent: no selector, everything matches). */
  readonly match?: (r: FilterableRecord) => boolean;
}

/** The record types `type=` accepts: BuildKit's client.UsageRecordType values. */
export const RECORD_TYPES: readonly string[] = ['regular', 'source.local', 'exec.cachemount', 'frontend', 'internal', 'source.git.checkout'];

/**
 * Parses a Go duration (`time.ParseDuration`: `24h`, `30m`, `1h30m`, `1.5h`, `90s`, `0`), as
 * buildctl's `--keep-duration` and buildx's `until=` take it; returns milliseconds. What Go
 * refuses, and negative durations, are KLN0707 with Go's reason.
 */
export function parseGoDuration(value: string, what: string): number {
  const bad = (why: string): EngineError => new EngineError('KLN0707', `invalid ${what} "${value}": ${why}`, { hint: 'a Go duration such as 24h, 30m, 1h30m or 90s' });
  let ns: number;
  try {
    ns = goDuration(value.trim());
  } catch (e) {
    throw bad((e as Error).message.replace(/^time: /, ''));
  }
  if (ns < 0) throw bad('must not be negative');
  return ns / 1e6;
}

type Op = '==' | '!=' | '~=';
interface Selector {
  readonly key: 'id' | 'type' | 'description';
  readonly op: Op;
  readonly value: string;
  readonly re?: RegExp;
}

/**
 * Parses `--filter` values as `buildx prune --filter` / `buildctl prune --filter` write them:
 * `KEY=VALUE`, `KEY==VALUE`, `KEY!=VALUE`, `KEY~=REGEXP`; one value may hold several selectors
 * separated by commas. Keys: `until` / `unused-for` (a Go duration: keep what was used within it),
 * `type` (a record type, {@link RECORD_TYPES}), `id` (`=` matches as a regular expression, as
 * buildx turns `id=` into `id~=`), `description`. All selectors must match, except that several
 * `type=` selectors are alternatives (any of the types). `keepDuration` (buildctl
 * `--keep-duration`) combines with `until`: the longer one wins. `until` (or `unused-for`) is
 * given once, as buildx requires.
 */
export function parseRecordFilters(filters: readonly string[], keepDuration?: string): RecordSelection {
  let keep = keepDuration === undefined ? undefined : parseGoDuration(keepDuration, '--keep-duration');
  const selectors: Selector[] = [];
  let ageKey: string | undefined;
  // A blank value (`--filter "$F"` with F unset) selects nothing, not everything.
  const blank = filters.find((f) => f.split(',').every((p) => p.trim() === ''));
  if (blank !== undefined) throw new EngineError('KLN0707', `invalid --filter "${blank}": expected KEY=VALUE`, { hint: 'e.g. until=24h, type=exec.cachemount, description~=apt' });
  for (const part of filters.flatMap((f) => f.split(',')).map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^([a-z-]+)\s*(==|!=|~=|=)\s*(.*)$/i.exec(part);
    const bad = (why: string, hint: string): EngineError => new EngineError('KLN0707', `invalid --filter "${part}": ${why}`, { hint });
    if (m === null) throw bad('expected KEY=VALUE', 'e.g. until=24h, type=exec.cachemount, description~=apt');
    const key = (m[1] ?? '').toLowerCase();
    const op = m[2] === '=' ? '==' : (m[2] as Op);
    const value = m[3] ?? '';
    if (key === 'until' || key === 'unused-for') {
      if (op !== '==') throw bad(`${key} takes "=" only`, 'e.g. until=24h');
      // buildx refuses a second value ("filters expect only one value") and the two spellings
      // together ("conflicting filters"); kiln kept the longer of them without a word
      if (ageKey !== undefined) {
        throw ageKey === key
          ? bad(`filters expect only one value: ${key} is given twice`, `give one ${key}=DURATION`)
          : bad(`conflicting filters "until" and "unused-for"`, 'unused-for is the older name of until: give one of them');
      }
      ageKey = key;
      const d = parseGoDuration(value, `--filter ${key}`);
      keep = Math.max(keep ?? 0, d);
      continue;
    }
    if (key === 'type') {
      if (op !== '~=' && !RECORD_TYPES.includes(value)) throw bad(`unknown record type "${value}"`, `use one of ${RECORD_TYPES.join(', ')}`);
      selectors.push(withRegexp({ key, op, value }, part));
      continue;
    }
    if (key === 'id' || key === 'description') {
      // buildx sends `id=X` as `id~=X`: a part of the ID selects the record.
      selectors.push(withRegexp({ key, op: key === 'id' && m[2] === '=' ? '~=' : op, value }, part));
      continue;
    }
    throw bad(`unknown key "${key}"`, 'use until, unused-for, type, id or description');
  }
  const match = selectors.length === 0 ? undefined : matcher(selectors);
  return { ...(keep === undefined || keep === 0 ? {} : { keepDuration: keep }), ...(match === undefined ? {} : { match }) };
}

function withRegexp(s: Selector, part: string): Selector {
  if (s.op !== '~=') return s;
  try {
    return { ...s, re: new RegExp(s.value) };
  } catch (e) {
    throw new EngineError('KLN0707', `invalid --filter "${part}": ${(e as Error).message}`, { hint: 'the value after ~= is a regular expression' });
  }
}

function matcher(selectors: readonly Selector[]): (r: FilterableRecord) => boolean {
  const types = selectors.filter((s) => s.key === 'type' && s.op === '==');
  const rest = selectors.filter((s) => !types.includes(s));
  return (r) => (types.length === 0 || types.some((s) => test(s, r))) && rest.every((s) => test(s, r));
}

function test(s: Selector, r: FilterableRecord): boolean {
  const field = s.key === 'type' ? r.kind : s.key === 'id' ? r.id : r.description;
  switch (s.op) {
    case '==':
      return field === s.value;
    case '!=':
      return field !== s.value;
    case '~=':
      return s.re?.test(field) ?? false;
  }
}
