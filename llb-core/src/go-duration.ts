/**
 * Go's `time.ParseDuration` and `Duration.String`: the durations of HEALTHCHECK flags, kiln/ts
 * image healthchecks and `prune --filter until=` are read the way BuildKit and buildx read them.
 */

const UNIT_NS: Readonly<Record<string, bigint>> = { ns: 1n, us: 1_000n, 'µs': 1_000n, 'μs': 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };
const MAX = 1n << 63n;

/**
 * Nanoseconds of a Go duration (`1h30m`, `5s`, `1.5ms`, `.5s`, `0`), exactly as Go computes them
 * (a fraction is float64(digits) * (unit / 10^n), truncated: `1.001s` is 1001000000). Throws an
 * Error with Go's message (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
 * `time: unknown unit "x" in duration "1x"`).
 */
export function parseGoDuration(orig: string): number {
  const invalid = (): Error => new Error(`time: invalid duration ${JSON.stringify(orig)}`);
  let s = orig;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw invalid();
  let d = 0n;
  while (s !== '') {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2];
    if (whole === '' && (frac === undefined || frac === '')) throw invalid();
    s = s.slice(m?.[0].length ?? 0);
    const u = /^[^0-9.]*/.exec(s)?.[0] ?? '';
    if (u === '') throw new Error(`time: missing unit in duration ${JSON.stringify(orig)}`);
    s = s.slice(u.length);
    const unit = UNIT_NS[u];
    if (unit === undefined) throw new Error(`time: unknown unit ${JSON.stringify(u)} in duration ${JSON.stringify(orig)}`);
    let v = BigInt(whole === '' ? '0' : whole);
    if (v > MAX / unit) throw invalid();
    v *= unit;
    const [f, scale] = leadingFraction(frac ?? '');
    if (f > 0n) {
      // Go: float64 is needed to be nanosecond accurate for fractions of hours.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX) throw invalid();
    }
    d += v;
    if (d > MAX) throw invalid();
  }
  if (!neg && d > MAX - 1n) throw invalid();
  return Number(neg ? -d : d);
}

/** Go's leadingFraction: the digits as an integer and 10^(digits used); precision stops at overflow. */
function leadingFraction(digits: string): [bigint, number] {
  let x = 0n;
  let scale = 1;
  for (const c of digits) {
    const y = x * 10n + BigInt(c);
    if (x > (MAX - 1n) / 10n || y > MAX) break;
    x = y;
    scale *= 10;
  }
  return [x, scale];
}

/** Nanoseconds as Go's Duration.String (`1m30s`, `500ms`, `1.5µs`, `0s`). */
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
