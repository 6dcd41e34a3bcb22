import { describe, expect, test } from 'vitest';
import { parseModeStr } from './mode.js';

describe('parseModeStr (COPY --chmod)', () => {
  test.for([
    ['755', 0o644, false, 0o755],
    ['0640', 0o777, false, 0o640],
    ['u+x', 0o644, false, 0o744],
    ['+x', 0o644, false, 0o755],
    ['a+x', 0o600, false, 0o711],
    ['go-w', 0o666, false, 0o644],
    ['u=rw,go=r', 0o777, false, 0o644],
    ['a=rX', 0o640, true, 0o555],
    ['a=rX', 0o640, false, 0o444],
    ['a=rX', 0o740, false, 0o555],
    ['g=u', 0o740, false, 0o770],
    ['u+s', 0o755, false, 0o4755],
    ['o+t', 0o777, true, 0o1777],
    ['u-x,g+w', 0o755, false, 0o675],
  ] as const)('%s on %o (dir %s) = %o', ([s, mode, isDir, want]) => {
    expect(parseModeStr(s)(mode, isDir)).toBe(want);
  });

  test.for(['u+q', 'x+r', '9', '', 'u+x,,'])('rejects %j', (s) => {
    expect(() => parseModeStr(s)).toThrow(expect.objectContaining({ code: 'FILEOP_INVALID_MODE' }));
  });
});
