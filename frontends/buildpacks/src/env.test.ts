import { describe, expect, test } from 'vitest';
import { applyEnvOps, BUILD_ROOT_DIRS, envDirOps, LAUNCH_ROOT_DIRS, launchEnvOps, opsForProcess, rootDirOps, withPlatformEnv } from './env.js';

const files = (o: Record<string, string>): Map<string, string> => new Map(Object.entries(o));
const base = new Map([
  ['PATH', '/usr/bin:/bin'],
  ['A', 'a'],
  ['P', 'p'],
  ['E', ''],
]);

describe('env engine', () => {
  test.for([
    { name: 'no suffix overrides', f: { A: 'x' }, want: { A: 'x' } },
    { name: '.override overrides', f: { 'A.override': 'x' }, want: { A: 'x' } },
    { name: '.default keeps a set value', f: { 'A.default': 'x', 'NEW.default': 'n' }, want: { A: 'a', NEW: 'n' } },
    { name: '.append without delim concatenates', f: { 'A.append': 'x' }, want: { A: 'ax' } },
    { name: '.append with delim', f: { 'A.append': 'x', 'A.delim': ':' }, want: { A: 'a:x' } },
    { name: '.prepend with delim', f: { 'P.prepend': 'x', 'P.delim': ';' }, want: { P: 'x;p' } },
    { name: '.append to an unset variable sets it', f: { 'NEW.append': 'x', 'NEW.delim': ':' }, want: { NEW: 'x' } },
    { name: 'files apply in name order (override, then append)', f: { B: '1', 'B.append': '2' }, want: { B: '12' } },
    // lifecycle env.AddEnvDir: `if p.Vars.Get(name) != ""` — an empty value counts as unset
    { name: '.default sets an empty variable', f: { 'E.default': 'x' }, want: { E: 'x' } },
    // lifecycle splits the file name at the first dot and ignores an unknown action
    { name: 'a file with an unknown suffix is ignored', f: { 'A.txt': 'x', 'README.md': 'r' }, want: { A: 'a', 'A.txt': undefined, README: undefined, 'README.md': undefined } },
    { name: 'the name ends at the first dot', f: { 'J.OPTS.append': 'x', 'J.OPTS': 'y' }, want: { J: undefined, 'J.OPTS': undefined } },
  ])('$name', ({ f, want }) => {
    const env = applyEnvOps(base, envDirOps(files(f)));
    for (const [k, v] of Object.entries(want)) expect(env.get(k)).toBe(v);
  });

  test('layer root dirs prepend in layer order: the later layer comes first', () => {
    const ops = [
      ...rootDirOps('/layers/a/x', new Set(['bin', 'lib']), BUILD_ROOT_DIRS),
      ...rootDirOps('/layers/b/y', new Set(['bin', 'include', 'pkgconfig']), BUILD_ROOT_DIRS),
    ];
    const env = applyEnvOps(base, ops);
    expect(env.get('PATH')).toBe('/layers/b/y/bin:/layers/a/x/bin:/usr/bin:/bin');
    expect(env.get('LD_LIBRARY_PATH')).toBe('/layers/a/x/lib');
    expect(env.get('LIBRARY_PATH')).toBe('/layers/a/x/lib');
    expect(env.get('CPATH')).toBe('/layers/b/y/include');
    expect(env.get('PKG_CONFIG_PATH')).toBe('/layers/b/y/pkgconfig');
  });

  test('launch root dirs: bin and lib only', () => {
    const ops = rootDirOps('/l', new Set(['bin', 'lib', 'include']), LAUNCH_ROOT_DIRS);
    expect(ops.map((o) => o.name)).toEqual(['PATH', 'LD_LIBRARY_PATH']);
  });

  test('launch env of one buildpack as lifecycle launcher doEnv: every layer root first, then each layer env, env.launch, env.launch/<type>', () => {
    const ops = launchEnvOps([
      { dir: '/layers/bp/a', present: new Set(['env.launch']), env: files({}), envLaunch: files({ 'PATH.override': '/x', X: '2' }), processEnv: new Map([['web', files({ Y: 'a-web' })]]) },
      { dir: '/layers/bp/b', present: new Set(['bin']), env: files({ Y: 'b' }), envLaunch: files({ 'X.override': '3' }), processEnv: new Map([['worker', files({ X: 'w' })]]) },
    ]);
    // b's bin comes before a's PATH override, so the override wins (kiln applied layer by layer)
    expect(applyEnvOps(base, opsForProcess(ops, 'web'))).toMatchObject(new Map([...base, ['PATH', '/x'], ['X', '3'], ['Y', 'b']]));
    expect(applyEnvOps(base, opsForProcess(ops, 'web')).get('PATH')).toBe('/x');
    // a's per-process env applies at a's place: b's env after it still wins
    expect(applyEnvOps(base, opsForProcess(ops, 'web')).get('Y')).toBe('b');
    expect(applyEnvOps(base, opsForProcess(ops, 'worker')).get('X')).toBe('w');
    expect(applyEnvOps(base, opsForProcess(ops, undefined)).get('X')).toBe('3');
  });

  test('platform env: path variables are prepended, others replaced', () => {
    const env = withPlatformEnv(base, [
      ['PATH', '/mine'],
      ['A', 'user'],
    ]);
    expect(env.get('PATH')).toBe('/mine:/usr/bin:/bin');
    expect(env.get('A')).toBe('user');
  });
});
