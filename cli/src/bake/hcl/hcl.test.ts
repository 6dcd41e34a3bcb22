import { describe, expect, test } from 'vitest';
import { BakeConfig, parseOverrides, printResolved, resolveTargets } from '../config.js';
import { loadConfig } from '../load.js';
import { parseHcl } from './parser.js';

/** Loads HCL text as docker-bake.hcl and resolves `names` (default: the default group). */
function bakeHcl(text: string, opts: { env?: Record<string, string>; names?: string[]; set?: string[] } = {}) {
  const config = loadConfig([{ name: 'docker-bake.hcl', text }], opts.env ?? {});
  return { config, resolved: resolveTargets(config, opts.names ?? [], parseOverrides(config, opts.set ?? [], opts.env ?? {})) };
}

const targetOf = (text: string, name: string, opts: { env?: Record<string, string>; set?: string[] } = {}) => bakeHcl(text, { ...opts, names: [name] }).resolved.targets.get(name)?.target;

describe('HCL syntax', () => {
  test('blocks, labels, attributes, comments of all three kinds, one-line blocks', () => {
    const f = parseHcl('# hash\n// slashes\n/* block\ncomment */\ngroup "default" { targets = ["a"] }\ntarget "a" {\n  context = "." # trailing\n}\n', 'f.hcl');
    expect(f.body.blocks.map((b) => [b.type, b.labels])).toEqual([
      ['group', ['default']],
      ['target', ['a']],
    ]);
    expect(f.body.blocks[1]?.body.attributes[0]?.name).toBe('context');
  });

  test('strings: escapes, ${} interpolation, $${ escape; numbers, bools, null, lists, objects', () => {
    const t = targetOf(
      'variable "V" { default = "x" }\ntarget "a" {\n  args = {\n    ESC = "tab\\tq\\"u\\u00e9"\n    INT = "${V}-${1 + 2}"\n    LIT = "$${V}"\n    NUM = 1.5\n    B = true\n    N = null\n  }\n  tags = ["a", "b",\n  ]\n}\n',
      'a',
    );
    expect(t?.args).toEqual({ ESC: 'tab\tq"u\u00e9', INT: 'x-3', LIT: '${V}', NUM: '1.5', B: 'true' });
    expect(t?.tags).toEqual(['a', 'b']);
  });

  test('heredocs: <<EOT keeps indentation, <<-EOT strips the common indentation; both interpolate', () => {
    const t = targetOf('variable "BASE" { default = "busybox" }\ntarget "a" {\n  dockerfile-inline = <<EOT\nFROM ${BASE}\n  RUN true\nEOT\n  args = {\n    X = <<-EOT\n      one\n        two\n      EOT\n  }\n}\n', 'a');
    expect(t?.['dockerfile-inline']).toBe('FROM busybox\n  RUN true\n');
    expect(t?.args?.['X']).toBe('one\n  two\n');
  });

  test('operators, conditionals, index and attribute access, for expressions, splat', () => {
    const t = targetOf(
      [
        'variable "L" { default = ["x", "y", "z"] }',
        'variable "M" { default = { a = 1, b = 2 } }',
        'target "a" {',
        '  args = {',
        '    ARITH = 2 * 3 + 4 % 3 - 10 / 5',
        '    CMP = 1 < 2 && !(3 >= 4) || false',
        '    EQ = "1" == 1',
        '    COND = length(L) > 2 ? "many" : "few"',
        '    IDX = "${L[1]}${M.b}${M["a"]}"',
        '    FOR = join(",", [for i, v in L : "${i}=${upper(v)}" if v != "y"])',
        '    OBJ = join(",", [for k, v in { for k, v in M : "k-${k}" => v * 10 } : "${k}:${v}"])',
        '    SPLAT = join(",", [{ n = "p" }, { n = "q" }][*].n)',
        '    NEG = -3',
        '  }',
        '}',
      ].join('\n'),
      'a',
    );
    expect(t?.args).toEqual({ ARITH: '5', CMP: 'true', EQ: 'false', COND: 'many', IDX: 'y21', FOR: '0=X,2=Z', OBJ: 'k-a:10,k-b:20', SPLAT: 'p,q', NEG: '-3' });
  });

  test('stdlib functions', () => {
    const t = targetOf(
      [
        'target "a" {',
        '  args = {',
        '    J = join("-", split(",", "a,b"), ["c"])',
        '    F = format("%s-%03d-%v-%q", "x", 7, true, "y")',
        '    R = replace(upper("a.b.c"), ".", "/")',
        '    T = trimsuffix(trimprefix("v1.2.3-rc", "v"), "-rc")',
        '    C = coalesce("", null, "first")',
        '    L = length(concat(["a"], ["b", "c"]))',
        '    K = lookup({ x = "1" }, "y", "dflt")',
        '    E = and(equal(1, 1), or(notequal("a", "b"), not(true)))',
        '    D = formatdate("YYYY-MM-DD\'T\'hh:mm", "2024-03-09T08:07:06Z")',
        '    S = sanitize("a/b:c")',
        '    TS = length(timestamp()) == 20',
        '  }',
        '}',
      ].join('\n'),
      'a',
    );
    expect(t?.args).toEqual({ J: 'a-b-c', F: 'x-007-true-"y"', R: 'A/B/C', T: '1.2.3', C: 'first', L: '3', K: 'dflt', E: 'true', D: '2024-03-09T08:07', S: 'a_b_c', TS: 'true' });
  });

  test('typo tour 4: regex and regexall as cty has them; can() no longer hides a function kiln lacks', () => {
    const t = targetOf(
      [
        'target "a" {',
        '  args = {',
        '    WHOLE = regex("[0-9]+", "v12.3")',
        '    GROUPS = jsonencode(regex("^v([0-9]+)\\\\.([0-9]+)$", "v12.3"))',
        '    NAMED = jsonencode(regex("(?P<major>[0-9]+)\\\\.(?P<minor>[0-9]+)", "v12.3"))',
        '    ALL = jsonencode(regexall("[0-9]+", "1a22b333"))',
        '    NONE = can(regex("^[0-9]+$", "http"))',
        '    YES = can(regex("^[0-9]+$", "80"))',
        '  }',
        '}',
      ].join('\n'),
      'a',
    );
    expect(t?.args).toEqual({ WHOLE: '12', GROUPS: '["12","3"]', NAMED: '{"major":"12","minor":"3"}', ALL: '["1","22","333"]', NONE: 'false', YES: 'true' });
    expect(() => targetOf('target "a" {\n  tags = [regex("x", "y")]\n}\n', 'a')).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('regex(): pattern did not match any part of the given string') }));
    // was false: a validation then refused every value with its own message
    expect(() => targetOf('target "a" {\n  args = { X = can(regexp("a", "a")) }\n}\n', 'a')).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('unknown function "regexp"') }));
  });

  test("RE2 syntax JavaScript lacks: ASCII classes [[:digit:]], \\A and \\z, a ] first in a class (each was silently no match)", () => {
    const t = targetOf(
      [
        'target "a" {',
        '  args = {',
        '    DIGITS = can(regex("^[[:digit:]]+$", "80"))',
        '    NOT = can(regex("^[[:digit:]]+$", "d:"))',
        '    NAME = regex("[[:alpha:]][[:alnum:]_-]*", "--my_app-2")',
        '    NEG = regex("[^[:space:]]+", "  x1 ")',
        '    WHOLE = can(regex("\\\\Av[0-9]+\\\\z", "v12"))',
        '    TAIL = can(regex("\\\\Av[0-9]+\\\\z", "v12\\n"))',
        '    BRACKET = regex("[]a]+", "x]a]y")',
        '    REPL = regex_replace("a1b22", "[[:digit:]]+", "#")',
        '    NAMED = regex_replace("v1.2", "(?P<major>[0-9]+)", "<$1>")',
        '  }',
        '}',
      ].join('\n'),
      'a',
    );
    expect(t?.args).toEqual({ DIGITS: 'true', NOT: 'false', NAME: 'my_app-2', NEG: 'x1', WHOLE: 'true', TAIL: 'false', BRACKET: ']a]', REPL: 'a#b#', NAMED: 'v<1>.<2>' });
    // Go: "invalid character class range"
    expect(() => targetOf('target "a" {\n  tags = [regex("[[:digits:]]", "1")]\n}\n', 'a')).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('invalid character class range: [:digits:]') }));
  });

  test('template directives: %{if}/%{else}/%{endif}, %{for}/%{endfor}, ~ strip markers', () => {
    const t = targetOf(
      [
        'variable "DEBUG" { default = true }',
        'variable "PKGS" { default = ["curl", "git"] }',
        'target "a" {',
        '  args = {',
        '    IF = "mode=%{ if DEBUG }debug%{ else }release%{ endif }"',
        '    FOR = "%{ for i, p in PKGS }${i}:${p};%{ endfor }"',
        '    ESC = "%%{ literal }"',
        '  }',
        '  dockerfile-inline = <<-EOT',
        '    FROM busybox',
        '    %{ for p in PKGS }RUN echo ${p}',
        '    %{ endfor }RUN echo [%{~ for p in PKGS ~} ${p} %{~ endfor ~}]',
        '    EOT',
        '}',
      ].join('\n'),
      'a',
      { env: { DEBUG: 'false' } },
    );
    expect(t?.args).toEqual({ IF: 'mode=release', FOR: '0:curl;1:git;', ESC: '%{ literal }' });
    expect(t?.['dockerfile-inline']).toBe('FROM busybox\nRUN echo curl\nRUN echo git\nRUN echo [curlgit]\n');
  });

  test('user functions with params and variadic params', () => {
    const t = targetOf('function "tag" {\n  params = [repo, v]\n  variadic_params = rest\n  result = "${repo}:${v}${length(rest) > 0 ? "-${join("-", rest)}" : ""}"\n}\ntarget "a" { tags = [tag("app", "1"), tag("app", "2", "x", "y")] }\n', 'a');
    expect(t?.tags).toEqual(['app:1', 'app:2-x-y']);
  });
});

describe('try, can and merge rules', () => {
  test('try() returns the first argument that evaluates; can() says whether one does', () => {
    const t = targetOf('variable "M" { default = { a = "x" } }\ntarget "a" {\n  args = {\n    T = try(M.b, M.a)\n    C = can(M.b)\n    D = can(M.a)\n  }\n}\n', 'a');
    expect(t?.args).toEqual({ T: 'x', C: 'false', D: 'true' });
  });

  test('inherits: tags and output are replaced; secrets merge by id, attest by type; args merge by key', () => {
    const t = targetOf(
      [
        'target "p" {',
        '  tags = ["p"]',
        '  output = ["type=local,dest=p"]',
        '  secret = ["id=a,src=p-a", "id=b,src=p-b"]',
        '  attest = ["type=provenance,mode=min"]',
        '  args = { X = "p", Y = "p" }',
        '  no-cache-filter = ["s1"]',
        '}',
        'target "c" {',
        '  inherits = ["p"]',
        '  tags = ["c"]',
        '  secret = ["id=a,src=c-a"]',
        '  attest = ["type=provenance,mode=max", "type=sbom"]',
        '  args = { Y = "c" }',
        '  no-cache-filter = ["s2"]',
        '}',
      ].join('\n'),
      'c',
    );
    expect(t).toMatchObject({
      tags: ['c'],
      output: ['type=local,dest=p'],
      secret: ['id=b,src=p-b', 'id=a,src=c-a'],
      attest: ['type=provenance,mode=max', 'type=sbom'],
      args: { X: 'p', Y: 'c' },
      'no-cache-filter': ['s1', 's2'],
    });
  });
});

describe('variables', () => {
  const file = 'variable "TAG" { default = "latest" }\nvariable "N" { default = 2 }\nvariable "ON" { default = false }\nvariable "EMPTY" {}\ntarget "a" { tags = ["app:${TAG}"]\n args = { N = N + 1, ON = ON ? "yes" : "no", E = "[${EMPTY}]" } }\n';

  test('defaults; the environment variable of the same name overrides, typed from the default', () => {
    expect(targetOf(file, 'a')).toMatchObject({ tags: ['app:latest'], args: { N: '3', ON: 'no', E: '[]' } });
    expect(targetOf(file, 'a', { env: { TAG: 'v2', N: '10', ON: 'true', EMPTY: 'set' } })).toMatchObject({ tags: ['app:v2'], args: { N: '11', ON: 'yes', E: '[set]' } });
  });

  test('a bad typed environment value names the variable', () => {
    expect(() => targetOf(file, 'a', { env: { N: 'ten' } })).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('variable N') }));
  });

  test('variables referring to variables; BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP', () => {
    const f = 'variable "REPO" { default = "r" }\nvariable "IMG" { default = "${REPO}/app" }\ntarget "a" { tags = [IMG] }\n';
    expect(targetOf(f, 'a', { env: { REPO: 'x' } })?.tags).toEqual(['x/app']);
    expect(targetOf(f, 'a', { env: { REPO: 'x', BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP: '1' } })?.tags).toEqual(['r/app']);
  });

  test('validation blocks', () => {
    const f = 'variable "V" {\n  default = "a"\n  validation {\n    condition = V != "bad"\n    error_message = "V must not be bad"\n  }\n}\ntarget "a" { tags = [V] }\n';
    expect(targetOf(f, 'a')?.tags).toEqual(['a']);
    expect(() => targetOf(f, 'a', { env: { V: 'bad' } })).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('V must not be bad') }));
    // typo tour 4: as buildx, every declared variable is validated, whether a target reads it or not
    const unused = 'variable "PORT" {\n  default = "80"\n  validation {\n    condition = can(regex("^[0-9]+$", PORT))\n    error_message = "PORT must be a number."\n  }\n}\ntarget "a" {}\n';
    expect(targetOf(unused, 'a')).toBeDefined();
    expect(() => targetOf(unused, 'a', { env: { PORT: 'http' } })).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('variable PORT: PORT must be a number.') }));
  });
});

describe('targets', () => {
  test('inherits, groups of groups, blocks of one target merged, target.NAME.KEY references', () => {
    const f = [
      'group "default" { targets = ["all"] }',
      'group "all" { targets = ["app", "db"] }',
      'target "_common" {',
      '  args = { GO = "1.22" }',
      '  labels = { team = "x" }',
      '}',
      'target "app" {',
      '  inherits = ["_common"]',
      '  tags = ["app"]',
      '}',
      'target "app" { args = { EXTRA = "1" } }',
      'target "db" {',
      '  context = "./db"',
      '  tags = [for t in target.app.tags : "${t}-db"]',
      '}',
    ].join('\n');
    const { resolved } = bakeHcl(f);
    expect([...resolved.targets.keys()]).toEqual(['app', 'db']);
    expect(resolved.targets.get('app')?.target).toEqual({ context: '.', dockerfile: 'Dockerfile', args: { GO: '1.22', EXTRA: '1' }, labels: { team: 'x' }, tags: ['app'] });
    expect(resolved.targets.get('db')?.target.tags).toEqual(['app-db']);
    expect(JSON.parse(printResolved(resolved)).group).toEqual({ default: { targets: ['all'] }, all: { targets: ['app', 'db'] } });
  });

  test('matrix: one target per combination, named by name; the label becomes a group', () => {
    const f = 'target "build" {\n  name = "build-${tgt}-${replace(ver, ".", "-")}"\n  matrix = {\n    tgt = ["a", "b"]\n    ver = ["1.0", "2.0"]\n  }\n  target = tgt\n  args = { VER = ver }\n}\n';
    const { resolved, config } = bakeHcl(f, { names: ['build'] });
    expect([...resolved.targets.keys()]).toEqual(['build-a-1-0', 'build-a-2-0', 'build-b-1-0', 'build-b-2-0']);
    expect(resolved.targets.get('build-b-2-0')?.target).toMatchObject({ target: 'b', args: { VER: '2.0' } });
    expect(config.groups.get('build')?.targets).toHaveLength(4);
  });

  test('buildx reference examples: matrix of maps, groups over a target of the same name, no-cache = 1', () => {
    const m = bakeHcl(
      'target "app" {\n  name = "app-${item.tgt}-${replace(item.version, ".", "-")}"\n  matrix = {\n    item = [\n      {\n        tgt = "foo"\n        version = "1.0"\n      },\n      {\n        tgt = "bar"\n        version = "2.0"\n      }\n    ]\n  }\n  target = item.tgt\n  args = {\n    VERSION = item.version\n  }\n  no-cache = 1\n}\n',
      { names: ['app'] },
    );
    expect(JSON.parse(printResolved(m.resolved))).toEqual({
      group: { app: { targets: ['app-foo-1-0', 'app-bar-2-0'] }, default: { targets: ['app'] } },
      target: {
        'app-bar-2-0': { context: '.', dockerfile: 'Dockerfile', args: { VERSION: '2.0' }, target: 'bar', 'no-cache': true },
        'app-foo-1-0': { context: '.', dockerfile: 'Dockerfile', args: { VERSION: '1.0' }, target: 'foo', 'no-cache': true },
      },
    });
    const g = bakeHcl('target "default" {\n  dockerfile-inline = "FROM ubuntu"\n}\ngroup "default" {\n  targets = ["alpine", "debian"]\n}\ntarget "alpine" {\n  dockerfile-inline = "FROM alpine"\n}\ntarget "debian" {\n  dockerfile-inline = "FROM debian"\n}\n');
    expect([...g.resolved.targets.keys()]).toEqual(['alpine', 'debian']);
  });

  test('--set: globs, list values collect, += appends, args from the environment, push', () => {
    const f = 'target "a" { tags = ["a:1"] }\ntarget "b" { tags = ["b:1"]\n output = ["type=image"] }\n';
    const { resolved } = bakeHcl(f, { names: ['a', 'b'], set: ['*.platform=linux/arm64', 'a.tags=x', 'a.tags=y', 'b.tags+=b:2', 'a.args.FROM_ENV', 'b.push=true', 'a.no-cache=true'], env: { FROM_ENV: 'e' } });
    expect(resolved.targets.get('a')?.target).toMatchObject({ tags: ['x', 'y'], platforms: ['linux/arm64'], args: { FROM_ENV: 'e' }, 'no-cache': true });
    expect(resolved.targets.get('b')?.target).toMatchObject({ tags: ['b:1', 'b:2'], platforms: ['linux/arm64'], output: ['type=image,push=true'] });
  });

  test('target: contexts pull in the linked target with a cacheonly output', () => {
    const f = 'target "base" { dockerfile = "base.Dockerfile" }\ntarget "app" { contexts = { base = "target:base" } }\n';
    const { resolved } = bakeHcl(f, { names: ['app'] });
    expect(resolved.targets.get('base')).toMatchObject({ linked: true, target: { output: ['type=cacheonly'] } });
    expect(resolved.targets.get('app')?.linked).toBe(false);
  });

  test('an HCL file and a JSON override merge (later over earlier)', () => {
    const config = loadConfig(
      [
        { name: 'docker-bake.hcl', text: 'variable "T" { default = "1" }\ntarget "a" { tags = ["a:${T}"]\n args = { X = "hcl" } }\n' },
        { name: 'docker-bake.override.json', text: JSON.stringify({ variable: { W: { default: 'w' } }, target: { a: { args: { Y: 'json-${W}' } } } }) },
      ],
      {},
    );
    expect(config.targets.get('a')).toEqual({ tags: ['a:1'], args: { X: 'hcl', Y: 'json-w' } });
  });
});

describe('errors name the file, line and column, with a hint', () => {
  const err = (text: string, env: Record<string, string> = {}): unknown => {
    try {
      bakeHcl(text, { env, names: ['a'] });
    } catch (e) {
      return e;
    }
    return undefined;
  };

  test.for([
    ['unterminated string', 'target "a" {\n  context = "abc\n}\n', 'KLN0851', 2, 13, /unterminated string/],
    ['missing close brace', 'target "a" {\n  context = "."\n', 'KLN0851', 3, 1, /expected "}"/],
    ['bad list separator', 'target "a" {\n  tags = ["a" "b"]\n}\n', 'KLN0851', 2, 15, /expected "," or "]"/],
    ['two values on a line', 'target "a" {\n  context = "." "x"\n}\n', 'KLN0851', 2, 17, /expected a newline/],
    ['unknown variable', 'target "a" {\n  tags = [TAGG]\n}\n', 'KLN0852', 2, 11, /unknown variable "TAGG"/],
    ['unknown function', 'target "a" {\n  tags = [upcase("x")]\n}\n', 'KLN0852', 2, 11, /unknown function "upcase"/],
    ['wrong argument count', 'target "a" {\n  tags = [upper("x", "y")]\n}\n', 'KLN0852', 2, 11, /upper\(\) takes 1 argument/],
    ['null interpolation', 'variable "N" { default = null }\ntarget "a" {\n  tags = ["x-${N}"]\n}\n', 'KLN0852', 3, 16, /must be a string, got null/],
    ['unknown key', 'target "a" {\n  contxt = "."\n}\n', 'KLN0853', 2, 3, /unknown key "contxt"/],
    ['wrong value type', 'target "a" {\n  tags = { x = 1 }\n}\n', 'KLN0853', 2, 3, /tags must be a list of strings/],
    ['unknown block', 'targte "a" {\n}\n', 'KLN0853', 1, 1, /unknown block type "targte"/],
    ['unclosed %{ if }', 'target "a" {\n  tags = ["%{ if true }x"]\n}\n', 'KLN0851', 2, 12, /missing %\{ endif \}/],
    ['unknown directive', 'target "a" {\n  tags = ["a%{ when true }"]\n}\n', 'KLN0851', 2, 13, /unknown template directive "when"/],
    ['inherits cycle', 'target "a" { inherits = ["b"] }\ntarget "b" { inherits = ["a"] }\n', 'KLN0853', 1, 1, /inherits cycle: a -> b -> a/],
  ] as const)('%s', ([, text, code, line, column, message]) => {
    const e = err(text) as { code?: string; location?: { file: string; line: number; column: number }; message: string; hint?: string };
    expect(e).toMatchObject({ code, location: { file: 'docker-bake.hcl', line, column } });
    expect(e.message).toMatch(message);
    expect(e.message.startsWith(`docker-bake.hcl:${line}:${column}: `)).toBe(true);
  });

  test('a hint comes with the error', () => {
    expect(err('target "a" {\n  tags = [TAGG]\n}\nvariable "TAG" {}\n')).toMatchObject({ hint: 'defined: TAG' });
  });

  test('JSON syntax errors point at the line', () => {
    expect(() => loadConfig([{ name: 'docker-bake.json', text: '{\n  "target": {\n    "a": {,}\n  }\n}\n' }], {})).toThrow(expect.objectContaining({ code: 'KLN0851', location: expect.objectContaining({ line: 3 }) }));
    // a trailing comma: JSON.parse names no position (the error was at 1:1, its message the file's tail)
    expect(() => loadConfig([{ name: 'docker-bake.json', text: '{\n  "target": {\n    "a": {"tags": ["x",]}\n  }\n}\n' }], {})).toThrow(
      expect.objectContaining({ code: 'KLN0851', location: { file: 'docker-bake.json', line: 3, column: 24 }, message: expect.stringContaining('invalid JSON: expected a value after the comma (JSON allows no trailing comma), found "]"') }),
    );
  });

  test('typo tour 4: unknown target key, --set key and target name each name the near one', () => {
    expect(err('target "app" {\n  tag = ["a:1"]\n}\n')).toMatchObject({ code: 'KLN0853', message: expect.stringContaining('target "app": unknown key "tag" (did you mean tags?)') });
    const config = loadConfig([{ name: 'docker-bake.hcl', text: 'target "app" {}\ntarget "_common" {}\ntarget "web" { inherits = ["_comon"] }\n' }], {});
    expect(() => resolveTargets(config, ['ap'], new Map())).toThrow(expect.objectContaining({ code: 'KLN0853', message: 'failed to find target "ap" (did you mean app?)' }));
    expect(() => resolveTargets(config, ['web'], new Map())).toThrow(expect.objectContaining({ message: expect.stringContaining('target "web" inherits "_comon", which is not defined (did you mean _common?)') }));
    expect(() => resolveTargets(config, ['app'], parseOverrides(config, ['app.platfrom=linux/arm64'], {}))).toThrow(expect.objectContaining({ code: 'KLN0854', message: 'unknown --set key "platfrom" (did you mean platform?)' }));
  });

  test('an empty config resolves nothing by default: failed to find target default', () => {
    expect(() => resolveTargets(new BakeConfig(), [], new Map())).toThrow(expect.objectContaining({ code: 'KLN0853', message: 'failed to find target "default"' }));
  });
});
