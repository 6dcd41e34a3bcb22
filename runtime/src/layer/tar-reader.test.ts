import { describe, expect, test } from 'vitest';
import { tarOf, type TarEntry } from '../../test/helpers/tar.js';
import { TarReader, type TarEntryHeader } from './tar-reader.js';

type Entry = TarEntry;

interface Seen {
  readonly header: TarEntryHeader;
  body: string;
  ended: boolean;
}

/** Parses `tar` pushed in pieces of `step` bytes. */
function parse(tar: Buffer, step = tar.length): { entries: Seen[]; reader: TarReader } {
  const entries: Seen[] = [];
  const reader = new TarReader({
    entry: (header) => entries.push({ header, body: '', ended: false }),
    data: (chunk) => {
      const e = entries[entries.length - 1];
      if (e !== undefined) e.body += chunk.toString('utf8');
    },
    end: () => {
      const e = entries[entries.length - 1];
      if (e !== undefined) e.ended = true;
    },
  });
  for (let off = 0; off < tar.length; off += step) reader.push(tar.subarray(off, off + step));
  reader.finish();
  return { entries, reader };
}

/** A raw 512-byte header with a valid checksum. */
function rawHeader(fields: { name: string; type: string; size?: number; uid?: Buffer; magic?: string }): Buffer {
  const b = Buffer.alloc(512);
  b.write(fields.name, 0, 100, 'utf8');
  b.write('0000644\0', 100, 'ascii');
  if (fields.uid !== undefined) fields.uid.copy(b, 108);
  else b.write('0000000\0', 108, 'ascii');
  b.write('0000000\0', 116, 'ascii');
  b.write(`${(fields.size ?? 0).toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  b.write('14545702200\0', 136, 'ascii');
  b.write(fields.type, 156, 'latin1');
  b.write(fields.magic ?? 'ustar  \0', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return b;
}

function padded(body: string): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

describe('TarReader', () => {
  test('ustar entries in any chunking: headers, data, PAX long names and link names', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(130)}`;
    const tar = await tarOf([
      { name: 'dir/', type: 'directory', mode: 0o750, uid: 12, gid: 34 },
      { name: 'dir/a.txt', mode: 0o4755, uid: 5, gid: 6, body: 'hello' },
      { name: long, body: 'x'.repeat(700) },
      { name: 'dir/l', type: 'symlink', linkname: `/${'t'.repeat(150)}` },
      { name: 'dir/h', type: 'link', linkname: 'dir/a.txt' },
    ]);
    for (const step of [tar.length, 512, 100, 7]) {
      const { entries, reader } = parse(tar, step);
      expect(reader.entries).toBe(5);
      expect(entries.map((e) => [e.header.name, e.header.type, e.ended])).toEqual([
        ['dir/', 'directory', true],
        ['dir/a.txt', 'file', true],
        [long, 'file', true],
        ['dir/l', 'symlink', true],
        ['dir/h', 'link', true],
      ]);
      const a = entries[1] as Seen;
      expect(a.body).toBe('hello');
      expect([a.header.mode & 0o7777, a.header.uid, a.header.gid, a.header.size]).toEqual([0o4755, 5, 6, 5]);
      expect(a.header.mtime).toBe(Date.parse('2024-01-01T00:00:00Z') / 1000);
      expect(entries[2]?.body).toBe('x'.repeat(700));
      expect(entries[3]?.header.linkname).toBe(`/${'t'.repeat(150)}`);
      expect(entries[4]?.header.linkname).toBe('dir/a.txt');
    }
  });

  test('GNU long names, base-256 numbers, PAX uid/gid/mtime, global PAX headers skipped, old-style directories', () => {
    const longName = `${'n'.repeat(200)}.txt`;
    const uid256 = Buffer.from([0x80, 0, 0, 0, 0, 0x01, 0x00, 0x00]); // 65536
    const paxRecords = (recs: Record<string, string>): string =>
      Object.entries(recs)
        .map(([k, v]) => {
          const body = ` ${k}=${v}\n`;
          let len = body.length + 1;
          while (String(len).length + body.length !== len) len = String(len).length + body.length;
          return `${len}${body}`;
        })
        .join('');
    const pax = paxRecords({ uid: '3000000', gid: '42', mtime: '1700000000.5', path: 'pax/name' });
    const global = paxRecords({ comment: 'ignored', uid: '7' });
    const tar = Buffer.concat([
      rawHeader({ name: '././@LongLink', type: 'L', size: longName.length + 1 }),
      padded(`${longName}\0`),
      rawHeader({ name: 'short', type: '0', size: 2 }),
      padded('hi'),
      rawHeader({ name: 'big-uid', type: '0', uid: uid256 }),
      rawHeader({ name: 'pax_global_header', type: 'g', size: global.length, magic: 'ustar\u000000' }),
      padded(global),
      rawHeader({ name: 'PaxHeaders/x', type: 'x', size: pax.length, magic: 'ustar\u000000' }),
      padded(pax),
      rawHeader({ name: 'ignored-name', type: '0' }),
      rawHeader({ name: 'olddir/', type: '\0', magic: '\0\0\0\0\0\0' }),
      Buffer.alloc(1024),
      Buffer.from('trailing bytes after the end blocks are not parsed'),
    ]);
    const { entries, reader } = parse(tar, 64);
    expect(reader.entries).toBe(4);
    expect(entries[0]?.header.name).toBe(longName);
    expect(entries[0]?.body).toBe('hi');
    expect(entries[1]?.header.uid).toBe(65536);
    expect(entries[2]?.header).toMatchObject({ name: 'pax/name', uid: 3000000, gid: 42, mtime: 1700000000.5 });
    expect(entries[3]?.header).toMatchObject({ name: 'olddir/', type: 'directory' });
  });

  test('corrupt and truncated archives are LAYER_INVALID', async () => {
    const tar = await tarOf([{ name: 'f', body: 'data' }]);
    const bad = Buffer.from(tar);
    bad[10] = 0x41; // a name byte: the checksum no longer matches
    expect(() => parse(bad)).toThrow(expect.objectContaining({ code: 'LAYER_INVALID', message: expect.stringMatching(/checksum/) }));
    expect(() => parse(tar.subarray(0, 600))).toThrow(expect.objectContaining({ code: 'LAYER_INVALID', message: expect.stringMatching(/unexpected end/) }));
    expect(() => parse(tar.subarray(0, 300))).toThrow(expect.objectContaining({ code: 'LAYER_INVALID' }));
    // One zero block followed by a header: Go's archive/tar refuses it too.
    const afterZero = Buffer.concat([Buffer.alloc(512), tar]);
    expect(() => parse(afterZero)).toThrow(expect.objectContaining({ code: 'LAYER_INVALID', message: expect.stringMatching(/end-of-archive/) }));
    // An archive may end without its end blocks, or after one of them.
    expect(parse(tar.subarray(0, 1024)).entries.map((e) => e.body)).toEqual(['data']);
    expect(parse(tar.subarray(0, 1536)).entries.map((e) => e.body)).toEqual(['data']);
  });

  test('links, directories, devices and fifos have no data section whatever their size field says (as Go)', () => {
    const tar = Buffer.concat([
      rawHeader({ name: 'h', type: '1', size: 5 }),
      rawHeader({ name: 'd', type: '5', size: 700 }),
      rawHeader({ name: 'old/', type: '\0', size: 3 }),
      rawHeader({ name: 'f', type: '0', size: 2 }),
      padded('hi'),
      Buffer.alloc(1024),
    ]);
    const { entries } = parse(tar, 100);
    expect(entries.map((e) => [e.header.name, e.header.type, e.body, e.ended])).toEqual([
      ['h', 'link', '', true],
      ['d', 'directory', '', true],
      ['old/', 'directory', '', true],
      ['f', 'file', 'hi', true],
    ]);
  });

  describe('PAX records as Go archive/tar reads them', () => {
    /** One PAX record, its length prefix counting itself. */
    const rec = (key: string, value: string | Buffer): Buffer => {
      const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len = String(len).length + body.length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    };
    /** An archive of one PAX extended header (raw `records`) and the entry it applies to. */
    const paxTar = (records: Buffer, entry: { name?: string; type?: string; size?: number; body?: string } = {}): Buffer =>
      Buffer.concat([
        rawHeader({ name: 'PaxHeaders/f', type: 'x', size: records.length, magic: 'ustar\x0000' }),
        records,
        Buffer.alloc((512 - (records.length % 512)) % 512),
        rawHeader({ name: entry.name ?? 'f', type: entry.type ?? '0', size: entry.size ?? (entry.body ?? '').length, magic: 'ustar\x0000' }),
        padded(entry.body ?? ''),
        Buffer.alloc(1024),
      ]);
    const header = (records: Buffer, entry?: Parameters<typeof paxTar>[1]): TarEntryHeader => {
      const e = parse(paxTar(records, entry)).entries[0];
      if (e === undefined) throw new Error('no entry');
      return e.header;
    };
    const rejects = (records: Buffer, entry?: Parameters<typeof paxTar>[1]): void => {
      expect(() => parse(paxTar(records, entry))).toThrow(expect.objectContaining({ code: 'LAYER_INVALID' }));
    };

    test('numbers are strict decimal (strconv.ParseInt): 0x10, spaces, exponents, fractions rejected; a sign accepted', () => {
      for (const bad of ['0x10', ' 10', '10 ', '1e2', '1.5', '', '0b1', '1_000']) {
        if (bad === '') continue; // an empty value keeps the header's field (next test)
        rejects(rec('uid', bad));
        rejects(rec('size', bad), { body: '' });
      }
      expect(header(rec('uid', '+42')).uid).toBe(42);
      expect(header(Buffer.concat([rec('gid', '-7'), rec('uid', '0010')])).gid).toBe(-7);
      expect(header(rec('uid', '0010')).uid).toBe(10);
      expect(header(rec('size', '3'), { body: 'abc' }).size).toBe(3);
    });

    test('mtime as parsePAXTime: fraction cut at 9 digits and signed like the seconds', () => {
      expect(header(rec('mtime', '1700000000.5')).mtime).toBe(1700000000.5);
      expect(header(rec('mtime', '-1.5')).mtime).toBe(-1.5);
      expect(header(rec('mtime', '-0.25')).mtime).toBe(-0.25);
      expect(header(rec('mtime', '1.')).mtime).toBe(1);
      expect(header(rec('mtime', '2.1234567891234')).mtime).toBeCloseTo(2.123456789, 9);
      for (const bad of ['.5', '1.5x', '1.-5', '0x10', '1e3', '+.5', '1..2']) rejects(rec('mtime', bad));
    });

    test('an empty value keeps the ustar field; a negative size is refused only where there is data', () => {
      const h = header(Buffer.concat([rec('path', ''), rec('size', '')]), { name: 'ustar-name', body: 'xy' });
      expect([h.name, h.size]).toEqual(['ustar-name', 2]);
      expect(header(rec('size', '-1'), { name: 'd/', type: '5' }).type).toBe('directory');
      rejects(rec('size', '-1'), { name: 'f', type: '0' });
    });

    test('malformed records fail the layer: short length, no newline at the end, no =, NUL in a path', () => {
      rejects(Buffer.from('3 a\n'));
      rejects(Buffer.from('11 uid=10\n')); // the length runs past the newline
      rejects(Buffer.from('9 uid=10X')); // does not end in a newline
      rejects(Buffer.from('8 uid10\n'));
      rejects(rec('path', 'a\0b'));
      rejects(Buffer.from('0x9 uid=1\n'));
    });

    test('SCHILY.xattr.* records reach the header as raw bytes, NULs and high bytes included', () => {
      const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
      const h = header(Buffer.concat([rec('SCHILY.xattr.security.capability', cap), rec('SCHILY.xattr.user.note', 'h\u00e9')]), { body: 'x' });
      expect(h.xattrs?.get('security.capability')).toEqual(cap);
      expect(h.xattrs?.get('user.note')?.toString('utf8')).toBe('h\u00e9');
      expect(header(rec('uid', '1')).xattrs).toBeUndefined();
    });

    test('GNU sparse PAX 1.0, 0.1 and 0.0 expand to the real name and size, holes as zeros', () => {
      const expected = Buffer.concat([Buffer.from('abcd'), Buffer.alloc(86), Buffer.from('xyz'), Buffer.alloc(7)]).toString('utf8');
      const lines = Buffer.from('2\n0\n4\n90\n3\n');
      const map1 = Buffer.concat([lines, Buffer.alloc(512 - lines.length)]);
      const v1 = Buffer.concat([rec('GNU.sparse.major', '1'), rec('GNU.sparse.minor', '0'), rec('GNU.sparse.name', 'real/name'), rec('GNU.sparse.realsize', '100')]);
      for (const step of [1, 7, 512, 4096]) {
        const tar = paxTar(v1, { name: 'GNUSparseFile.1/name', size: 519, body: `${map1.toString('latin1')}abcdxyz` });
        const [e, ...rest] = parse(tar, step).entries;
        expect(rest).toEqual([]);
        expect(e?.header).toMatchObject({ name: 'real/name', size: 100, type: 'file' });
        expect(e?.body).toBe(expected);
        expect(e?.ended).toBe(true);
      }
      const v01 = Buffer.concat([rec('GNU.sparse.size', '100'), rec('GNU.sparse.numblocks', '2'), rec('GNU.sparse.name', 'n01'), rec('GNU.sparse.map', '0,4,90,3')]);
      expect(parse(paxTar(v01, { name: 'GNUSparseFile.2/n01', body: 'abcdxyz' })).entries[0]).toMatchObject({ header: { name: 'n01', size: 100 }, body: expected });
      const v00 = Buffer.concat([
        rec('GNU.sparse.size', '100'),
        rec('GNU.sparse.numblocks', '2'),
        rec('GNU.sparse.offset', '0'),
        rec('GNU.sparse.numbytes', '4'),
        rec('GNU.sparse.offset', '90'),
        rec('GNU.sparse.numbytes', '3'),
      ]);
      expect(parse(paxTar(v00, { name: 'n00', body: 'abcdxyz' })).entries[0]).toMatchObject({ header: { name: 'n00', size: 100 }, body: expected });
    });

    test('a 1.0 sparse map near the 1 MiB limit is read in linear time, complete or hostile', () => {
      // Each map block used to re-parse the whole map read so far: a ~1 MiB map blocked the event
      // loop for ~30 s (and ~20 s for this valid one). Linear, both take well under a second.
      const count = 100_000;
      const lines = [String(count)];
      for (let i = 0; i < count; i++) lines.push(String(2 * i), '1');
      const map = Buffer.from(`${lines.join('\n')}\n`);
      const mapBlocks = Buffer.concat([map, Buffer.alloc((512 - (map.length % 512)) % 512)]);
      const v1 = Buffer.concat([rec('GNU.sparse.major', '1'), rec('GNU.sparse.minor', '0'), rec('GNU.sparse.realsize', String(2 * count))]);
      const t0 = performance.now();
      const [e] = parse(paxTar(v1, { size: mapBlocks.length + count, body: `${mapBlocks.toString('latin1')}${'x'.repeat(count)}` }), 512).entries;
      expect(e?.header.size).toBe(2 * count);
      expect(e?.body).toBe('x\0'.repeat(count));
      const hostile = Buffer.from(`999999999\n${'1\n'.repeat(1 << 19)}`);
      rejects(v1, { body: hostile.toString('latin1') });
      expect(performance.now() - t0).toBeLessThan(5_000);
    });

    test('a bad sparse map fails the layer; unknown sparse versions and old GNU S entries are refused by name', () => {
      const v01 = (map: string, blocks = '2', size = '100'): Buffer =>
        Buffer.concat([rec('GNU.sparse.size', size), rec('GNU.sparse.numblocks', blocks), rec('GNU.sparse.map', map)]);
      rejects(v01('0,4,2,3'), { body: 'abcdxyz' }); // overlapping
      rejects(v01('0,4,98,3'), { body: 'abcdxyz' }); // past the size
      rejects(v01('0,4,90,3'), { body: 'abcdxy' }); // maps more data than there is
      rejects(v01('0,4,90,3', '3'), { body: 'abcdxyz' }); // count mismatch
      rejects(v01('0,4,90,0x3'), { body: 'abcdxyz' });
      rejects(Buffer.concat([rec('GNU.sparse.numbytes', '4'), rec('GNU.sparse.offset', '0'), rec('GNU.sparse.size', '4')]), { body: 'abcd' }); // 0.0 order
      expect(() => parse(paxTar(Buffer.concat([rec('GNU.sparse.major', '2'), rec('GNU.sparse.minor', '0'), rec('GNU.sparse.name', 'future')]), { body: 'x' }))).toThrow(
        expect.objectContaining({ code: 'LAYER_UNSUPPORTED', message: expect.stringContaining('"future"') }),
      );
      const oldGnu = Buffer.concat([rawHeader({ name: 'old-sparse', type: 'S', size: 0 }), Buffer.alloc(1024)]);
      expect(() => parse(oldGnu)).toThrow(expect.objectContaining({ code: 'LAYER_UNSUPPORTED', message: expect.stringContaining('"old-sparse"') }));
    });
  });
});
