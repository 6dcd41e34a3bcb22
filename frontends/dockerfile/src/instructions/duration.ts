/** Go's time.ParseDuration, for HEALTHCHECK intervals. */

const UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3,
  'μs': 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * Parse a Go duration (`1h30m`, `5s`, `1.5ms`, `0`) into nanoseconds. Throws an Error with Go's
 * message (`time: invalid duration "x"`) when invalid.
 */
export function parseGoDuration(orig: string): number {
  let s = orig;
  let neg = false;
  const quoted = JSON.stringify(orig);
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration ${quoted}`);
  let total = 0;
  while (s !== '') {
    const m = /^([0-9]*)(\.([0-9]*))?/.exec(s);
    const intPart = m?.[1] ?? '';
    const frac = m?.[3];
    if (intPart === '' && (frac === undefined || frac === '')) throw new Error(`time: invalid duration ${quoted}`);
    s = s.slice(m?.[0].length ?? 0);
    let i = 0;
    while (i < s.length && !/[0-9.]/.test(s[i] ?? '')) i++;
    if (i === 0) throw new Error(`time: missing unit in duration ${quoted}`);
    const u = s.slice(0, i);
    s = s.slice(i);
    const unit = UNITS[u];
    if (unit === undefined) throw new Error(`time: unknown unit ${JSON.stringify(u)} in duration ${quoted}`);
    const v = Number(`${intPart === '' ? '0' : intPart}.${frac ?? ''}0`);
    total += Math.trunc(v * unit);
  }
  return neg ? -total : total;
}

/** Format nanoseconds as Go's Duration.String (`1m30s`, `500ms`, `0s`). */
export function formatGoDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = Math.abs(ns);
  let out: string;
  if (u < 1e9) {
    const [unit, div] = u < 1e3 ? ['ns', 1] : u < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    out = `${trimFrac(u / div)}${unit}`;
  } else {
    const h = Math.floor(u / 3600e9);
    u -= h * 3600e9;
    const m = Math.floor(u / 60e9);
    u -= m * 60e9;
    out = `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${trimFrac(u / 1e9)}s`;
  }
  return neg ? `-${out}` : out;
}

function trimFrac(n: number): string {
  return String(Number(n.toFixed(9)));
}
