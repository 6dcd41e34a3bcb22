import { describe, expect, test } from 'vitest';
import { readBuildpackToml, readBuildToml, readExtendConfigToml, readExtensionToml, readOrderExtensionsToml, readDetectPlan, readLaunchToml, readLayerToml, readOrderToml, readRunToml, readStoreToml, readSystemToml } from './descriptors.js';

describe('descriptor readers', () => {
  test('buildpack.toml: component and composite', () => {
    const c = readBuildpackToml('api = "0.10"\n[buildpack]\nid = "kt/httpd"\nversion = "0.0.1"\nclear-env = true\n[[targets]]\nos = "linux"\n');
    expect(c).toEqual({ api: '0.10', id: 'kt/httpd', version: '0.0.1', clearEnv: true, targets: [{ os: 'linux' }] });
    const comp = readBuildpackToml('api = "0.10"\n[buildpack]\nid = "kt/all"\nversion = "1"\n[[order]]\n[[order.group]]\nid = "a"\nversion = "1"\noptional = true\n[[order]]\n[[order.group]]\nid = "b"\n');
    expect(comp.order).toEqual([[{ id: 'a', version: '1', optional: true }], [{ id: 'b', optional: false }]]);
  });
  test('a TOML syntax error is KLN0901 at file:line:col', () => {
    expect(() => readBuildpackToml('api = "0.10"\n[buildpack\nid = "x"\n', 'kt/x/buildpack.toml')).toThrow(
      expect.objectContaining({ code: 'KLN0901', location: { file: 'kt/x/buildpack.toml', line: 2, column: expect.any(Number) } }),
    );
  });
  test('wrong shapes name the file and key', () => {
    expect(() => readBuildpackToml('api = "0.10"\n[buildpack]\nversion = "1"\n', 'b.toml')).toThrow(/b.toml:2:1: buildpack.id is required/);
    expect(() => readBuildpackToml('api = 10\n[buildpack]\nid="a"\nversion = "1"\n', 'b.toml')).toThrow(/api must be a string/);
    expect(() => readBuildpackToml('api = "0.10"\n[buildpack]\nid = "app"\nversion = "1"\n')).toThrow(/not a valid buildpack id/);
  });
  test('order.toml, system.toml and run.toml', () => {
    expect(readOrderToml('[[order]]\n[[order.group]]\nid = "a"\nversion = "1"\n[[order.group]]\nid = "b"\noptional = true\n')).toEqual([
      [
        { id: 'a', version: '1', optional: false },
        { id: 'b', optional: true },
      ],
    ]);
    expect(readSystemToml('[system.pre]\n[[system.pre.buildpacks]]\nid = "p"\n').pre).toEqual([{ id: 'p', optional: false }]);
    expect(readRunToml('[[images]]\nimage = "kt/run"\nmirrors = ["m/run"]\n')).toEqual(['kt/run']);
    expect(readRunToml('[run-image]\nimage = "old/run"\n')).toEqual(['old/run']);
  });
  test('detect plan: sections and [[or]]; a top-level version in requires is an error', () => {
    const p = readDetectPlan('[[provides]]\nname = "a"\n[[requires]]\nname = "a"\n[requires.metadata]\nv = "1"\n[[or]]\n[[or.provides]]\nname = "b"\n');
    expect(p).toEqual({ sections: { provides: ['a'], requires: [{ name: 'a', metadata: { v: '1' } }] }, or: [{ provides: ['b'], requires: [] }] });
    expect(() => readDetectPlan('[[requires]]\nname = "a"\nversion = "1"\n', 'plan.toml')).toThrow(expect.objectContaining({ code: 'KLN0901', message: expect.stringContaining('requires[0].version') }));
    expect(readDetectPlan('')).toEqual({ sections: { provides: [], requires: [] }, or: [] });
  });
  test('layer toml, launch.toml, build.toml, store.toml', () => {
    expect(readLayerToml('[types]\nlaunch = true\ncache = true\n[metadata]\nsum = "x"\n', 'l.toml')).toEqual({ launch: true, build: false, cache: true, metadata: { sum: 'x' } });
    // Buildpack API < 0.6: flags at the top level; a restored toml (metadata only) has no flags
    expect(readLayerToml('launch = true\nbuild = true\n[metadata]\nv = 1\n', 'l.toml', '0.5')).toEqual({ launch: true, build: true, cache: false, metadata: { v: 1 } });
    // typo tour 4: API 0.6+ with the old top-level flags fails as in lifecycle (kiln exported the layer)
    expect(() => readLayerToml('launch = true\n', 'kt/x: layers/kt_x/l.toml', '0.10')).toThrow(expect.objectContaining({ code: 'KLN0905', message: 'kt/x: layers/kt_x/l.toml: the launch, cache and build flags should be in the types table (Buildpack API 0.10)' }));
    // ... and a [types] table of such a buildpack is ignored, with lifecycle's warning (kiln used it)
    const warned: string[] = [];
    expect(readLayerToml('build = true\n[types]\nlaunch = true\n', 'l.toml', '0.5', (m) => warned.push(m))).toEqual({ launch: false, build: true, cache: false, metadata: {} });
    expect(warned).toEqual([expect.stringContaining("l.toml: types table isn't supported in Buildpack API 0.5")]);
    expect(readLayerToml('[metadata]\nv = 1\n', 'l.toml')).toEqual({ launch: false, build: false, cache: false, metadata: { v: 1 } });
    const l = readLaunchToml('[[labels]]\nkey = "k"\nvalue = "v"\n[[processes]]\ntype = "web"\ncommand = ["serve"]\nargs = ["/x"]\ndefault = true\n[[processes]]\ntype = "old"\ncommand = "run me"\n[[slices]]\npaths = ["*.txt"]\n', 'launch.toml', 'kt/a');
    expect(l.labels).toEqual([{ key: 'k', value: 'v' }]);
    expect(l.processes).toEqual([
      { type: 'web', command: ['serve'], args: ['/x'], direct: true, default: true, buildpackId: 'kt/a' },
      { type: 'old', command: ['run me'], args: [], direct: true, default: false, buildpackId: 'kt/a' },
    ]);
    expect(l.slices).toEqual([['*.txt']]);
    expect(() => readLaunchToml('[[processes]]\ntype = "a b"\ncommand = ["x"]\n', 'launch.toml', 'kt/a')).toThrow(/processes\[0\].type "a b" may only contain/);
    expect(readBuildToml('[[unmet]]\nname = "dep"\n', 'build.toml').unmet).toEqual(['dep']);
    expect(readStoreToml('[metadata]\ncount = 2\n', 'store.toml')).toEqual({ count: 2 });
  });
  test('extension.toml: fields, programs, and what an extension may not be', () => {
    const x = readExtensionToml('api = "0.10"\n[extension]\nid = "kt/ext"\nversion = "0.0.1"\nhomepage = "h"\n[[targets]]\nos = "linux"\n', 'e.toml', { detect: false, generate: true, detectPlan: '[[provides]]\nname = "x"\n' });
    expect(x).toEqual({ api: '0.10', id: 'kt/ext', version: '0.0.1', homepage: 'h', clearEnv: false, targets: [{ os: 'linux' }], extension: { detect: false, generate: true, detectPlan: '[[provides]]\nname = "x"\n' } });
    expect(() => readExtensionToml('api = "0.10"\n[buildpack]\nid = "a"\nversion = "1"\n', 'kt/x/extension.toml')).toThrow(expect.objectContaining({ code: 'KLN0901', message: 'kt/x/extension.toml: extension table is required' }));
    expect(() => readExtensionToml('api = "0.10"\n[extension]\nid = "a"\nversion = "1"\n[[order]]\n', 'e.toml')).toThrow(/e.toml: order is not allowed/);
    expect(() => readExtensionToml('api = "0.10"\n[extension]\nversion = "1"\n', 'e.toml')).toThrow(/e.toml:2:1: extension.id is required/);
  });
  test('order.toml [[order-extensions]]: every entry an optional extension', () => {
    const text = '[[order]]\n[[order.group]]\nid = "bp"\n[[order-extensions]]\n[[order-extensions.group]]\nid = "x"\nversion = "1"\n[[order-extensions.group]]\nid = "y"\noptional = false\n';
    expect(readOrderExtensionsToml(text)).toEqual([[{ id: 'x', version: '1', optional: true, extension: true }, { id: 'y', optional: true, extension: true }]]);
    expect(readOrderToml(text)).toEqual([[{ id: 'bp', optional: false }]]);
    expect(readOrderExtensionsToml('[[order]]\n')).toEqual([]);
  });
  test('extend-config.toml: build and run args; reserved names are KLN0908 naming the file', () => {
    expect(readExtendConfigToml('[[build.args]]\nname = "a"\nvalue = "1"\n[[run.args]]\nname = "b"\nvalue = "2"\n')).toEqual({ build: [{ name: 'a', value: '1' }], run: [{ name: 'b', value: '2' }] });
    expect(() => readExtendConfigToml('[[run.args]]\nname = "user_id"\nvalue = "0"\n', 'kt/x: extend-config.toml')).toThrow(expect.objectContaining({ code: 'KLN0908', message: expect.stringMatching(/^kt\/x: extend-config.toml: run.args name "user_id" is reserved/) }));
    // the image being extended is the platform's: another one would not be the run image the metadata names
    expect(() => readExtendConfigToml('[[run.args]]\nname = "base_image"\nvalue = "kt/run-alt"\n', 'kt/x: extend-config.toml')).toThrow(expect.objectContaining({ code: 'KLN0908', message: expect.stringMatching(/^kt\/x: extend-config.toml: run.args name "base_image" is reserved/) }));
    expect(() => readExtendConfigToml('[[build.args]]\nvalue = "1"\n', 'c.toml')).toThrow(/c.toml:1:1: build.args\[0\].name is required/);
  });
});
