/**
 * Bundling plus evaluation in a real child `node` under the permission model, with the parent's
 * handlers answering the ctx calls (no gateway: the handlers are the FrontendClient's stand-in).
 */
import { describe, expect, test } from 'vitest';
import { decodeDefinition, definitionToJsonLines } from '@kiln/llb-core';
import { bundleBuildFile, type SourceReader } from '../load/bundle.js';
import { evaluateBundle, type Handlers } from './host.js';
import type { InitParams } from './protocol.js';

const memory = (files: Record<string, string>): SourceReader => ({
  async read(path) {
    const f = files[path];
    return f === undefined ? undefined : new TextEncoder().encode(f);
  },
});

const init: InitParams = { args: { GREETING: 'hi there' }, platforms: ['linux/amd64'], inputs: {} };
const baseConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH=/bin'], Cmd: ['sh'], WorkingDir: '/' } };

function handlers(log: { warnings: string[]; solved: string[] } = { warnings: [], solved: [] }): Handlers {
  return {
    solve: async ({ definition }) => {
      log.solved.push(definitionToJsonLines(decodeDefinition(new Uint8Array(Buffer.from(definition, 'base64')))));
      return { ref: 'r1' };
    },
    readFile: async ({ ref, path }) => ({ data: Buffer.from(`${ref}:${path}\nb\n`).toString('base64') }),
    readDir: async () => ({ entries: [] }),
    statFile: async ({ path }) => ({ stat: { path, mode: 0o644, uid: 0, gid: 0, size: 1, modTime: '1' } }),
    resolveImageConfig: async () => ({ digest: 'sha256:' + '0'.repeat(64), config: Buffer.from(JSON.stringify(baseConfig)).toString('base64') }),
    warn: (message, location) => log.warnings.push(`${location ? `${location.file}:${location.line}:${location.column}: ` : ''}${message}`),
  };
}

const evaluate = async (files: Record<string, string>, h = handlers()) => evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(files)), init, h);

describe('evaluation', () => {
  test('a build with a relative import returns its LLB and the inherited image config', async () => {
    const r = await evaluate({
      'kiln.build.ts': `import { image, sh, type Ctx } from "kiln";\nimport { who } from "./lib/who.js";\nexport default (ctx: Ctx) => image("busybox").run(sh\`echo \${ctx.args.GREETING} \${who}\`).image({ cmd: ["cat", "/hi"] });\n`,
      'lib/who.ts': `export const who: string = "kiln";\n`,
    });
    expect(r.multi).toBe(false);
    const json = definitionToJsonLines(decodeDefinition(new Uint8Array(Buffer.from(r.results[0]?.definition ?? '', 'base64'))));
    expect(json).toContain(`"args":["/bin/sh","-c","echo 'hi there' kiln"]`);
    const cfg = JSON.parse(r.results[0]?.config ?? '{}') as { config: Record<string, unknown> };
    expect(cfg.config).toEqual({ Env: ['PATH=/bin'], Cmd: ['cat', '/hi'], WorkingDir: '/' });
  });

  test('run and file calls carry their build-file location in the Definition source map; no spurious warnings', async () => {
    const log = { warnings: [] as string[], solved: [] as string[] };
    const r = await evaluate({
      'kiln.build.ts': `import { image } from "kiln";\nimport { step } from "./step.js";\nexport default () =>\n  step(image("busybox")\n    .run(["false"]));\n`,
      'step.ts': `import type { State } from "kiln";\nexport const step = (s: State): State => s.mkdir("/a").mkfile("/a/b", "x");\n`,
    }, handlers(log));
    const def = decodeDefinition(new Uint8Array(Buffer.from(r.results[0]?.definition ?? '', 'base64')));
    expect(def.source?.infos?.map((i) => i.filename).sort()).toEqual(['kiln.build.ts', 'step.ts']);
    const located = [...(def.source?.locations ?? new Map())].flatMap(([, l]) => l.locations ?? []).map((l) => {
      const file = def.source?.infos?.[l.sourceIndex ?? 0]?.filename;
      const start = l.ranges[0]?.start;
      return `${file}:${start?.line}:${(start?.character ?? 0) + 1}`;
    });
    // the exec at `.run(` (V8 places a call at its property), the one FileOp at its first call,
    // the image source at `image(`
    expect(located.sort()).toEqual(['kiln.build.ts:4:8', 'kiln.build.ts:5:6', 'step.ts:2:44']);
    expect(log.warnings).toEqual([]);
  });

  test('ctx.solve + readFile go to the parent, and ctx.platforms gives one result per platform', async () => {
    const log = { warnings: [] as string[], solved: [] as string[] };
    const r = await evaluateBundle(
      await bundleBuildFile('kiln.build.ts', memory({
        'kiln.build.ts': `import { image, scratch, type Ctx } from "kiln";\nexport default async (ctx: Ctx) => {\n  const names = (await ctx.solve(ctx.local("context")).readFile("/list.txt")).trim().split("\\n");\n  return ctx.platforms((p) => scratch().mkfile("/n", names.join(",") + p));\n};\n`,
      })),
      { ...init, platforms: ['linux/amd64', 'linux/arm64'] },
      handlers(log),
    );
    expect(log.solved[0]).toContain('local://context');
    expect(r.multi).toBe(true);
    expect(r.results.map((x) => x.platform)).toEqual(['linux/amd64', 'linux/arm64']);
    const json = definitionToJsonLines(decodeDefinition(new Uint8Array(Buffer.from(r.results[1]?.definition ?? '', 'base64'))));
    expect(json).toContain(Buffer.from('r1:/list.txt,blinux/arm64').toString('base64'));
  });

  test('ctx.solve inside ctx.platforms marshals for that platform (not the first); solve(st, { platform }) picks one', async () => {
    const log = { warnings: [] as string[], solved: [] as string[] };
    await evaluateBundle(
      await bundleBuildFile('kiln.build.ts', memory({
        'kiln.build.ts': `import { image, scratch, type Ctx } from "kiln";\nexport default async (ctx: Ctx) => {\n  await ctx.solve(image("busybox").run(["a"]), { platform: "linux/arm/v7" }).readFile("/x");\n  return ctx.platforms(async (p) => scratch().mkfile("/n", await ctx.solve(image("busybox").run(["b"])).readFile("/x")));\n};\n`,
      })),
      { ...init, platforms: ['linux/amd64', 'linux/arm64'] },
      handlers(log),
    );
    const archOf = (json: string | undefined): string[] => [...(json ?? '').matchAll(/"Architecture":"(\w+)"(,"OS":"linux","Variant":"(\w+)")?/g)].map((m) => m[1] + (m[3] ?? ''));
    expect(log.solved).toHaveLength(3);
    expect(new Set(archOf(log.solved[0]))).toEqual(new Set(['armv7']));
    expect(new Set(archOf(log.solved[1]))).toEqual(new Set(['amd64']));
    expect(new Set(archOf(log.solved[2]))).toEqual(new Set(['arm64']));
  });

  test('an error thrown by the build points at the build file line and column', async () => {
    const p = evaluate({ 'kiln.build.ts': `import { image } from "kiln";\nexport default () => {\n  const x = 1;\n  throw new Error("no image for " + x);\n};\n` });
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 4, column: 9 } });
    await expect(p).rejects.toThrow(/^kiln\.build\.ts:4:9: no image for 1$/);
  });

  test('Node built-ins are rejected at bundling, with the import location', async () => {
    const p = bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `import { scratch } from "kiln";\nimport { readFileSync } from "node:fs";\nexport default () => scratch().mkfile("/x", readFileSync("/etc/hostname"));\n` }));
    await expect(p).rejects.toMatchObject({ code: 'KLN0802', location: { file: 'kiln.build.ts', line: 2, column: 30 } });
  });

  test('a syntax error is reported with its location', async () => {
    const p = bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `export default () => {\n  return (;\n};\n` }));
    await expect(p).rejects.toMatchObject({ code: 'KLN0801', location: { file: 'kiln.build.ts', line: 2 } });
  });

  test('the evaluator reads no file but the bundle (import hooks, then the permission model)', async () => {
    const p = evaluate({ 'kiln.build.ts': `import { scratch } from "kiln";\nexport default async () => {\n  const m = "node:" + "fs";\n  const fs = await import(m);\n  fs.readFileSync("/etc/hostname");\n  return scratch();\n};\n` });
    // The hooks refuse it on Node's loader thread, whose stack has no frame of the build file:
    // only static imports (refused when bundling) carry a location.
    await expect(p).rejects.toMatchObject({ code: 'KLN0803' });
    await expect(p).rejects.toThrow(/import\("node:fs"\) is not available in a build file/);
  });

  // V8 places a call's column at the called property (`now`, `random`).
  test('--target that the build never reads is a warning at its default export (a Dockerfile fails on an unknown one)', async () => {
    const withTarget = { ...init, target: 'web' };
    const files = (body: string) => ({ 'kiln.build.ts': `import { scratch, type Ctx } from "kiln";\n\nexport default (${body}` });
    const ignoring = { warnings: [] as string[], solved: [] as string[] };
    await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(files('_ctx: Ctx) => scratch();\n'))), withTarget, handlers(ignoring));
    expect(ignoring.warnings).toEqual(['kiln.build.ts:3:1: --target web was given, but the build never reads ctx.target: it built its whole result']);
    for (const reads of ['{ target }: Ctx) => scratch().mkfile("/t", target ?? "all");\n', 'ctx: Ctx) => { const o = { ...ctx }; return scratch().mkfile("/t", String(o.target)); };\n']) {
      const log = { warnings: [] as string[], solved: [] as string[] };
      await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(files(reads))), withTarget, handlers(log));
      expect(log.warnings, reads).toEqual([]);
    }
    // without --target, nothing to say
    const none = { warnings: [] as string[], solved: [] as string[] };
    await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory(files('_ctx: Ctx) => scratch();\n'))), init, handlers(none));
    expect(none.warnings).toEqual([]);
  });

  test('Date.now and Math.random warn once with their location', async () => {
    const log = { warnings: [] as string[], solved: [] as string[] };
    await evaluate({ 'kiln.build.ts': `import { scratch } from "kiln";\nexport default () => {\n  const t = Date.now() + Date.now();\n  return scratch().mkfile("/r", String(Math.random() > 2 || t > 0));\n};\n` }, handlers(log));
    expect(log.warnings).toEqual([
      'kiln.build.ts:3:18: Date.now() makes the build nondeterministic (the LLB, and so the cache, can differ per run)',
      'kiln.build.ts:4:45: Math.random() makes the build nondeterministic (the LLB, and so the cache, can differ per run)',
    ]);
  });

  test('a build whose promise never settles fails instead of hanging', async () => {
    await expect(evaluate({ 'kiln.build.ts': `export default () => new Promise(() => {});\n` })).rejects.toMatchObject({ code: 'KLN0803', message: expect.stringContaining('never settles') });
  });

  test('a throw in a timer callback is the build error, at its place (typo tour 4: was "never settles" at 1:1)', async () => {
    const p = evaluate({ 'kiln.build.ts': `export default () => {\n  setTimeout(() => {\n    throw new Error("late boom");\n  }, 0);\n  return new Promise(() => {});\n};\n` });
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3 } });
    await expect(p).rejects.toThrow(/late boom/);
  });

  test('a ctx call still running when the build returns is warned about at its place (typo tour 4: its error was lost silently)', async () => {
    const log = { warnings: [] as string[], solved: [] as string[] };
    const slow: Handlers = { ...handlers(log), readFile: () => new Promise((resolve) => setTimeout(() => resolve({ data: '' }), 300)) };
    await evaluate({ 'kiln.build.ts': `import { scratch, type Ctx } from "kiln";\nexport default (ctx: Ctx) => {\n  ctx.solve(scratch()).readFile("/conf");\n  return scratch();\n};\n` }, slow);
    expect(log.warnings).toEqual(['kiln.build.ts:3:24: readFile("/conf") was still running when the build returned: its result and any error are lost (an await missing?)']);
  });

  test('a build waiting on ctx calls is kept alive until they answer', async () => {
    const slow = handlers();
    const r = await evaluateBundle(
      await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `import { scratch, type Ctx } from "kiln";\nexport default async (ctx: Ctx) => scratch().mkfile("/t", await ctx.solve(scratch()).readFile("/x"));\n` })),
      init,
      { ...slow, readFile: async (p) => { await new Promise((res) => setTimeout(res, 300)); return slow.readFile(p); } },
    );
    expect(r.results).toHaveLength(1);
  });

  test('the build\'s console output reaches the log handler line by line (stdout stays the protocol)', async () => {
    const lines: string[] = [];
    const r = await evaluateBundle(
      await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `import { scratch } from "kiln";\nexport default () => {\n  console.log("building", 2);\n  console.error("to stderr");\n  return scratch();\n};\n` })),
      init,
      { ...handlers(), log: (l) => lines.push(l) },
    );
    expect(r.results).toHaveLength(1);
    expect(lines).toEqual(['building 2', 'to stderr']);
  });

  test('console output of the module\'s top level and of stdout-bound console methods (dir, table, group, count, timeLog) reaches the log handler too', async () => {
    const lines: string[] = [];
    const src = `import { scratch } from "kiln";\nconsole.log("top level");\nconsole.dir({ a: 1 });\nexport default () => {\n  console.group("g");\n  console.info("in group");\n  console.groupEnd();\n  console.count("n");\n  console.table([1]);\n  return scratch();\n};\n`;
    const r = await evaluateBundle(await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': src })), init, { ...handlers(), log: (l) => lines.push(l) });
    expect(r.results).toHaveLength(1);
    expect(lines.slice(0, 5)).toEqual(['top level', '{ a: 1 }', 'g', '  in group', 'n: 1']);
    expect(lines.join('\n')).toContain('(index)');
  });

  test('a result that is not a State is an error naming the file', async () => {
    await expect(evaluate({ 'kiln.build.ts': `export default () => 42;\n` })).rejects.toMatchObject({ code: 'KLN0803', message: expect.stringContaining('returned a number') });
  });
});
