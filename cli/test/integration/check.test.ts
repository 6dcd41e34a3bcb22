/**
 * `kiln check` through the real CLI (bundle included): a correct build file with a relative
 * import passes silently, a wrong one prints tsc-style `file:line:col: error TSxxxx: message`
 * lines and exits 1, and a missing file is a located CLI error.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileCli, kilnBin, writeTree } from './build-helpers.js';

let dir: string;
beforeAll(async () => {
  compileCli();
  dir = await mkdtemp(join(tmpdir(), 'kiln-check-'));
  await writeTree(dir, {
    'kiln.build.ts': `import { cache, image, sh, type Ctx } from "kiln";
import { tag } from "./lib/tag.js";
export default ({ local, args }: Ctx) => {
  console.log("version", args["VERSION"] ?? "dev");
  const b = image("busybox").dir("/src").copy(local("context"), ".", ".")
    .run(sh\`sh build.sh \${tag}\`, { mounts: { "/cache": cache("site") } });
  return image("busybox").copy(b, "/src/dist", "/www").image({ cmd: ["httpd"], exposedPorts: ["8080/tcp"] });
};
`,
    'lib/tag.ts': 'export const tag: string = "v1";\n',
    'Dockerfile': '# syntax=docker/dockerfile:1\nFROM busybox\n',
    'notes.txt': 'remember the milk\n',
    'build.kiln': '// syntax=kiln/ts\nimport { image } from "kiln";\nexport default () => image("busybox");\n',
    'ci/wrong.ts': `import { cache, image, type Ctx } from "kiln/ts";
import { readFileSync } from "node:fs";
export default (ctx: Ctx) => {
  const v: string = ctx.args["VERSION"];
  return image("busybox").run(["make", v], { mounts: { "/c": cache("c", { sharing: "sometimes" }) } }).image({ cmd: "httpd" });
};
`,
  });
}, 300_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kiln = (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [kilnBin, ...args], { cwd: dir }, (e, stdout, stderr) => resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, stdout, stderr }));
  });

describe('kiln check', () => {
  test('a correct build file (default name, relative import) passes with exit 0 and no output', async () => {
    const r = await kiln(['check']);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await kiln(['check', '.'])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  test('type errors print as file:line:col: error TSxxxx: message, exit 1, no stack', async () => {
    const r = await kiln(['check', 'ci/wrong.ts']);
    expect(r.code).toBe(1);
    expect(r.stdout.split('\n').filter((l) => /^\S/.test(l))).toEqual([
      `ci/wrong.ts:2:30: error TS2307: Cannot find module 'node:fs' or its corresponding type declarations.`,
      `ci/wrong.ts:4:9: error TS2322: Type 'string | undefined' is not assignable to type 'string'.`,
      `ci/wrong.ts:5:75: error TS2322: Type '"sometimes"' is not assignable to type 'CacheSharing | undefined'.`,
      `ci/wrong.ts:5:112: error TS2322: Type 'string' is not assignable to type 'readonly string[]'.`,
    ]);
    expect(r.stderr).toBe('kiln check: 4 errors\n');
  });

  test('a file that is not a kiln/ts build file is refused by name, not type-checked; one with // syntax=kiln/ts is checked', async () => {
    const df = await kiln(['check', 'Dockerfile']);
    expect(df).toEqual({
      code: 1,
      stdout: '',
      stderr: 'kiln: error KLN0805: Dockerfile is not a kiln/ts build file (its syntax is docker/dockerfile:1)\nhint: kiln check type-checks FILE.ts or a file whose first line is // syntax=kiln/ts; a Dockerfile is checked with kiln build --check\n',
    });
    const txt = await kiln(['check', 'notes.txt']);
    expect(txt.code).toBe(1);
    expect(txt.stdout).toBe('');
    expect(txt.stderr).toContain('notes.txt is not a kiln/ts build file (not named .ts, no // syntax=kiln/ts first line)');
    expect(await kiln(['check', 'build.kiln'])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  test('a missing file is a CLI error with a hint', async () => {
    const r = await kiln(['check', 'nope.ts']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('kiln: error KLN0805: nope.ts: no such file\nhint: kiln check [FILE.ts] (default: ./kiln.build.ts)\n');
  });
});
