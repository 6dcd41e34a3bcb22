import { describe, expect, test, vi } from 'vitest';
import { parseOverrides, resolveTargets } from './config.js';
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

describe('Compose', () => {
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
