import { expect, test } from 'vitest';
import { bundleBuildFile, type SourceReader } from './bundle.js';

const memory = (files: Record<string, string>): SourceReader => ({
  async read(path) {
    const f = files[path];
    return f === undefined ? undefined : new TextEncoder().encode(f);
  },
});

// Before: esbuild's `No matching export in "../../work/main/frontends/ts-dsl/dist/dsl/index.js"
// for import "imgae"`, a path of kiln's install the build file never named.
test('a misspelled import from "kiln" is named as the build file wrote it, with the closest export', async () => {
  const files = memory({ 'kiln.build.ts': 'import { imgae } from "kiln";\nexport default () => imgae("busybox");\n' });
  await expect(bundleBuildFile('kiln.build.ts', files)).rejects.toMatchObject({
    code: 'KLN0801',
    message: 'kiln.build.ts:1:10: "kiln" has no export "imgae" (did you mean image?)',
    location: { file: 'kiln.build.ts', line: 1, column: 10 },
    hint: 'import { image } from "kiln"',
  });
});

test('"kiln/ts" too; with nothing close, the hint points at the DSL reference', async () => {
  const files = memory({ 'kiln.build.ts': 'import { image } from "kiln";\nimport { frobnicate } from "kiln/ts";\nexport default () => image(frobnicate);\n' });
  await expect(bundleBuildFile('kiln.build.ts', files)).rejects.toMatchObject({
    message: 'kiln.build.ts:2:10: "kiln" has no export "frobnicate"',
    location: { file: 'kiln.build.ts', line: 2, column: 10 },
    hint: 'docs/ts-dsl.md lists what "kiln" exports',
  });
});

test("a missing export of the user's own file keeps esbuild's message, which names that file", async () => {
  const files = memory({ 'kiln.build.ts': 'import { helpr } from "./lib.ts";\nexport default helpr;\n', 'lib.ts': 'export const helper = 1;\n' });
  await expect(bundleBuildFile('kiln.build.ts', files)).rejects.toMatchObject({ code: 'KLN0801', message: expect.stringMatching(/^kiln\.build\.ts:1:10: No matching export in "kiln-build:lib\.ts" for import "helpr"$/) });
});
