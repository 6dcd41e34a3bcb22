/**
 * Named targets (`export const targets = { … }`) through bundling and the real evaluator: which
 * build `--target` picks, how an unknown name fails, and what `--call=targets` lists.
 */
import { describe, expect, test } from 'vitest';
import { decodeDefinition, definitionToJsonLines } from '@kiln/llb-core';
import { bundleBuildFile, type SourceReader } from '../load/bundle.js';
import { evaluateBundle, type Handlers } from './host.js';
import type { InitParams } from './protocol.js';

const memory = (text: string): SourceReader => ({
  async read(path) {
    return path === 'kiln.build.ts' ? new TextEncoder().encode(text) : undefined;
  },
});
const init: InitParams = { args: {}, platforms: ['linux/amd64'], inputs: {} };
const refuse = async (): Promise<never> => {
  throw new Error('not in this test');
};
const warnings: string[] = [];
const handlers: Handlers = { solve: refuse, readFile: refuse, readDir: refuse, statFile: refuse, resolveImageConfig: refuse, warn: (m) => warnings.push(m) };

/** The build file's evaluation for `target`: the mkfile data of its result (one per file op). */
async function build(text: string, target?: string): Promise<string[]> {
  const ev = await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(text)), { ...init, ...(target === undefined ? {} : { target }), imageConfig: false }, handlers);
  const json = definitionToJsonLines(decodeDefinition(new Uint8Array(Buffer.from(ev.results[0]?.definition ?? '', 'base64'))));
  return [...json.matchAll(/"mkfile":\{"path":"([^"]+)"/g)].map((m) => m[1] ?? '');
}
const list = async (text: string) => (await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(text)), { ...init, listTargets: true }, handlers)).targets;

const file = [
  'import { scratch, type Ctx, type Targets } from "kiln";',
  'const web = scratch().mkfile("/web", "w");',
  '',
  'export const targets = {',
  '  web,',
  '  api: (ctx: Ctx) => scratch().mkfile(`/api-${ctx.target}`, "a"),',
  '  docs: { build: scratch().mkfile("/docs", "d").image({ cmd: ["true"] }), description: "the static site" },',
  '} satisfies Targets;',
  'export default web;',
  '',
].join('\n');

describe('named targets', () => {
  test('--target picks a State, a function (with ctx.target set) or a { build, description }; none builds the default export', async () => {
    warnings.length = 0;
    expect(await build(file, 'web')).toEqual(['/web']);
    expect(await build(file, 'api')).toEqual(['/api-api']);
    expect(await build(file, 'docs')).toEqual(['/docs']);
    expect(await build(file)).toEqual(['/web']);
    // the targets export made the choice: no "never reads ctx.target" warning
    expect(warnings).toEqual([]);
  });

  test('an unknown --target fails as a Dockerfile build does: KLN0806 at the export, the nearest name, the list', async () => {
    const p = build(file, 'Docs ');
    await expect(p).rejects.toMatchObject({ code: 'KLN0806', location: { file: 'kiln.build.ts', line: 4, column: 1 }, hint: 'targets are web, api, docs; --call=targets lists them' });
    await expect(p).rejects.toThrow('kiln.build.ts:4:1: target "Docs " could not be found in kiln.build.ts (did you mean docs?)');
    await expect(build(file, 'zzz')).rejects.toThrow(/target "zzz" could not be found in kiln\.build\.ts$/);
  });

  test('without a default export, a build needs --target (KLN0806 naming the targets)', async () => {
    const noDefault = file.replace('export default web;', '');
    await expect(build(noDefault)).rejects.toMatchObject({ code: 'KLN0806', hint: 'targets are web, api, docs; or add export default targets.web' });
    expect(await build(noDefault, 'api')).toEqual(['/api-api']);
  });

  test('a target of the wrong shape is KLN0803 at the export, naming it', async () => {
    await expect(build('import { scratch } from "kiln";\nexport default () => scratch();\nexport const targets = { web: 42 };\n', 'web')).rejects.toMatchObject({
      code: 'KLN0803',
      location: { line: 3 },
      message: expect.stringContaining('targets.web is a number; a target is a State') as string,
    });
    await expect(build('import { scratch } from "kiln";\nexport const targets = { web: { build: scratch(), description: 7 } };\n', 'web')).rejects.toThrow(/targets\.web\.description is a number/);
  });

  test('typo tour 4: a target returning nothing is named as the target, a near-miss key of a target object and a singular "target" export are named', async () => {
    // was "the default export returned undefined" at 1:1, in a file without a default export
    await expect(build('import { scratch } from "kiln";\nexport const targets = { web: () => undefined };\n', 'web')).rejects.toMatchObject({
      code: 'KLN0803',
      location: { line: 2 },
      message: expect.stringContaining('targets.web returned undefined; return a State') as string,
    });
    await expect(build('import { scratch } from "kiln";\nexport const targets = { web: { buld: () => scratch() } };\n', 'web')).rejects.toThrow('targets.web has the key "buld" (did you mean build?); a target object is { build, description }');
    warnings.length = 0;
    await build('import { scratch } from "kiln";\nexport const target = { web: scratch() };\nexport default () => scratch();\n');
    expect(warnings).toContain('the build file exports "target", which kiln does not read: named targets are export const targets = { … }');
  });

  test('--call=targets lists them in order with descriptions and the default; a default that is none of them is "(default)"', async () => {
    expect(await list(file)).toEqual([{ name: 'web', default: true }, { name: 'api' }, { name: 'docs', description: 'the static site' }]);
    expect(await list(file.replace('export default web;', 'export default () => scratch();'))).toEqual([{ name: 'web' }, { name: 'api' }, { name: 'docs', description: 'the static site' }, { name: '', default: true }]);
    expect(await list('import { scratch } from "kiln";\nexport default () => scratch();\n')).toEqual([{ name: '', default: true }]);
  });
});
