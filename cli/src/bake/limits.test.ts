import { describe, expect, test } from 'vitest';
import { parseOverrides, resolveTargets } from './config.js';
import { loadConfig } from './load.js';

// Hostile or runaway bake files end in a KLN085x error at a place in the file, quickly: no stack
// overflow (RangeError), no out-of-memory, no exponential time.

const H = 'docker-bake.hcl';

/** Loads `text` and resolves `names`; the error thrown (or undefined) and the time it took. */
function run(text: string, names: string[] = ['a'], name = H): { error: unknown; ms: number } {
  const t0 = performance.now();
  try {
    const config = loadConfig([{ name, text }], {});
    resolveTargets(config, names, parseOverrides(config, [], {}));
  } catch (error) {
    return { error, ms: performance.now() - t0 };
  }
  return { error: undefined, ms: performance.now() - t0 };
}

const fn = (result: string): string => `function "d" {\n  params = [x]\n  result = ${result}\n}\n`;

describe('deep nesting is a syntax error at the place it goes too deep', () => {
  test.for([
    ['lists', `target "a" {\n  tags = ${'['.repeat(20000)}${']'.repeat(20000)}\n}\n`],
    ['parentheses', `target "a" {\n  context = ${'('.repeat(20000)}"x"${')'.repeat(20000)}\n}\n`],
    ['unary minus', `target "a" {\n  context = ${'-'.repeat(20000)}1\n}\n`],
    ['blocks', `${'a {\n'.repeat(20000)}${'}\n'.repeat(20000)}`],
    ['interpolations', `target "a" {\n  context = ${'"${'.repeat(5000)}1${'}"'.repeat(5000)}\n}\n`],
    ['objects', `target "a" {\n  args = ${'{a = '.repeat(10000)}1${'}'.repeat(10000)}\n}\n`],
    ['conditionals', `target "a" {\n  context = ${'true ? '.repeat(10000)}1${' : 2'.repeat(10000)}\n}\n`],
    ['a chain of operators', `target "a" {\n  context = ${Array(50000).fill('1').join(' + ')}\n}\n`],
    ['a chain of indexes', `target "a" {\n  context = x${'[0]'.repeat(50000)}\n}\n`],
  ] as const)('%s', ([, text]) => {
    const { error } = run(text);
    expect(error).toMatchObject({ name: 'BakeError', code: 'KLN0851', location: { file: H }, message: expect.stringContaining('nested too deeply') });
  });

  test('a JSON file nested too deeply', () => {
    const { error } = run(`{"target":{"a":{"args":${'{"a":'.repeat(20000)}1${'}'.repeat(20000)}}}}`, ['a'], 'docker-bake.json');
    expect(error).toMatchObject({ name: 'BakeError', code: 'KLN0853', location: { file: 'docker-bake.json' }, message: expect.stringContaining('nested too deeply') });
  });

  test('an ordinary amount of nesting still works', () => {
    const { error } = run(`target "a" {\n  context = ${'('.repeat(60)}"x"${')'.repeat(60)}\n  tags = ${'['.repeat(60)}${']'.repeat(60)}\n}\n`);
    expect(error).toMatchObject({ code: 'KLN0853', message: expect.stringContaining('tags must be a list of strings') });
  });
});

describe('runaway evaluation stops with an error at the expression', () => {
  test('a long chain of variables (each refers to the next)', () => {
    const vars = Array.from({ length: 5000 }, (_, i) => `variable "v${i}" { default = v${i + 1} }`).join('\n');
    const { error } = run(`${vars}\nvariable "v5000" { default = "x" }\ntarget "a" {\n  context = v0\n}\n`);
    expect(error).toMatchObject({ name: 'BakeError', code: 'KLN0852', location: { file: H }, message: expect.stringContaining('too deep') });
  });

  test('jsondecode() of a value nested deeper than a bake file may nest', () => {
    const { error } = run(`target "a" {\n  context = jsonencode(jsondecode("${'['.repeat(2000)}${']'.repeat(2000)}"))\n}\n`);
    expect(error).toMatchObject({ name: 'BakeError', code: 'KLN0852', location: { file: H, line: 2 }, message: expect.stringContaining('nested too deeply') });
  });

  test('a huge matrix is refused before it is expanded', () => {
    const { error, ms } = run('target "a" {\n  name = "a-${x}-${y}-${z}"\n  matrix = { x = range(1000), y = range(1000), z = range(1000) }\n}\n');
    expect(error).toMatchObject({ code: 'KLN0852', location: { file: H, line: 3, column: 12 }, message: expect.stringContaining('1000000000 combinations') });
    expect(ms).toBeLessThan(2000);
  });

  test('nested for expressions that would make a billion values', () => {
    const { error, ms } = run('target "a" {\n  context = jsonencode([for i in range(1000): [for j in range(1000): [for k in range(1000): k]]])\n}\n');
    expect(error).toMatchObject({ code: 'KLN0852', location: { file: H }, message: expect.stringContaining('steps') });
    expect(ms).toBeLessThan(10_000);
  });

  test('try() does not swallow the step limit', () => {
    const { error } = run('target "a" {\n  context = try(jsonencode([for i in range(1000): [for j in range(1000): [for k in range(1000): k]]]), "fallback")\n}\n');
    expect(error).toMatchObject({ code: 'KLN0852', message: expect.stringContaining('steps') });
  });

  test('a value that doubles in every call (2^30 elements) is refused, not encoded for seconds', () => {
    const { error, ms } = run(`${fn('[x, x]')}target "a" {\n  context = jsonencode(${'d('.repeat(30)}1${')'.repeat(30)})\n}\n`);
    expect(error).toMatchObject({ code: 'KLN0852', location: { file: H, line: 6 }, message: expect.stringContaining('too large') });
    expect(ms).toBeLessThan(2000);
  });

  test('a string that doubles in every call is refused', () => {
    const { error, ms } = run(`${fn('"${x}${x}"')}target "a" {\n  context = upper(${'d('.repeat(40)}"x"${')'.repeat(40)})\n}\n`);
    expect(error).toMatchObject({ code: 'KLN0852', location: { file: H } });
    expect(ms).toBeLessThan(5000);
  });

  test.for([
    ['format() with a huge width', 'format("%999999999d", 1)', 6],
    ['indent() by a billion spaces', 'indent(999999999, "a\\nb")', 6],
    // at the concat() in the function that grows the list
    ['concat() doubling', `length(${'d('.repeat(30)}[1]${')'.repeat(30)})`, 3],
  ] as const)('%s is an evaluation error, not a RangeError', ([, expr, line]) => {
    const { error, ms } = run(`${fn('concat(x, x)')}target "a" {\n  context = ${expr}\n}\n`);
    expect(error).toMatchObject({ name: 'BakeError', code: 'KLN0852', location: { file: H, line } });
    expect(ms).toBeLessThan(5000);
  });
});

describe('exponential definitions resolve in linear time', () => {
  test('a deep diamond of inherits', () => {
    const text = Array.from({ length: 40 }, (_, i) => `target "t${i}" { inherits = ["t${i + 1}", "t${i + 1}b"] }\ntarget "t${i}b" { inherits = ["t${i + 1}"] }\n`).join('') + 'target "t40" {\n  args = { DEEP = "1" }\n}\ntarget "t40b" {}\n';
    const t0 = performance.now();
    const config = loadConfig([{ name: H, text }], {});
    const r = resolveTargets(config, ['t0'], new Map());
    expect(r.targets.get('t0')?.target.args).toEqual({ DEEP: '1' });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test('a deep diamond of target: contexts', () => {
    const text =
      Array.from({ length: 40 }, (_, i) => `target "t${i}" {\n  contexts = { x = "target:t${i + 1}", y = "target:t${i + 1}b" }\n}\ntarget "t${i}b" {\n  contexts = { x = "target:t${i + 1}" }\n}\n`).join('') +
      'target "t40" {\n  entitlements = ["network.host"]\n}\ntarget "t40b" {}\n';
    const t0 = performance.now();
    const config = loadConfig([{ name: H, text }], {});
    const r = resolveTargets(config, ['t0'], new Map());
    expect(r.targets.size).toBe(81);
    expect(r.targets.get('t0')?.target.entitlements).toEqual(['network.host']);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('target.NAME references', () => {
  test('a chain of targets that each read the previous one twice is evaluated once per target', () => {
    const text = 'target "t0" {\n  tags = ["x"]\n}\n' + Array.from({ length: 30 }, (_, i) => `target "t${i + 1}" {\n  tags = distinct(concat(target.t${i}.tags, target.t${i}.tags))\n}\n`).join('');
    const t0 = performance.now();
    const config = loadConfig([{ name: H, text }], {});
    expect(config.targets.get('t30')?.tags).toEqual(['x']);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('values HCL does not have', () => {
  test('an escape past the last code point is a syntax error', () => {
    expect(run('target "a" {\n  context = "\\UFFFFFFFF"\n}\n').error).toMatchObject({ code: 'KLN0851', location: { line: 2, column: 14 } });
  });

  test('objects have no inherited JavaScript keys (constructor, toString)', () => {
    const { error } = run('variable "M" { default = {} }\ntarget "a" {\n  context = can(M.constructor) || can(M["toString"]) ? "inherited" : lookup({}, "constructor", "ok")\n}\n');
    expect(error).toBeUndefined();
    const config = loadConfig([{ name: H, text: 'variable "M" { default = {} }\ntarget "a" {\n  context = can(M.constructor) || can(M["toString"]) ? "inherited" : lookup({}, "constructor", "ok")\n}\n' }], {});
    expect(config.targets.get('a')?.context).toBe('ok');
  });

  test('two matrix combinations with one name are an error, as buildx\'s duplicate name', () => {
    const { error } = run('target "a" {\n  matrix = { v = ["1", "2"] }\n  args = { V = v }\n}\n');
    expect(error).toMatchObject({ code: 'KLN0853', location: { file: H, line: 1 }, message: expect.stringContaining('duplicate name "a"') });
  });
});
