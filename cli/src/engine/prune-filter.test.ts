import { describe, expect, test } from 'vitest';
import { parseGoDuration, parseRecordFilters, type FilterableRecord } from './prune-filter.js';

const rec = (kind: string, id = 'abc123', description = 'RUN apt-get update'): FilterableRecord => ({ id, kind, description });

describe('parseGoDuration (time.ParseDuration)', () => {
  test.for([
    ['24h', 86_400_000],
    ['30m', 1_800_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['90s', 90_000],
    ['2s', 2000],
    ['500ms', 500],
    ['1h1m1s', 3_661_000],
    ['.5s', 500],
    ['0', 0],
    ['+10m', 600_000],
  ] as const)('%s', ([text, ms]) => {
    expect(parseGoDuration(text, 'x')).toBe(ms);
  });

  test.for(['24', '1d', '', 'h', '-1h', '1h 30m', '10x', '1hh'])('rejects %j', (text) => {
    expect(() => parseGoDuration(text, '--keep-duration')).toThrow(expect.objectContaining({ code: 'KLN0707' }));
  });
});

describe('parseRecordFilters', () => {
  test('until / unused-for give keepDuration; --keep-duration combines (the longer wins)', () => {
    expect(parseRecordFilters(['until=24h'])).toEqual({ keepDuration: 86_400_000 });
    expect(parseRecordFilters(['unused-for=1h30m'])).toEqual({ keepDuration: 5_400_000 });
    expect(parseRecordFilters([], '30m')).toEqual({ keepDuration: 1_800_000 });
    expect(parseRecordFilters(['until=1h'], '2h')).toEqual({ keepDuration: 7_200_000 });
    expect(parseRecordFilters([])).toEqual({});
  });

  test('type= and type== select one kind; repeated type= are alternatives', () => {
    const one = parseRecordFilters(['type=exec.cachemount']).match;
    expect(one?.(rec('exec.cachemount'))).toBe(true);
    expect(one?.(rec('regular'))).toBe(false);
    const any = parseRecordFilters(['type==source.local', 'type=exec.cachemount']).match;
    expect([rec('source.local'), rec('exec.cachemount'), rec('regular')].map((r) => any?.(r))).toEqual([true, true, false]);
    const not = parseRecordFilters(['type!=regular']).match;
    expect([rec('regular'), rec('frontend')].map((r) => not?.(r))).toEqual([false, true]);
  });

  test('selectors in one value (commas) and across values must all match', () => {
    const m = parseRecordFilters(['type=regular,description~=^RUN apt', 'until=1h']);
    expect(m.keepDuration).toBe(3_600_000);
    expect(m.match?.(rec('regular'))).toBe(true);
    expect(m.match?.(rec('regular', 'x', 'COPY . .'))).toBe(false);
    expect(m.match?.(rec('exec.cachemount'))).toBe(false);
  });

  test('id= matches part of the ID (buildx sends it as id~=); description= is exact', () => {
    const id = parseRecordFilters(['id=c12']).match;
    expect(id?.(rec('regular', 'abc123'))).toBe(true);
    expect(id?.(rec('regular', 'zzz'))).toBe(false);
    const d = parseRecordFilters(['description=RUN apt-get update']).match;
    expect(d?.(rec('regular'))).toBe(true);
    expect(d?.(rec('regular', 'a', 'RUN apt-get update && x'))).toBe(false);
  });

  test.for([
    ['type=cachemount', /unknown record type "cachemount"/],
    ['color=red', /unknown key "color"/],
    ['until!=1h', /until takes "=" only/],
    ['until=1d', /invalid --filter until "1d"/],
    ['description~=(', /invalid --filter "description~=\("/],
    ['nonsense', /expected KEY=VALUE/],
    // `kiln prune --filter "$F"` with F unset must not become a prune of everything.
    ['', /invalid --filter "": expected KEY=VALUE/],
    [' , ', /invalid --filter " , ": expected KEY=VALUE/],
    // typo tour 4: buildx refuses these; kiln kept the longer duration without a word
    ['until=24h,until=1h', /filters expect only one value: until is given twice/],
    ['until=24h,unused-for=1h', /conflicting filters "until" and "unused-for"/],
  ] as const)('rejects %s', ([f, msg]) => {
    expect(() => parseRecordFilters([f])).toThrow(expect.objectContaining({ code: 'KLN0707', message: expect.stringMatching(msg) }));
  });
});
