// Unknown protobuf fields, as BuildKit v0.11.6 treats them. Its solver/pb is generated with
// `protoc --gogofaster_out` (solver/pb/generate.go), which turns XXX_unrecognized off: the
// structs have no field for unknown bytes, each Unmarshal's `default:` branch skips them with
// skipOps (groups included) and Marshal writes only known fields, in field-number order. So an
// op that BuildKit marshals again (a source-policy conversion) loses its unknown fields, while
// every op it only digests keeps its bytes. Bytes here are assembled with the writer primitives,
// once with unknown fields at every nesting level and once without; the codec must turn the
// first into the second.
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { decodeDefinition, encodeDefinition } from './definition-codec.js';
import { decodeOp, encodeOp } from './op-codec.js';
import { PbWriter } from './writer.js';
import { digestOf } from '../digest.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fixed(w: PbWriter, n: number): void {
  w.ensure(n);
  for (let i = 0; i < n; i++) w.buf[w.pos++] = 0xa0 + i;
}

/**
 * Writes five unknown fields numbered n..n+4, one of each wire type gogo's skipOps skips:
 * varint, fixed64, length-delimited, fixed32, and a group holding a field and a nested group.
 */
function unknowns(w: PbWriter, n: number): void {
  w.tag(n, 0);
  w.uvarint(300);
  w.tag(n + 1, 1);
  fixed(w, 8);
  w.bytes(n + 2, new Uint8Array([0x0a, 0x01, 0x78]));
  w.tag(n + 3, 5);
  fixed(w, 4);
  w.tag(n + 4, 3);
  w.int(1, 7);
  w.tag(2, 3);
  w.string(1, 'inner');
  w.tag(2, 4);
  w.tag(n + 4, 4);
}

/** Builds a message; `x(n)` adds unknown fields n..n+4 only in the variant that carries them. */
function message(u: boolean, body: (w: PbWriter, x: (n: number) => void, sub: (field: number, f: () => void) => void) => void): Uint8Array {
  // A small initial buffer, so growth and wide length prefixes are exercised too.
  const w = new PbWriter(16);
  const x = (n: number): void => {
    if (u) unknowns(w, n);
  };
  const sub = (field: number, f: () => void): void => {
    const k = w.begin(field);
    f();
    w.end(k);
  };
  body(w, x, sub);
  return w.finish();
}

const execOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    x(12); // before the first known field
    sub(1, () => {
      w.string(1, DIGEST);
      x(3);
      w.int(2, 1);
    });
    sub(2, () => {
      sub(1, () => {
        w.string(1, 'sh');
        w.string(1, '-c');
        w.string(1, 'true');
        w.string(2, 'PATH=/bin');
        w.string(3, '/');
        sub(5, () => {
          w.string(1, 'http://proxy');
          x(6);
        });
        sub(6, () => {
          w.string(1, 'db');
          x(3);
          w.string(2, '10.0.0.1');
        });
        w.string(7, 'box');
        if (u) w.int(8, 42); // the number Meta leaves unused, between hostname and ulimit
        sub(9, () => {
          w.string(1, 'nofile');
          w.int(2, 1024);
          w.int(3, 2048);
          x(4);
        });
        w.string(10, 'kiln.slice');
        w.bool(11, true);
        sub(12, () => {
          w.uvarint(0);
          w.uvarint(1);
        });
        x(13);
      });
      sub(2, () => {
        w.string(3, '/');
        x(7); // Mount's gap between mountType (6) and tmpfsOpt (19)
      });
      sub(2, () => {
        w.int(1, 1);
        w.string(3, '/cache');
        w.int(6, 3);
        sub(20, () => {
          w.string(1, 'c');
          x(3);
          w.int(2, 2);
        });
        x(25);
      });
      sub(2, () => {
        w.int(1, -1);
        w.string(3, '/run/secrets/s');
        w.int(6, 1);
        sub(21, () => {
          w.string(1, 's');
          w.uint32(4, 0o400);
          x(6);
        });
      });
      w.int(3, 2);
      x(7); // between known fields of ExecOp
      w.int(4, 1);
      sub(5, () => {
        w.string(1, 'token');
        w.string(2, 'TOKEN');
        x(4);
      });
      sub(6, () => {
        w.string(1, 'vendor.com/gpu=all');
        x(3);
      });
    });
    if (u) {
      w.int(8, 1); // Op's gap between diff (7) and platform (10)
      w.bytes(9, new Uint8Array([1, 2, 3]));
    }
    sub(10, () => {
      w.string(1, 'amd64');
      w.string(2, 'linux');
      x(6);
    });
    sub(11, () => {
      w.string(1, 'label==x');
      x(2);
    });
    x(1000); // two-byte tags, after the last known field
  });

const fileOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    sub(1, () => w.string(1, DIGEST));
    sub(4, () => {
      if (u) w.int(1, 5); // FileOp has no field 1
      sub(2, () => {
        w.int(2, -1);
        w.int(3, -1);
        sub(5, () => {
          w.string(1, '/f');
          w.int(2, 0o644);
          w.bytes(3, new TextEncoder().encode('hi'));
          sub(4, () => {
            sub(1, () => {
              w.uint32(2, 0); // oneof member: written even when 0
              x(3);
            });
            x(3);
          });
          x(6);
        });
        x(9);
      });
      sub(2, () => {
        w.int(1, 1);
        w.int(2, 2);
        w.int(3, 1);
        sub(4, () => {
          w.string(1, '/a');
          w.string(2, '/b');
          sub(3, () => {
            sub(1, () => {
              sub(1, () => {
                w.string(1, 'app');
                x(3);
              });
              x(3);
            });
            sub(2, () => w.uint32(2, 1000));
          });
          w.int(4, 0o755);
          w.bool(5, true);
          w.bool(8, true);
          w.bool(9, true);
          w.string(12, '*.go');
          x(17);
        });
      });
      sub(2, () => {
        w.int(1, 2);
        w.int(3, 2);
        sub(6, () => {
          w.string(1, '/d');
          w.int(2, 0o755);
          w.bool(3, true);
          x(6);
        });
      });
      sub(2, () => {
        w.int(1, 3);
        w.int(3, 3);
        sub(7, () => {
          w.string(1, '/tmp/*');
          w.bool(2, true);
          w.bool(3, true);
          x(4);
        });
      });
      sub(2, () => {
        w.int(1, 4);
        w.int(3, 4);
        sub(8, () => {
          w.string(1, 'target');
          w.string(2, '/link');
          x(5);
        });
      });
      x(3);
    });
  });

const sourceOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    sub(3, () => {
      w.string(1, 'docker-image://docker.io/library/busybox:latest');
      x(3);
      sub(2, () => {
        w.string(1, 'image.recordtype');
        x(3); // inside a map entry
        w.string(2, 'internal');
      });
      sub(2, () => {
        w.string(1, 'image.resolvemode');
        w.string(2, 'pull');
        x(3);
      });
    });
    sub(10, () => {
      w.string(1, 'arm64');
      w.string(2, 'linux');
      w.string(3, 'v8');
      x(6);
    });
  });

/** A BuildOp whose nested Definition holds an op with unknown fields of its own: raw bytes, kept. */
const buildOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    sub(1, () => w.string(1, DIGEST));
    sub(5, () => {
      w.int(1, 1);
      sub(2, () => {
        w.string(1, 'context');
        sub(2, () => {
          w.int(1, 1);
          x(2);
        });
        x(3);
      });
      sub(3, () => {
        w.bytes(1, sourceOp(true));
        sub(2, () => {
          w.string(1, DIGEST);
          sub(2, () => {
            w.bool(1, true);
            if (u) w.int(3, 1); // OpMetadata's reserved number (WorkerConstraint of old releases)
            sub(2, () => {
              w.string(1, 'llb.customname');
              w.string(2, 'FROM busybox');
              x(3);
            });
            sub(4, () => {
              w.bool(1, true);
              x(2);
            });
            sub(5, () => {
              w.string(1, 'exec.meta.base');
              w.bool(2, true);
              x(3);
            });
            sub(6, () => {
              w.string(1, 'g1');
              w.string(2, 'group');
              w.bool(3, true);
              x(4);
            });
            x(7);
          });
          x(3);
        });
        x(4);
      });
      sub(4, () => {
        w.string(1, 'filename');
        w.string(2, 'Dockerfile');
        x(3);
      });
      x(5);
    });
  });

const mergeOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    sub(1, () => w.string(1, DIGEST));
    sub(1, () => w.string(1, `sha256:${'b'.repeat(64)}`));
    sub(6, () => {
      sub(1, () => x(2)); // input 0: an empty MergeInput, but for unknown fields
      sub(1, () => {
        w.int(1, 1);
        x(2);
      });
      x(2);
    });
  });

const diffOp = (u: boolean): Uint8Array =>
  message(u, (w, x, sub) => {
    sub(1, () => w.string(1, DIGEST));
    sub(7, () => {
      sub(1, () => x(2));
      x(3);
      sub(2, () => {
        w.int(1, -1);
        x(2);
      });
    });
  });

const cases = [
  { name: 'exec (Op, Input, ExecOp, Meta, ProxyEnv, HostIP, Ulimit, Mount, CacheOpt, SecretOpt, SecretEnv, CDIDevice, Platform, WorkerConstraints)', build: execOp },
  { name: 'file (FileOp, FileAction, mkfile, copy, mkdir, rm, symlink, ChownOpt, UserOpt, NamedUserOpt)', build: fileOp },
  { name: 'source (SourceOp, attrs entries, Platform)', build: sourceOp },
  { name: 'build (BuildOp, inputs entry, BuildInput, nested Definition, OpMetadata, attrs entry)', build: buildOp },
  { name: 'merge (MergeOp, MergeInput)', build: mergeOp },
  { name: 'diff (DiffOp, LowerDiffInput, UpperDiffInput)', build: diffOp },
];

describe('unknown fields: skipped on decode, not written back (BuildKit v0.11.6 gogofaster)', () => {
  test.for(cases)('$name', ({ build }) => {
    const withUnknown = build(true);
    const known = build(false);
    expect(withUnknown.length).toBeGreaterThan(known.length);
    // The hand-built known part is what gogo's Marshal writes: it round-trips unchanged.
    expect(Buffer.from(encodeOp(decodeOp(known))).equals(Buffer.from(known))).toBe(true);
    // The decoded op holds nothing of the unknown fields, so marshaling it again drops them all.
    expect(decodeOp(withUnknown)).toEqual(decodeOp(known));
    expect(Buffer.from(encodeOp(decodeOp(withUnknown))).equals(Buffer.from(known))).toBe(true);
    // The op's own digest is still that of the bytes it came with.
    expect(digestOf(withUnknown)).toBe(sha256(withUnknown));
  });

  test('a nested Definition keeps the bytes of its ops, unknown fields included', () => {
    const op = decodeOp(buildOp(true));
    if (op.kind !== 'build') throw new Error('expected a build op');
    expect(Buffer.from(op.build.def?.def[0] ?? []).equals(Buffer.from(sourceOp(true)))).toBe(true);
  });

  const definition = (u: boolean, ops: readonly Uint8Array[]): Uint8Array =>
    message(u, (w, x, sub) => {
      for (const b of ops) w.bytes(1, b);
      x(4);
      sub(2, () => {
        w.string(1, sha256(ops[0] as Uint8Array));
        x(3);
        sub(2, () => {
          sub(2, () => {
            w.string(1, 'llb.customname');
            w.string(2, 'RUN true');
          });
          x(7);
        });
      });
      sub(3, () => {
        sub(1, () => {
          w.string(1, sha256(ops[0] as Uint8Array));
          sub(2, () => {
            sub(1, () => {
              sub(2, () => {
                sub(1, () => {
                  w.int(1, 3);
                  x(3);
                  w.int(2, 1);
                });
                sub(2, () => {
                  w.int(1, 3);
                  x(3);
                });
                x(3);
              });
              x(3);
            });
            x(2);
          });
          x(3);
        });
        sub(2, () => {
          w.string(1, 'Dockerfile');
          w.bytes(2, new TextEncoder().encode('FROM busybox\nRUN true\n'));
          w.string(4, 'Dockerfile');
          x(5);
        });
        x(3);
      });
    });

  test('Definition: the envelope (metadata, source map) is marshaled without them, op bytes are kept', () => {
    const ops = [sourceOp(true), execOp(true)];
    const withUnknown = definition(true, ops);
    const def = decodeDefinition(withUnknown);
    expect(def.def.map((b, i) => Buffer.from(b).equals(Buffer.from(ops[i] as Uint8Array)))).toEqual([true, true]);
    expect(def.def.map((b) => digestOf(b))).toEqual(ops.map(sha256));
    expect(Buffer.from(encodeDefinition(def)).equals(Buffer.from(definition(false, ops)))).toBe(true);
    expect(decodeDefinition(definition(false, ops))).toEqual(def);
  });
});

describe('groups, as gogo skipOps reads them', () => {
  const known = sourceOp(false);
  const withTail = (f: (w: PbWriter) => void): Uint8Array => {
    const w = new PbWriter(16);
    f(w);
    const tail = w.finish();
    const out = new Uint8Array(known.length + tail.length);
    out.set(known);
    out.set(tail, known.length);
    return out;
  };

  test('a group left open is truncated input', () => {
    const bytes = withTail((w) => {
      w.tag(20, 3);
      w.int(1, 5);
    });
    expect(() => decodeOp(bytes)).toThrow(expect.objectContaining({ code: 'LLB_TRUNCATED' }));
  });

  test('an end-group tag with no group, or a known field sent as a group, is refused', () => {
    expect(() => decodeOp(withTail((w) => w.tag(20, 4)))).toThrow(expect.objectContaining({ code: 'LLB_DECODE' }));
    const asGroup = withTail((w) => {
      w.tag(3, 3);
      w.tag(3, 4);
    });
    expect(() => decodeOp(asGroup)).toThrow(expect.objectContaining({ code: 'LLB_DECODE', message: expect.stringContaining('wrong wire type 3 for field 3') }));
  });

  test('a group in a sub-message that ends outside it overruns the sub-message', () => {
    const w = new PbWriter(16);
    const k = w.begin(10);
    w.string(2, 'linux');
    w.tag(6, 3);
    w.end(k);
    w.tag(6, 4);
    expect(() => decodeOp(w.finish())).toThrow(expect.objectContaining({ code: 'LLB_DECODE', message: expect.stringContaining('Platform') }));
  });
});
