// The container messages checked against BuildKit v0.11.6's gateway.proto and ops.proto field
// numbers (tag = field << 3 | wire type; 0 varint, 2 length-delimited), with bytes assembled by
// hand here; pb.Meta and pb.Mount also against llb-core's own ExecOp codec (written from ops.proto
// and checked by the conformance data), which must give the same sub-message bytes.
import { describe, expect, test } from 'vitest';
import { CacheSharingOpt, MountType, NetMode, SecurityMode, encodeOp } from '@kiln/llb-core';
import { processToWire } from './container-wire.js';
import { LLBBridgeCodec } from './messages.js';
import { bytes, len, num, str } from '../../test/wire-bytes.js';

const codec = await LLBBridgeCodec.load();
const te = new TextEncoder();

/** The bodies of the length-delimited fields `field` of a message, read without any codec. */
function subMessages(buf: Uint8Array, field: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  const read = (): number => {
    let n = 0;
    let shift = 1;
    for (;;) {
      const b = buf[i++] as number;
      n += (b & 0x7f) * shift;
      shift *= 128;
      if ((b & 0x80) === 0) return n;
    }
  };
  while (i < buf.length) {
    const key = read();
    const wire = key & 7;
    if (wire === 0) read();
    else if (wire === 2) {
      const n = read();
      if (Math.floor(key / 8) === field) out.push(buf.subarray(i, i + n));
      i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

describe('container messages against gateway.proto (v0.11.6) field numbers', () => {
  test('NewContainerRequest: ContainerID 1, Mounts 2, Network 3, platform 4, constraints 5, extraHosts 6, hostname 7 (v0.12)', () => {
    // pb.Mount: selector 2, dest 3, readonly 5, mountType 6, cacheOpt 20 (ID 1, sharing 2), resultID 23.
    const mount = [...str(2, 'sub'), ...str(3, '/work'), ...num(5, 1), ...num(6, MountType.CACHE), ...len(20, [...str(1, 'go'), ...num(2, CacheSharingOpt.LOCKED)]), ...str(23, 'r-1')];
    expect(mount.slice(-6, -4)).toEqual([0xba, 0x01]); // field 23, length-delimited: a two-byte tag
    const wire = bytes(
      str(1, 'ctr1'),
      len(2, mount),
      num(3, NetMode.NONE),
      len(4, [...str(1, 'amd64'), ...str(2, 'linux')]),
      len(5, str(1, 'os==linux')),
      len(6, [...str(1, 'db'), ...str(2, '10.0.0.2')]),
      str(7, 'box'),
    );
    const m = codec.decode('NewContainerRequest', wire);
    expect(m).toMatchObject({
      ContainerID: 'ctr1',
      Mounts: [{ selector: 'sub', dest: '/work', readonly: true, mountType: 3, cacheOpt: { ID: 'go', sharing: 2 }, resultID: 'r-1' }],
      Network: 2,
      platform: { Architecture: 'amd64', OS: 'linux' },
      constraints: { filter: ['os==linux'] },
      extraHosts: [{ Host: 'db', IP: '10.0.0.2' }],
      hostname: 'box',
    });
    expect(codec.encode('NewContainerRequest', m)).toEqual(wire);
  });

  test('pb.Mount secretOpt 21 and SSHOpt 22 (ID 1, uid 2, gid 3, mode 4, optional 5), TmpfsOpt 19, input 1, output 4', () => {
    const secret = [...str(1, 's'), ...num(2, 1000), ...num(3, 1001), ...num(4, 0o400), ...num(5, 1)];
    const wire = bytes(
      len(2, [...num(1, 2), ...str(3, '/run/s'), ...num(4, 1), ...num(6, MountType.SECRET), ...len(21, secret)]),
      len(2, [...str(3, '/ssh'), ...num(6, MountType.SSH), ...len(22, [...str(1, 'default'), ...num(4, 0o600)])]),
      len(2, [...str(3, '/tmp'), ...num(6, MountType.TMPFS), ...len(19, num(1, 1 << 20))]),
    );
    const m = codec.decode('NewContainerRequest', wire);
    expect(m.Mounts).toMatchObject([
      { input: '2', dest: '/run/s', output: '1', mountType: 1, secretOpt: { ID: 's', uid: 1000, gid: 1001, mode: 0o400, optional: true } },
      { dest: '/ssh', mountType: 2, SSHOpt: { ID: 'default', mode: 0o600 } },
      { dest: '/tmp', mountType: 4, TmpfsOpt: { size: String(1 << 20) } },
    ]);
  });

  test('ReleaseContainerRequest: ContainerID 1', () => {
    expect(codec.decode('ReleaseContainerRequest', bytes(str(1, 'ctr1')))).toEqual({ ContainerID: 'ctr1' });
    expect(codec.encode('ReleaseContainerRequest', { ContainerID: 'ctr1' })).toEqual(bytes(str(1, 'ctr1')));
  });

  test('ExecMessage: ProcessID 1 and the Input oneof: Init 2, File 3, Resize 4, Started 5, Exit 6, Done 7, Signal 8', () => {
    // InitMessage: ContainerID 1, Meta 2 (args 1, env 2, cwd 3, user 4), Fds 3 (packed), Tty 4, Security 5.
    const meta = [...str(1, 'cat'), ...str(1, '-'), ...str(2, 'A=1'), ...str(3, '/w'), ...str(4, 'nobody')];
    const init = bytes(str(1, 'p1'), len(2, [...str(1, 'ctr1'), ...len(2, meta), ...len(3, [0, 1, 2]), ...num(4, 1), ...num(5, SecurityMode.INSECURE)]));
    const m = codec.decode('ExecMessage', init);
    expect(m).toMatchObject({ ProcessID: 'p1', Init: { ContainerID: 'ctr1', Meta: { args: ['cat', '-'], env: ['A=1'], cwd: '/w', user: 'nobody' }, Fds: [0, 1, 2], Tty: true, Security: 1 } });
    expect(codec.encode('ExecMessage', m)).toEqual(init);
    // Fds written unpacked (one varint per element) decode the same.
    expect(codec.decode('ExecMessage', bytes(str(1, 'p1'), len(2, [...num(3, 0), ...num(3, 2)]))).Init?.Fds).toEqual([0, 2]);

    const cases: [Uint8Array, object][] = [
      [bytes(str(1, 'p1'), len(3, [...num(1, 1), ...len(3, te.encode('hi'))])), { ProcessID: 'p1', File: { Fd: 1, Data: te.encode('hi') } }],
      // Fd 0 is proto3's zero: Go leaves it out, so stdin's EOF is `File {EOF: true}`.
      [bytes(str(1, 'p1'), len(3, num(2, 1))), { ProcessID: 'p1', File: { EOF: true } }],
      [bytes(str(1, 'p1'), len(4, [...num(1, 24), ...num(2, 80)])), { ProcessID: 'p1', Resize: { Rows: 24, Cols: 80 } }],
      [bytes(str(1, 'p1'), [0x2a, 0x00]), { ProcessID: 'p1', Started: {} }],
      [bytes(str(1, 'p1'), len(6, [...num(1, 3), ...len(2, [...num(1, 2), ...str(2, 'exit code: 3')])])), { ProcessID: 'p1', Exit: { Code: 3, Error: { code: 2, message: 'exit code: 3' } } }],
      [bytes(str(1, 'p1'), [0x3a, 0x00]), { ProcessID: 'p1', Done: {} }],
      [bytes(str(1, 'p1'), len(8, str(1, 'TERM'))), { ProcessID: 'p1', Signal: { Name: 'TERM' } }],
    ];
    for (const [wire, want] of cases) {
      const got = codec.decode('ExecMessage', wire);
      expect(got).toMatchObject(want);
      expect(codec.encode('ExecMessage', got)).toEqual(wire);
    }
  });

  test('a process with secretEnv is refused, not sent without it: v0.11.6 InitMessage has no secretenv (6)', () => {
    expect(() => processToWire('ctr1', { args: ['sh'], secretEnv: [{ name: 'TOKEN', id: 'tok' }] })).toThrow(expect.objectContaining({ code: 'KLN0615' }));
    expect(processToWire('ctr1', { args: ['sh'], secretEnv: [] })).toEqual({ ContainerID: 'ctr1', Meta: { args: ['sh'] } });
  });

  test('pb.Meta and pb.Mount bytes are the ones llb-core writes inside an ExecOp (Op.exec 2: meta 1, mounts 2)', () => {
    const op = encodeOp({
      kind: 'exec',
      inputs: [],
      exec: {
        meta: { args: ['sh', '-c', 'cat'], env: ['PATH=/bin'], cwd: '/src', user: '1000:1000' },
        mounts: [
          { dest: '/', selector: '/rootfs', readonly: true, resultId: 'ref-9' },
          { dest: '/c', mountType: MountType.CACHE, cacheOpt: { id: 'c1', sharing: CacheSharingOpt.PRIVATE } },
          { dest: '/s', mountType: MountType.SECRET, secretOpt: { id: 'tok', mode: 0o440 } },
        ],
      },
    });
    const exec = subMessages(op, 2)[0] as Uint8Array;
    const [llbMeta] = subMessages(exec, 1);
    const llbMounts = subMessages(exec, 2);

    const ours = codec.encode('ExecMessage', { ProcessID: 'p', Init: { Meta: { args: ['sh', '-c', 'cat'], env: ['PATH=/bin'], cwd: '/src', user: '1000:1000' } } });
    const ourMeta = subMessages(subMessages(ours, 2)[0] as Uint8Array, 2)[0];
    expect(ourMeta).toEqual(llbMeta);

    const req = codec.encode('NewContainerRequest', {
      Mounts: [
        { dest: '/', selector: '/rootfs', readonly: true, resultID: 'ref-9' },
        { dest: '/c', mountType: MountType.CACHE, cacheOpt: { ID: 'c1', sharing: CacheSharingOpt.PRIVATE } },
        { dest: '/s', mountType: MountType.SECRET, secretOpt: { ID: 'tok', mode: 0o440 } },
      ],
    });
    expect(subMessages(req, 2)).toEqual(llbMounts);
  });
});
