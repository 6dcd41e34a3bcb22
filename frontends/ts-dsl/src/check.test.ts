/**
 * checkBuildFile (the core of `kiln check`) on files on disk: the globals a build file has,
 * `kiln` and `kiln/ts` resolving to the DSL, relative imports followed, strict options on.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkBuildFile, formatCheckDiagnostic } from './check.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-check-unit-'));
  await mkdir(join(dir, 'lib'));
  await writeFile(join(dir, 'lib/names.ts'), 'export const names: readonly string[] = ["a", "b"];\n');
  await writeFile(
    join(dir, 'good.ts'),
    `import { image, merge, sh, type Ctx, type State } from "kiln/ts";\nimport { names } from "./lib/names.js";\nexport default async (ctx: Ctx) => {\n  console.log(ctx.platform);\n  const parts: State[] = names.map((n) => image("busybox").run(sh\`make \${n}\`));\n  const text = new TextDecoder().decode(await ctx.solve(parts[0] ?? image("busybox")).readBytes("/x"));\n  return merge(parts).image({ labels: { text } });\n};\n`,
  );
  await writeFile(
    join(dir, 'bad.ts'),
    `import { image } from "kiln";\nexport default () => {\n  const e = (globalThis as unknown as { process: unknown }).process;\n  const p = process.env;\n  return image("busybox").run(["a"], { network: "bridge" });\n};\n`,
  );
  // esbuild drops an import used only as a type, so a type imported without `type` builds fine
  await writeFile(join(dir, 'plain-types.ts'), `import { Ctx, State, image } from "kiln";\nexport default (ctx: Ctx): State => image("busybox").dir(ctx.platform);\n`);
  const targets = 'import { scratch, type Ctx } from "kiln";\nconst web = scratch();\nexport const targets = {\n  web,\n  api: { build: (ctx: Ctx) => scratch().mkfile("/t", ctx.target ?? ""), description: "the API" },\n  %s\n};\nexport default web;\n';
  await writeFile(join(dir, 'targets.ts'), targets.replace('%s', 'docs: web.image({ cmd: ["true"] }),'));
  await writeFile(join(dir, 'bad-targets.ts'), targets.replace('%s', 'docs: 42,'));
  await writeFile(join(dir, 'build.kiln'), `// syntax=kiln/ts\nimport { image } from "kiln";\nimport { names } from "./lib/names.js";\nexport default () => image(names);\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkBuildFile', () => {
  test('a correct file (kiln/ts, relative import, console, TextDecoder) has no diagnostics', () => {
    expect(checkBuildFile(join(dir, 'good.ts'))).toEqual([]);
  });

  test('a type imported without `type` is no error (the build strips it; checking must not be stricter than building)', () => {
    expect(checkBuildFile(join(dir, 'plain-types.ts'))).toEqual([]);
  });

  test('a build file with another extension (// syntax=kiln/ts) is checked as TypeScript under its own name', () => {
    const lines = checkBuildFile(join(dir, 'build.kiln')).map((d) => formatCheckDiagnostic(d, dir));
    expect(lines).toEqual([`build.kiln:4:28: error TS2345: Argument of type 'readonly string[]' is not assignable to parameter of type 'string'.`]);
  });

  test('a targets export is checked against Targets without an annotation, at the export', () => {
    expect(checkBuildFile(join(dir, 'targets.ts'))).toEqual([]);
    const [d, ...rest] = checkBuildFile(join(dir, 'bad-targets.ts'));
    expect(rest).toEqual([]);
    expect(formatCheckDiagnostic(d as NonNullable<typeof d>, dir).split('\n')).toEqual([
      `bad-targets.ts:3:1: error TS2322: Type '{ web: State; api: { build: (ctx: Ctx) => State; description: string; }; docs: number; }' is not assignable to type 'Readonly<Record<string, Target>>'.`,
      "  Property 'docs' is incompatible with index signature.",
      "    Type 'number' is not assignable to type 'Target'.",
    ]);
  });

  test('no Node globals, and a wrong option value, each located', () => {
    const lines = checkBuildFile(join(dir, 'bad.ts')).map((d) => formatCheckDiagnostic(d, dir));
    expect(lines).toEqual([
      "bad.ts:4:13: error TS2591: Cannot find name 'process': a build file runs without Node's globals and modules (it sees its inputs through ctx).",
      `bad.ts:5:40: error TS2322: Type '"bridge"' is not assignable to type 'NetworkMode | undefined'.`,
    ]);
  });
});
