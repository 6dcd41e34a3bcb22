// errdefs.Source against what BuildKit puts on the wire, assembled by hand here (not by kiln's
// encoder): the JSON that Go's encoding/json writes for the generated structs (grpcerrors.ToGRPC
// packs typed details as json.Marshal under the typeurl-registered URL), and the protobuf form
// from the .proto field numbers (errdefs.proto Source{info 1, ranges 2}; ops.proto
// SourceInfo{filename 1, data 2, definition 3, language 4}, Range{start 1, end 2},
// Position{Line 1, Character 2}).
import { describe, expect, test } from 'vitest';
import { ERRDEFS_SOURCE_TYPE_URL, errdefsSourceDetail, errdefsSourceFromDetail, sourceLine } from './errdefs-source.js';
import { LLBBridgeCodec } from './messages.js';
import { returnErrorStatus, returnedError } from './return-error.js';
import { len, num, str } from '../../test/wire-bytes.js';

const codec = await LLBBridgeCodec.load();
const te = new TextEncoder();

const DOCKERFILE = '# syntax=example/frontend\nFROM busybox\nFORM x\n';
const DATA_B64 = Buffer.from(DOCKERFILE).toString('base64');

describe('errdefs.Source detail', () => {
  test('the type URL is typeurl path.Join("github.com/moby/buildkit", "errdefs.Source+json")', () => {
    expect(ERRDEFS_SOURCE_TYPE_URL).toBe('github.com/moby/buildkit/errdefs.Source+json');
  });

  test('reads the JSON BuildKit v0.11 writes (gogo tags Line/Character; Character 0 left out)', () => {
    const json = `{"info":{"filename":"Dockerfile","data":"${DATA_B64}","language":"Dockerfile"},"ranges":[{"start":{"Line":3},"end":{"Line":3}}]}`;
    const s = errdefsSourceFromDetail(codec, { typeUrl: 'github.com/moby/buildkit/errdefs.Source+json', value: te.encode(json) });
    expect(s).toEqual({ file: 'Dockerfile', data: new Uint8Array(Buffer.from(DOCKERFILE)), language: 'Dockerfile', ranges: [{ start: { line: 3, column: 1 }, end: { line: 3, column: 1 } }] });
    expect(sourceLine(s?.data ?? new Uint8Array(), 3)).toBe('FORM x');
  });

  test('reads the JSON newer BuildKit writes (protoc-gen-go tags line/character, a definition), keys in any case as Go does', () => {
    const json = `{"info":{"filename":"sub/Dockerfile","data":"${DATA_B64}","definition":{"def":["AAA="]}},"ranges":[{"start":{"line":2,"character":5},"end":{"line":4,"character":1}},{"START":{"LINE":9}}]}`;
    const s = errdefsSourceFromDetail(codec, { typeUrl: ERRDEFS_SOURCE_TYPE_URL, value: te.encode(json) });
    expect(s?.file).toBe('sub/Dockerfile');
    expect(s?.ranges).toEqual([
      { start: { line: 2, column: 6 }, end: { line: 4, column: 2 } },
      { start: { line: 9, column: 1 }, end: { line: 9, column: 1 } },
    ]);
  });

  test('reads the protobuf form from its field numbers under a type URL naming the message', () => {
    const position = (line: number, character: number): number[] => [...num(1, line), ...num(2, character)];
    const info = [...str(1, 'Dockerfile'), ...len(2, te.encode(DOCKERFILE)), ...str(4, 'Dockerfile')];
    const range = [...len(1, position(3, 2)), ...len(2, position(3, 7))];
    const wire = new Uint8Array([...len(1, info), ...len(2, range)]);
    for (const typeUrl of ['type.googleapis.com/errdefs.Source', 'type.googleapis.com/moby.buildkit.v1.errdefs.Source']) {
      expect(errdefsSourceFromDetail(codec, { typeUrl, value: wire })).toEqual({
        file: 'Dockerfile',
        data: new Uint8Array(Buffer.from(DOCKERFILE)),
        language: 'Dockerfile',
        ranges: [{ start: { line: 3, column: 3 }, end: { line: 3, column: 8 } }],
      });
    }
  });

  test('writes the JSON shape of the Go structs: Source{info{filename, data (base64), language}, ranges[{start, end}]}', () => {
    const d = errdefsSourceDetail({ file: 'Dockerfile', data: te.encode(DOCKERFILE), language: 'Dockerfile', ranges: [{ start: { line: 3, column: 1 }, end: { line: 3, column: 4 } }] });
    expect(d.type_url).toBe('github.com/moby/buildkit/errdefs.Source+json');
    expect(new TextDecoder().decode(d.value)).toBe(
      `{"info":{"filename":"Dockerfile","data":"${DATA_B64}","language":"Dockerfile"},"ranges":[{"start":{"Line":3},"end":{"Line":3,"Character":3}}]}`,
    );
  });

  test('other details, malformed JSON and ranges without a line give nothing', () => {
    expect(errdefsSourceFromDetail(codec, { typeUrl: 'github.com/moby/buildkit/errdefs.Vertex+json', value: te.encode('{"digest":"sha256:ab"}') })).toBeUndefined();
    expect(errdefsSourceFromDetail(codec, { typeUrl: ERRDEFS_SOURCE_TYPE_URL, value: te.encode('{"info":') })).toBeUndefined();
    expect(errdefsSourceFromDetail(codec, { typeUrl: ERRDEFS_SOURCE_TYPE_URL, value: te.encode('{"info":{"filename":"F"},"ranges":[{"start":{"Character":2}}]}') })).toEqual({ file: 'F', ranges: [] });
  });
});

describe('Return errors with errdefs.Source', () => {
  test("a Go frontend's Status (message, errdefs.Source JSON only) becomes KLN0610 with the file, line, column and source line", () => {
    const json = `{"info":{"filename":"Dockerfile","data":"${DATA_B64}","language":"Dockerfile"},"ranges":[{"start":{"Line":3},"end":{"Line":3}}]}`;
    // google.rpc.Status{code 1: 2, message 2, details 3: Any{type_url 1, value 2}}
    const status = new Uint8Array([...num(1, 2), ...str(2, 'dockerfile parse error on line 3: unknown instruction: FORM'), ...len(3, [...str(1, ERRDEFS_SOURCE_TYPE_URL), ...len(2, te.encode(json))])]);
    const e = returnedError(codec, codec.decode('Status', status));
    expect(e).toMatchObject({
      code: 'KLN0610',
      message: 'dockerfile parse error on line 3: unknown instruction: FORM',
      location: { file: 'Dockerfile', line: 3, column: 1 },
      source: 'FORM x',
      frontendCode: undefined,
      hint: undefined,
    });
  });

  test("kiln's ErrorInfo location wins over the Source range; the Source of the same file gives the line", () => {
    const error = Object.assign(new Error('unknown instruction: FORM'), { code: 'KLN0401', hint: 'instructions are …', location: { file: 'Dockerfile', line: 3, column: 1 } });
    const status = returnErrorStatus(codec, error, { fileData: (f) => (f === 'Dockerfile' ? te.encode(DOCKERFILE) : undefined) });
    expect(status.details?.map((d) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo', ERRDEFS_SOURCE_TYPE_URL]);
    const e = returnedError(codec, codec.decode('Status', codec.encode('Status', status)));
    expect(e).toMatchObject({ code: 'KLN0610', message: 'unknown instruction: FORM', location: { file: 'Dockerfile', line: 3, column: 1 }, source: 'FORM x', frontendCode: 'KLN0401', hint: 'instructions are …' });
  });

  test('a Source of another file gives no source line', () => {
    const error = Object.assign(new Error('bad'), { code: 'KLN0401', location: { file: 'Dockerfile', line: 3, column: 1 } });
    const other = errdefsSourceDetail({ file: 'other.Dockerfile', data: te.encode(DOCKERFILE), ranges: [{ start: { line: 3, column: 1 }, end: { line: 3, column: 1 } }] });
    const status = returnErrorStatus(codec, error);
    const e = returnedError(codec, { ...status, details: [status.details?.[0] ?? {}, other] });
    expect(e).toMatchObject({ location: { file: 'Dockerfile', line: 3, column: 1 }, source: undefined });
  });

  test('an error without a location sends no Source; one without a code no ErrorInfo', () => {
    expect(returnErrorStatus(codec, Object.assign(new Error('x'), { code: 'KLN0601' })).details?.map((d) => d.type_url)).toEqual(['type.googleapis.com/google.rpc.ErrorInfo']);
    expect(returnErrorStatus(codec, Object.assign(new Error('x'), { location: { file: 'a.ts', line: 2, column: 3 } })).details?.map((d) => d.type_url)).toEqual([ERRDEFS_SOURCE_TYPE_URL]);
    expect(returnErrorStatus(codec, new Error('x'))).toEqual({ code: 2, message: 'x' });
  });
});
