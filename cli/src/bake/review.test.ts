import { describe, expect, test, vi } from 'vitest';
import { parseOverrides, printResolved, resolveTargets } from './config.js';
import { targetBuild } from './flags.js';
import { parseCacheExportSpecs, parseCacheImportSpecs } from '../engine/cache-spec.js';
import { parseAttestations } from '../engine/provenance-spec.js';
import { loadConfig } from './load.js';

// buildx behaviours that the first version of kiln bake got wrong (each test failed before its fix).

const H = 'docker-bake.hcl';

function resolve(files: { name: string; text: string }[], names: string[], opts: { env?: Record<string, string>; set?: string[] } = {}) {
  const config = loadConfig(files, opts.env ?? {});
  return resolveTargets(config, names, parseOverrides(config, opts.set ?? [], opts.env ?? {}));
}

describe('HCL syntax', () => {
  test('`...` expands a list into arguments and groups the values of a for expression', () => {
    const r = resolve([{ name: H, text: 'variable "L" { default = ["a", "b"] }\ntarget "a" {\n  context = format("%s-%s", L...)\n  args = { G = jsonencode({ for k, v in { x = "1", y = "1", z = "2" } : v => k... }) }\n}\n' }], ['a']);
    expect(r.targets.get('a')?.target).toMatchObject({ context: 'a-b', args: { G: '{"1":["x","y"],"2":["z"]}' } });
  });
});

describe('identifiers', () => {
  test('identifiers may use Unicode letters, as HCL\'s (ID_Start, ID_Continue and -)', () => {
    const r = resolve([{ name: H, text: 'variable "größe" { default = "xl" }\nnamé = "n"\ntarget "a" {\n  tags = [größe, namé, { π-1 = "pi" }.π-1]\n}\n' }], ['a']);
    expect(r.targets.get('a')?.target.tags).toEqual(['xl', 'n', 'pi']);
  });
});

describe('several files', () => {
  // buildx merges every HCL and JSON file into one body, in order (hcl.MergeFiles).
  const hcl = { name: 'docker-bake.hcl', text: 'variable "TAG" { default = "1" }\ntarget "a" {\n  tags = ["a:${TAG}"]\n  args = { X = "hcl" }\n}\n' };

  test('a JSON override after an HCL file wins where both set a key', () => {
    const json = { name: 'docker-bake.override.json', text: JSON.stringify({ target: { a: { args: { X: 'json' }, tags: ['a:json'] } } }) };
    expect(resolve([hcl, json], ['a']).targets.get('a')?.target).toMatchObject({ args: { X: 'json' }, tags: ['a:json'] });
  });

  test('an HCL override after a JSON file wins where both set a key', () => {
    const json = { name: 'docker-bake.json', text: JSON.stringify({ target: { a: { args: { X: 'json' } } } }) };
    const over = { name: 'docker-bake.override.hcl', text: 'target "a" {\n  args = { X = "override" }\n}\n' };
    expect(resolve([json, over], ['a']).targets.get('a')?.target.args).toEqual({ X: 'override' });
  });

  test('a JSON override sets the default of an HCL variable, and uses the HCL file\'s variables', () => {
    const json = { name: 'docker-bake.override.json', text: JSON.stringify({ variable: { TAG: { default: '2' } }, target: { a: { labels: { tag: '${TAG}' } } } }) };
    expect(resolve([hcl, json], ['a']).targets.get('a')?.target).toMatchObject({ tags: ['a:2'], labels: { tag: '2' } });
  });
});

describe('--set and variables', () => {
  test('--set on a parent reaches the targets that inherit it (buildx applies overrides at every inherits level)', () => {
    const text = 'target "_base" {\n  args = { A = "base" }\n}\ntarget "app" {\n  inherits = ["_base"]\n  tags = ["app:1"]\n}\n';
    const r = resolve([{ name: H, text }], ['app'], { set: ['_base.args.A=set', '_base.tags=base:2', '_base.platform=linux/arm64'] });
    // The child's own tags win over the parent's (overridden) ones; the rest comes from the parent.
    expect(r.targets.get('app')?.target).toMatchObject({ args: { A: 'set' }, tags: ['app:1'], platforms: ['linux/arm64'] });
  });

  test('--set takes buildx\'s singular key names too (arg, label, tag, platforms, extra-host, ulimit, annotation, entitlement, secret)', () => {
    const set = ['a.arg.X=1', 'a.arg.E', 'a.tag=t:1', 'a.tag+=t:2', 'a.label.l=v', 'a.platforms=linux/arm64', 'a.extra-host.h=1.2.3.4', 'a.ulimit=nofile=1024:1024', 'a.annotation=k=v', 'a.entitlement=network.host', 'a.secret=id=s,src=f'];
    const r = resolve([{ name: H, text: 'target "a" {}\n' }], ['a'], { set, env: { E: 'from-env' } });
    expect(r.targets.get('a')?.target).toMatchObject({
      args: { X: '1', E: 'from-env' },
      tags: ['t:1', 't:2'],
      labels: { l: 'v' },
      platforms: ['linux/arm64'],
      'extra-hosts': { h: '1.2.3.4' },
      ulimits: ['nofile=1024:1024'],
      annotations: ['k=v'],
      entitlements: ['network.host'],
      secret: ['id=s,src=f'],
    });
  });

  test('environment values of bool and number variables parse as buildx (Go strconv.ParseBool / ParseFloat, no Inf or NaN)', () => {
    const text = 'variable "B" { default = false }\nvariable "N" { default = 1 }\ntarget "a" {\n  args = { B = B, N = N }\n}\n';
    expect(resolve([{ name: H, text }], ['a'], { env: { B: 'True', N: '2.5e1' } }).targets.get('a')?.target.args).toEqual({ B: 'true', N: '25' });
    for (const env of [{ B: 'tRuE' }, { B: 'yes' }, { N: 'Infinity' }, { N: 'NaN' }, { N: ' 5' }, { N: '0x10' }]) {
      expect(() => resolve([{ name: H, text }], ['a'], { env }), JSON.stringify(env)).toThrow(expect.objectContaining({ code: 'KLN0852' }));
    }
  });
});

describe('regex_replace (Go RE2)', () => {
  const run = (expr: string) => resolve([{ name: H, text: `target "a" {\n  context = ${expr}\n}\n` }], ['a']).targets.get('a')?.target.context;

  test('a pattern that backtracks catastrophically in JavaScript runs in linear time, as in RE2', () => {
    const t0 = performance.now();
    expect(run(`regex_replace("${'a'.repeat(40)}!", "(a+)+$", "x")`)).toBe(`${'a'.repeat(40)}!`);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test('RE2 flags (?i) work; backreferences and lookarounds are errors, as RE2 has none', () => {
    expect(run('regex_replace("Hello", "(?i)h(E)", "J$1")')).toBe('Jello');
    expect(() => run('regex_replace("aa", "(a)\\\\1", "x")')).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('RE2') }));
    expect(() => run('regex_replace("ab", "a(?=b)", "x")')).toThrow(expect.objectContaining({ code: 'KLN0852', message: expect.stringContaining('RE2') }));
  });
});

describe('JSON positions', () => {
  test('an error in a JSON file points at the key of the target it is in, not the first key of that name', () => {
    const text = '{\n  "target": {\n    "a": {\n      "tags": ["a"]\n    },\n    "b": {\n      "tags": {"x": 1}\n    }\n  }\n}\n';
    expect(() => resolve([{ name: 'docker-bake.json', text }], ['b'])).toThrow(expect.objectContaining({ code: 'KLN0853', location: { file: 'docker-bake.json', line: 7, column: 7 } }));
  });
});

describe('--print', () => {
  test('${ and %{ in args, labels, annotations and dockerfile-inline print escaped ($${, %%{), as buildx\'s MarshalJSON', () => {
    const text = 'target "a" {\n  args = { A = "$${x}" }\n  labels = { L = "%%{ y }" }\n  annotations = ["k=$${z}"]\n  dockerfile-inline = "RUN echo $${HOME}"\n}\n';
    const printed = JSON.parse(printResolved(resolve([{ name: H, text }], ['a']))) as { target: { a: Record<string, unknown> } };
    expect(printed.target.a).toMatchObject({ args: { A: '$${x}' }, labels: { L: '%%{ y }' }, annotations: ['k=$${z}'], 'dockerfile-inline': 'RUN echo $${HOME}' });
    // What --print writes reads back as the same target.
    const back = resolve([{ name: 'printed.json', text: JSON.stringify(printed) }], ['a']).targets.get('a')?.target;
    expect(back).toMatchObject({ args: { A: '${x}' }, labels: { L: '%{ y }' }, annotations: ['k=${z}'], 'dockerfile-inline': 'RUN echo ${HOME}' });
  });
});

describe('patterns', () => {
  test('a target pattern that is no valid glob is a KLN0854 error, not a SyntaxError', () => {
    const files = [{ name: H, text: 'target "a" {}\n' }];
    expect(() => resolve(files, ['[z-a]'])).toThrow(expect.objectContaining({ name: 'BakeError', code: 'KLN0854' }));
    expect(() => resolve(files, ['a'], { set: ['[z-a].tags=x'] })).toThrow(expect.objectContaining({ name: 'BakeError', code: 'KLN0854' }));
  });
});

describe('build flags', () => {
  test('cache-to / cache-from without "=" are registry references, as buildx reads them (a,b two of them; "" none)', async () => {
    const r = resolve([{ name: H, text: 'target "a" {\n  cache-from = ["user/app:cache", "type=local,src=c", "r/a:1,r/b:2", ""]\n  cache-to = ["user/app:cache"]\n}\n' }], ['a']);
    const rt = r.targets.get('a');
    if (rt === undefined) throw new Error('no target a');
    const io = { stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: () => true }, cwd: '/work', env: {} };
    const b = await targetBuild(rt, { progress: 'quiet' }, io, { fileRelative: false, inlineDir: '/tmp' });
    // buildx's bake reads a string entry with ParseCacheEntry, as the --cache-from flag: the build's parser gets it as written.
    const none = { env: {}, home: '/nonexistent', cwd: '/' };
    expect((b.flags.cacheFrom ?? []).flatMap((v) => parseCacheImportSpecs(v, none))).toEqual([
      { type: 'registry', ref: 'user/app:cache' },
      { type: 'local', src: 'c', tag: 'latest' },
      { type: 'registry', ref: 'r/a:1' },
      { type: 'registry', ref: 'r/b:2' },
    ]);
    expect((b.flags.cacheTo ?? []).flatMap((v) => parseCacheExportSpecs(v, none))).toMatchObject([{ type: 'registry', ref: 'user/app:cache' }]);
  });

  test('an object entry of cache-from / cache-to / attest keeps a value with a comma or quote, as buildx takes the object itself', async () => {
    const text = 'target "a" {\n  cache-from = [{ type = "local", src = "c,1" }]\n  cache-to = [{ type = "local", dest = "d\\"x,2" }]\n  attest = [{ type = "provenance", builder-id = "https://ci.example/a,b" }]\n}\n';
    const rt = resolve([{ name: H, text }], ['a']).targets.get('a');
    if (rt === undefined) throw new Error('no target a');
    const io = { stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: () => true }, cwd: '/work', env: {} };
    const b = await targetBuild(rt, { progress: 'quiet' }, io, { fileRelative: false, inlineDir: '/tmp' });
    const none = { env: {}, home: '/nonexistent', cwd: '/' };
    expect((b.flags.cacheFrom ?? []).flatMap((v) => parseCacheImportSpecs(v, none))).toEqual([{ type: 'local', src: 'c,1', tag: 'latest' }]);
    expect((b.flags.cacheTo ?? []).flatMap((v) => parseCacheExportSpecs(v, none))).toMatchObject([{ type: 'local', dest: 'd"x,2' }]);
    expect(parseAttestations(undefined, b.flags.attest ?? [])).toEqual({ provenance: { mode: 'min', builderId: 'https://ci.example/a,b' } });
  });
});

describe('Compose', () => {
  test('a Compose file without a .yml name (-f -, a Bakefile) is read as Compose, as buildx tries Compose first', () => {
    const r = resolve([{ name: '-', text: 'services:\n  app:\n    image: app:1\n    build: .\n' }], []);
    expect(r.targets.get('app')?.target).toMatchObject({ context: '.', tags: ['app:1'] });
    // HCL and JSON without a known name are still HCL and JSON.
    expect(resolve([{ name: '-', text: 'target "a" {}\n' }], ['a']).targets.has('a')).toBe(true);
    expect(resolve([{ name: 'Bakefile', text: '{"target": {"a": {}}}' }], ['a']).targets.has('a')).toBe(true);
  });

  test('image is a tag only when the build section has no tags; x-bake tags and platforms add to the build section\'s (buildx ParseCompose, composeExtTarget)', () => {
    const text = [
      'services:',
      '  app:',
      '    image: app:image',
      '    build:',
      '      context: .',
      '      tags: [app:build]',
      '      platforms: [linux/amd64]',
      '      x-bake:',
      '        tags: [app:xbake, app:build]',
      '        platforms: [linux/arm64]',
      '  solo:',
      '    image: solo:image',
      '    build:',
      '      context: .',
      '      x-bake:',
      '        tags: [solo:xbake]',
    ].join('\n');
    const r = resolve([{ name: 'compose.yaml', text }], []);
    expect(r.targets.get('app')?.target).toMatchObject({ tags: ['app:build', 'app:xbake'], platforms: ['linux/amd64', 'linux/arm64'] });
    expect(r.targets.get('solo')?.target.tags).toEqual(['solo:image', 'solo:xbake']);
  });

  test('additional_contexts service:NAME is the target NAME (sanitized), as target:NAME', () => {
    const text = 'services:\n  api.v1:\n    build: ./api\n  app:\n    build:\n      context: .\n      additional_contexts:\n        api: service:api.v1\n';
    const r = resolve([{ name: 'compose.yaml', text }], ['app']);
    expect(r.targets.get('app')?.target.contexts).toEqual({ api: 'target:api_v1' });
    expect(r.targets.get('api_v1')?.linked).toBe(true);
  });

  test('BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP also keeps the environment out of Compose interpolation (buildx composeEnv)', () => {
    const text = 'services:\n  app:\n    image: app:${TAG:-dflt}\n    build: .\n';
    expect(resolve([{ name: 'compose.yaml', text }], [], { env: { TAG: 'env' } }).targets.get('app')?.target.tags).toEqual(['app:env']);
    expect(resolve([{ name: 'compose.yaml', text }], [], { env: { TAG: 'env', BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP: '1' } }).targets.get('app')?.target.tags).toEqual(['app:dflt']);
  });

  test('a build arg whose value is a map is an error, not "[object Object]"', () => {
    expect(() => resolve([{ name: 'compose.yaml', text: 'services:\n  app:\n    build:\n      context: .\n      args:\n        A:\n          x: 1\n' }], [])).toThrow(
      expect.objectContaining({ name: 'BakeError', code: 'KLN0853', message: expect.stringContaining('args') }),
    );
  });

  test('YAML warnings do not go to stderr as Node process warnings', () => {
    const spy = vi.spyOn(process, 'emitWarning');
    try {
      resolve([{ name: 'compose.yaml', text: 'services:\n  app:\n    image: !custom app\n    build: .\n' }], []);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

describe('--print and secrets', () => {
  test('an s3 cache key interpolated from the environment is printed as xxxxx (cache-to and cache-from), the rest as written', () => {
    const text = 'variable "KEY" {}\ntarget "a" {\n  cache-to = ["type=s3,region=r,bucket=b,secret_access_key=${KEY},session_token=tok"]\n  cache-from = ["type=s3,region=r,bucket=b,secret_access_key=${KEY}", "type=local,src=c"]\n}\n';
    const out = printResolved(resolve([{ name: H, text }], ['a'], { env: { KEY: 'sekrit-value' } }));
    expect(out).not.toContain('sekrit-value');
    expect(out).not.toContain('tok"');
    const printed = JSON.parse(out) as { target: { a: Record<string, string[]> } };
    expect(printed.target.a['cache-to']).toEqual(['type=s3,region=r,bucket=b,secret_access_key=xxxxx,session_token=xxxxx']);
    expect(printed.target.a['cache-from']).toEqual(['type=s3,region=r,bucket=b,secret_access_key=xxxxx', 'type=local,src=c']);
  });
});
