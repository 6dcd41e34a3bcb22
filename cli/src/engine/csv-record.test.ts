import { expect, test } from 'vitest';
import { CsvError, readCsvRecord } from './csv-record.js';

// What Go's encoding/csv (csv.NewReader(strings.NewReader(s)).Read(), default options) returns
// for one line, as buildx reads --cache-to/--cache-from values with it (go-csvvalue).
test.for([
  ['type=local,dest=/c', ['type=local', 'dest=/c']],
  ['a', ['a']],
  ['a,b', ['a', 'b']],
  ['a,b\n', ['a', 'b']],
  ['a,b\r\n', ['a', 'b']],
  // empty fields are fields: between, before and after commas
  ['a,,b', ['a', '', 'b']],
  ['a,b,', ['a', 'b', '']],
  [',a', ['', 'a']],
  [',,', ['', '', '']],
  // no trimming
  [' a , b ', [' a ', ' b ']],
  [' ', [' ']],
  // a quoted field holds commas; "" in it is one quote
  ['"dest=/a,b",mode=max', ['dest=/a,b', 'mode=max']],
  ['type=local,"dest=/a,b"', ['type=local', 'dest=/a,b']],
  ['"a""b",c', ['a"b', 'c']],
  ['a,"foo""",c', ['a', 'foo"', 'c']],
  ['""', ['']],
  ['"",""', ['', '']],
  ['"a",', ['a', '']],
  ['"a",b,"c"', ['a', 'b', 'c']],
  ['"x={""k"":""v, w""}"', ['x={"k":"v, w"}']],
  // go-csvvalue (what buildx calls) strips one trailing \n or \r\n only: a lone \r stays
  ['a,b\r', ['a', 'b\r']],
] as const)('%j reads as encoding/csv reads it', ([line, fields]) => {
  expect(readCsvRecord(line)).toEqual(fields);
});

test('an empty line is no record (encoding/csv: io.EOF)', () => {
  expect(readCsvRecord('')).toEqual([]);
  expect(readCsvRecord('\n')).toEqual([]);
});

// encoding/csv's ParseError column: the 1-based position of the offending quote, or after the last
// character read for a quote never closed.
test.for([
  ['dest="/a,b"', 6, 'bare " in non-quoted-field'],
  ['foo,aa"bb,cc', 7, 'bare " in non-quoted-field'],
  ['a""b,c', 2, 'bare " in non-quoted-field'],
  ['"a word",b"', 11, 'bare " in non-quoted-field'],
  // a space before the quote: the field is not quoted (no TrimLeadingSpace), so its quote is bare
  [' "a,b"', 2, 'bare " in non-quoted-field'],
  ['type=local, "dest=/a,b"', 13, 'bare " in non-quoted-field'],
  ['"a "word","b"', 4, 'extraneous or missing " in quoted-field'],
  ['"', 2, 'extraneous or missing " in quoted-field'],
  ['"""', 4, 'extraneous or missing " in quoted-field'],
  ['type=local,"dest=/a', 13, 'extraneous or missing " in quoted-field'],
  // Go counts bytes: é is two, 🙂 four
  ['dest=/é"', 9, 'bare " in non-quoted-field'],
  ['"é"x', 4, 'extraneous or missing " in quoted-field'],
  ['🙂,"x', 7, 'extraneous or missing " in quoted-field'],
] as const)('%j is refused as encoding/csv refuses it (column %i)', ([line, column, what]) => {
  let err: unknown;
  try {
    readCsvRecord(line);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CsvError);
  expect(err).toMatchObject({ column, message: `parse error on line 1, column ${column}: ${what}` });
});
