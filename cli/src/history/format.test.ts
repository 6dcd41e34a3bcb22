import { describe, expect, test } from 'vitest';
import { formatDuration, formatInspect, formatTable, humanDuration, jsonView, matches, parseFilters } from './format.js';
import type { HistoryRecord } from './record.js';
import { buildName } from './describe.js';

const T = Date.parse('2026-11-30T12:00:00.000Z');
const never = (): boolean => false;

function rec(over: Partial<HistoryRecord>): HistoryRecord {
  return { version: 1, ref: 'qu2gsuo8ejqrwdfii23xkkckt', kind: 'build', name: 'app', status: 'completed', createdAt: new Date(T).toISOString(), durationMs: 1400, steps: { total: 5, cached: 2, completed: 5 }, exports: [], ...over };
}

/** `r` as a build still running: no end yet. */
function running(r: HistoryRecord): HistoryRecord {
  const { durationMs: _, completedAt: __, ...rest } = r;
  return { ...rest, status: 'running' };
}

describe('buildx columns', () => {
  test("humanDuration follows docker's go-units", () => {
    expect(humanDuration(400)).toBe('Less than a second');
    expect(humanDuration(1000)).toBe('1 second');
    expect(humanDuration(59_000)).toBe('59 seconds');
    expect(humanDuration(61_000)).toBe('About a minute');
    expect(humanDuration(5 * 60_000)).toBe('5 minutes');
    expect(humanDuration(80 * 60_000)).toBe('About an hour');
    expect(humanDuration(47 * 3600_000)).toBe('47 hours');
    expect(humanDuration(3 * 86400_000)).toBe('3 days');
    expect(humanDuration(20 * 86400_000)).toBe('2 weeks');
  });

  test('formatDuration: seconds with one decimal under a minute, then minutes and seconds', () => {
    expect(formatDuration(1400)).toBe('1.4s');
    expect(formatDuration(125_000)).toBe('2m  5s');
  });

  test('the ls table: newest given first, statuses, ages, durations; a running build is interrupted once its process is gone', () => {
    const recs = [
      rec({ ref: 'a'.repeat(25), name: 'web (release)', status: 'error', createdAt: new Date(T - 3 * 86400_000).toISOString() }),
      running(rec({ ref: 'b'.repeat(25), owner: { pid: 1 } })),
    ];
    const table = formatTable(recs, { now: T + 2500, noTrunc: false, alive: never });
    expect(table.split('\n')).toEqual([
      'BUILD ID                    NAME            STATUS        CREATED AT      DURATION',
      'aaaaaaaaaaaaaaaaaaaaaaaaa   web (release)   Error         3 days ago      1.4s',
      'bbbbbbbbbbbbbbbbbbbbbbbbb   app             Interrupted   2 seconds ago',
      '',
    ]);
    expect(formatTable([recs[1] as HistoryRecord], { now: T + 2500, noTrunc: false, alive: () => true })).toContain('Running   2 seconds ago   2.5s+');
  });

  test('long names are cut from the left to 36 characters (buildx trimBeginning) unless --no-trunc', () => {
    const long = rec({ name: 'very/long/path/to/a/project/with/many/parts/Dockerfile.release' });
    expect(formatTable([long], { now: T, noTrunc: false, alive: never })).toContain('   ..with/many/parts/Dockerfile.release   ');
    expect(formatTable([long], { now: T, noTrunc: true, alive: never })).toContain(' very/long/path/to/a/project/with/many/parts/Dockerfile.release ');
  });

  test('filters: status with = and !=, an interrupted build counts as canceled; bad filters are KLN0931', () => {
    const done = rec({});
    const broken = rec({ status: 'running', owner: { pid: 1 } });
    expect(matches(done, parseFilters(['status=completed']), never)).toBe(true);
    expect(matches(done, parseFilters(['status!=completed']), never)).toBe(false);
    expect(matches(broken, parseFilters(['status=canceled']), never)).toBe(true);
    expect(matches(broken, parseFilters(['status=running']), () => true)).toBe(true);
    expect(matches(done, parseFilters(['name=app', 'status=completed']), never)).toBe(true);
    expect(() => parseFilters(['status=ok'])).toThrow(expect.objectContaining({ code: 'KLN0931' }));
    expect(() => parseFilters(['duration>30s'])).toThrow(expect.objectContaining({ code: 'KLN0931' }));
  });

  test('json view: status as of now, no process details', () => {
    const v = jsonView(rec({ status: 'running', owner: { pid: 1 } }), never);
    expect(v['status']).toBe('canceled');
    expect(v['interrupted']).toBe(true);
    expect(v['owner']).toBeUndefined();
  });

  test('inspect lists inputs, status, times, steps, exports and the error report', () => {
    const text = formatInspect(
      rec({
        name: 'app (final)',
        frontend: 'dockerfile.v0',
        context: '/src/app',
        dockerfile: '/src/app/Dockerfile',
        target: 'final',
        platforms: ['linux/amd64', 'linux/arm64'],
        buildArgs: { A: '1', B: 'two' },
        secrets: ['npmrc'],
        status: 'error',
        completedAt: new Date(T + 1400).toISOString(),
        exports: [{ type: 'image', names: ['app:1'], digest: 'sha256:cccc', pushed: ['localhost:5000/app:1'] }],
        error: { message: 'Dockerfile:3:1: boom', location: { file: 'Dockerfile', line: 3, column: 1 }, report: 'kiln: error X: Dockerfile:3:1: boom\n  3 | RUN false\n' },
      }),
      { now: T, alive: never },
    );
    expect(text).toContain('Name:           app (final)\n');
    expect(text).toContain('Target:         final\n');
    expect(text).toContain('Platforms:      linux/amd64, linux/arm64\n');
    expect(text).toContain('Build Args:     A=1\n                B=two\n');
    expect(text).toContain('Secrets:        npmrc\n');
    expect(text).toContain('Status:         Error\nCreated:        2026-11-30 12:00:00 UTC\nCompleted:      2026-11-30 12:00:01 UTC\nDuration:       1.4s\n');
    expect(text).toContain('Build Steps:    5 total, 2 cached, 5 completed\n');
    expect(text).toMatch(/\nimage {3}app:1 +sha256:cccc\n {8}pushed localhost:5000\/app:1\n/);
    expect(text).toContain('Error:\nkiln: error X: Dockerfile:3:1: boom\n  3 | RUN false\n');
  });
});

describe('buildName (buildx BuildName)', () => {
  test('the context directory, a non-default Dockerfile with its directory, the target in parentheses', () => {
    expect(buildName({ context: '/work/proj' })).toBe('proj');
    expect(buildName({ context: '/work/proj', dockerfile: '/work/proj/Dockerfile' })).toBe('proj');
    expect(buildName({ context: '/work/proj', dockerfile: '/work/proj/sub/Dockerfile' })).toBe('proj/sub');
    expect(buildName({ context: '/work/proj', dockerfile: '/work/proj/Dockerfile.dev' })).toBe('proj/Dockerfile.dev');
    expect(buildName({ context: '/work/proj', dockerfile: '/other/x.Dockerfile' })).toBe('other/x.Dockerfile');
    expect(buildName({ context: '/work/proj', target: 'release' })).toBe('proj (release)');
    expect(buildName({ context: '-', target: 'release' })).toBe('release');
    expect(buildName({ context: '-' })).toBe('-');
    expect(buildName({ context: '/work/proj', buildArgs: new Map([['BUILDKIT_BUILD_NAME', 'nightly']]) })).toBe('nightly');
  });
});
