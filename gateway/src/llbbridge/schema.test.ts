// The schema checked against the wire format upstream's .proto files state (tag = field << 3 |
// wire type; 0 varint, 2 length-delimited), with bytes assembled by hand here, not by the codec.
import { describe, expect, test } from 'vitest';
import { decodeDefinition, encodeDefinition, mkfile, scratch } from '@kiln/llb-core';
import { LLBBridgeCodec } from './messages.js';
import { bytes, len, num, str } from '../../test/wire-bytes.js';

const codec = await LLBBridgeCodec.load();
const te = new TextEncoder();

const definition = await scratch().file(mkfile('/hello', 0o644, 'hi')).marshal();
const D = encodeDefinition(definition);

describe('LLBBridge schema against gateway.proto field numbers', () => {
  test('SolveRequest: Definition 1, Frontend 2, FrontendOpt 3, allowResultReturn 5, allowResultArrayRef 6, FrontendInputs 13, Evaluate 14', () => {
    const wire = bytes(
      len(1, D),
      str(2, 'x'),
      len(3, [...str(1, 'k'), ...str(2, 'v')]),
      num(5, 1),
      num(6, 1),
      len(13, [...str(1, 'context'), ...len(2, D)]),
      num(14, 1),
    );
    expect(wire[wire.length - 2]).toBe(0x70); // field 14, varint
    const m = codec.decode('SolveRequest', wire);
    expect(m).toMatchObject({ Frontend: 'x', FrontendOpt: { k: 'v' }, allowResultReturn: true, allowResultArrayRef: true, Evaluate: true });
    expect(encodeDefinition(decodeDefinition(m.Definition as Uint8Array))).toEqual(D);
    expect(encodeDefinition(decodeDefinition(m.FrontendInputs?.['context'] as Uint8Array))).toEqual(D);
    expect(codec.encode('SolveRequest', m)).toEqual(wire);
  });

  test('Result oneof: refDeprecated 1, refsDeprecated 2, ref 3 (Ref id 1, def 2), refs 4; metadata 10', () => {
    const ref = [...str(1, 'r1'), ...len(2, D)];
    const meta = len(10, [...str(1, 'containerimage.config'), ...len(2, [0x7b, 0x7d])]);
    const single = codec.decode('SolveResponse', bytes(len(3, [...len(3, ref), ...meta])));
    expect(single.result?.ref?.id).toBe('r1');
    expect(single.result?.ref?.def).toEqual(D);
    expect(single.result?.metadata).toEqual({ 'containerimage.config': new Uint8Array([0x7b, 0x7d]) });
    expect(single.result?.refDeprecated).toBeUndefined();

    const old = codec.decode('SolveResponse', bytes(num(1, 0).slice(0, 0), len(3, str(1, 'r0'))));
    expect(old.result?.refDeprecated).toBe('r0');

    const arr = codec.decode('ReturnRequest', bytes(len(1, len(4, len(1, [...str(1, 'linux/amd64'), ...len(2, ref)])))));
    expect(arr.result?.refs?.refs?.['linux/amd64']?.id).toBe('r1');

    const dep = codec.decode('ReturnRequest', bytes(len(1, len(2, len(1, [...str(1, 'linux/amd64'), ...str(2, 'r9')])))));
    expect(dep.result?.refsDeprecated?.refs).toEqual({ 'linux/amd64': 'r9' });

    expect(codec.encode('SolveResponse', { result: { ref: { id: 'r1', def: D }, metadata: { 'containerimage.config': new Uint8Array([0x7b, 0x7d]) } } })).toEqual(
      bytes(len(3, [...len(3, ref), ...meta])),
    );
  });

  test('ReturnRequest.error 2 is a google.rpc.Status (code 1, message 2, details 3 as Any type_url 1, value 2)', () => {
    const wire = bytes(len(2, [...num(1, 2), ...str(2, 'boom'), ...len(3, [...str(1, 'type.googleapis.com/x.Y'), ...len(2, [0xff])])]));
    const m = codec.decode('ReturnRequest', wire);
    expect(m.error).toEqual({ code: 2, message: 'boom', details: [{ type_url: 'type.googleapis.com/x.Y', value: new Uint8Array([0xff]) }] });
    expect(codec.encode('ReturnRequest', m)).toEqual(wire);
  });

  test('fsutil Stat: path 1, mode 2 (uint32 Go FileMode), uid 3, gid 4, size 5, modTime 6 (int64 ns), linkname 7, devmajor 8, devminor 9, xattrs 10', () => {
    const dirMode = 0x80000000 + 0o755;
    const modTime = 1_764_000_000_123_456_789n;
    const stat = [...str(1, 'd'), ...num(2, dirMode), ...num(3, 1000), ...num(4, 1001), ...num(5, 4096), ...num(6, modTime), ...str(7, 'target'), ...num(8, 8), ...num(9, 1), ...len(10, [...str(1, 'user.x'), ...len(2, [1])])];
    const m = codec.decode('StatFileResponse', bytes(len(1, stat)));
    expect(m.stat).toEqual({
      path: 'd',
      mode: dirMode,
      uid: 1000,
      gid: 1001,
      size: '4096',
      modTime: modTime.toString(),
      linkname: 'target',
      devmajor: '8',
      devminor: '1',
      xattrs: { 'user.x': new Uint8Array([1]) },
    });
    const dir = codec.decode('ReadDirResponse', bytes(len(1, stat), len(1, str(1, 'e'))));
    expect(dir.entries?.map((e) => e.path)).toEqual(['d', 'e']);
  });

  test('PongResponse: FrontendAPICaps 1 and LLBCaps 2 (APICap ID 1, Enabled 2, DisabledReasonMsg 5), Workers 3 (ID 1, Labels 2, platforms 3)', () => {
    const platform = [...str(1, 'amd64'), ...str(2, 'linux'), ...str(3, 'v2'), ...str(5, 'sse4')];
    const wire = bytes(
      len(1, [...str(1, 'readfile'), ...num(2, 1)]),
      len(1, [...str(1, 'gateway.exec'), ...str(5, 'no containers')]),
      len(2, [...str(1, 'source.image'), ...num(2, 1)]),
      len(3, [...str(1, 'w0'), ...len(2, [...str(1, 'org.mobyproject.buildkit.worker.executor'), ...str(2, 'oci')]), ...len(3, platform)]),
    );
    const m = codec.decode('PongResponse', wire);
    expect(m.FrontendAPICaps).toEqual([{ ID: 'readfile', Enabled: true }, { ID: 'gateway.exec', DisabledReasonMsg: 'no containers' }]);
    expect(m.LLBCaps).toEqual([{ ID: 'source.image', Enabled: true }]);
    expect(m.Workers?.[0]).toMatchObject({ ID: 'w0', Labels: { 'org.mobyproject.buildkit.worker.executor': 'oci' }, platforms: [{ Architecture: 'amd64', OS: 'linux', Variant: 'v2', OSFeatures: ['sse4'] }] });
  });

  test('WarnRequest: digest 1, level 2, short 3, detail 4, url 5, info 6 (pb.SourceInfo filename 1), ranges 7 (pb.Range start 1/end 2, Position line 1/character 2)', () => {
    const pos = [...num(1, 3), ...num(2, 4)];
    const wire = bytes(str(1, 'sha256:00'), num(2, 1), str(3, 'short'), str(4, 'd1'), str(5, 'https://docs'), len(6, str(1, 'Dockerfile')), len(7, [...len(1, pos), ...len(2, pos)]));
    const m = codec.decode('WarnRequest', wire);
    expect(m).toEqual({
      digest: 'sha256:00',
      level: '1',
      short: te.encode('short'),
      detail: [te.encode('d1')],
      url: 'https://docs',
      info: { filename: 'Dockerfile' },
      ranges: [{ start: { Line: 3, Character: 4 }, end: { Line: 3, Character: 4 } }],
    });
    expect(codec.encode('WarnRequest', m)).toEqual(wire);
  });

  test('ReadFileRequest: Ref 1, FilePath 2, Range 3 (FileRange Offset 1, Length 2); ReadDirRequest IncludePattern 3; StatFileRequest Path 2; EvaluateRequest Ref 1', () => {
    const rf = bytes(str(1, 'r'), str(2, 'Dockerfile'), len(3, [...num(1, 10), ...num(2, 20)]));
    expect(codec.decode('ReadFileRequest', rf)).toEqual({ Ref: 'r', FilePath: 'Dockerfile', Range: { Offset: '10', Length: '20' } });
    expect(codec.encode('ReadFileRequest', { Ref: 'r', FilePath: 'Dockerfile', Range: { Offset: 10, Length: 20 } })).toEqual(rf);
    expect(codec.encode('ReadDirRequest', { Ref: 'r', DirPath: '/', IncludePattern: '*.go' })).toEqual(bytes(str(1, 'r'), str(2, '/'), str(3, '*.go')));
    expect(codec.encode('StatFileRequest', { Ref: 'r', Path: 'a' })).toEqual(bytes(str(1, 'r'), str(2, 'a')));
    expect(codec.encode('EvaluateRequest', { Ref: 'r' })).toEqual(bytes(str(1, 'r')));
    expect(codec.decode('ReadFileResponse', bytes(len(1, [1, 2, 3]))).Data).toEqual(new Uint8Array([1, 2, 3]));
  });

  test('ResolveImageConfigRequest: Ref 1, Platform 2 (Architecture 1, OS 2), ResolveMode 3, LogName 4, ResolverType 5, SessionID 6, StoreID 7; response Digest 1, Config 2, Ref 3', () => {
    const wire = bytes(str(1, 'busybox'), len(2, [...str(1, 'arm64'), ...str(2, 'linux')]), str(3, 'local'), str(4, '[internal] load metadata'), num(5, 1), str(6, 's'), str(7, 'st'));
    expect(codec.decode('ResolveImageConfigRequest', wire)).toEqual({
      Ref: 'busybox',
      Platform: { Architecture: 'arm64', OS: 'linux', OSFeatures: [] },
      ResolveMode: 'local',
      LogName: '[internal] load metadata',
      ResolverType: 1,
      SessionID: 's',
      StoreID: 'st',
    });
    const res = bytes(str(1, 'sha256:ab'), len(2, te.encode('{}')), str(3, 'docker.io/library/busybox:latest'));
    expect(codec.encode('ResolveImageConfigResponse', { Digest: 'sha256:ab', Config: te.encode('{}'), Ref: 'docker.io/library/busybox:latest' })).toEqual(res);
  });

  test('InputsResponse: Definitions 1, a map of pb.Definition that llb-core decodes', () => {
    const m = codec.decode('InputsResponse', bytes(len(1, [...str(1, 'dockerfile'), ...len(2, D)])));
    expect(decodeDefinition(m.Definitions?.['dockerfile'] as Uint8Array).def).toEqual(definition.def);
  });

  test('google.rpc.ErrorInfo (error_details.proto): reason 1, domain 2, metadata 3', () => {
    const wire = bytes(str(1, 'KLN0412'), str(2, 'kiln'), len(3, [...str(1, 'hint'), ...str(2, 'h')]));
    expect(codec.decode('ErrorInfo', wire)).toEqual({ reason: 'KLN0412', domain: 'kiln', metadata: { hint: 'h' } });
    expect(codec.encode('ErrorInfo', { reason: 'KLN0412', domain: 'kiln', metadata: { hint: 'h' } })).toEqual(wire);
  });

  test('grpc.health.v1: HealthCheckResponse.status 1 is SERVING', () => {
    expect(codec.encode('HealthCheckResponse', { status: 1 })).toEqual(bytes(num(1, 1)));
  });

  test('malformed bytes are a KLN0614 error', () => {
    expect(() => codec.decode('SolveRequest', bytes([0x0a, 0x10, 0x01]))).toThrow(expect.objectContaining({ code: 'KLN0614' }));
  });
});
