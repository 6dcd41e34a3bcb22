/**
 * Every user error of a build file is located (file:line:column of the call that is wrong) and
 * has a stable code: misuse of the DSL is KLN0805 at the call, not a TypeError or an LLB error
 * at marshal time with no place; a failed ctx call keeps its code and points at the call.
 */
import { describe, expect, test } from 'vitest';
import { bundleBuildFile, type SourceReader } from '../load/bundle.js';
import { evaluateBundle, type Handlers } from './host.js';
import type { InitParams } from './protocol.js';

const memory = (files: Record<string, string>): SourceReader => ({
  async read(path) {
    const f = files[path];
    return f === undefined ? undefined : new TextEncoder().encode(f);
  },
});

const init: InitParams = { args: {}, platforms: ['linux/amd64'], inputs: {} };
const baseConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH=/bin'] } };
const handlers: Handlers = {
  solve: async () => ({ ref: 'r1' }),
  readFile: async () => {
    throw Object.assign(new Error('process "/bin/sh -c exit 3" did not complete successfully: exit code: 3\nmore detail'), { code: 'SOLVER_EXEC_FAILED' });
  },
  readDir: async () => ({ entries: [] }),
  statFile: async ({ path }) => ({ stat: { path, mode: 0, uid: 0, gid: 0, size: 0, modTime: '0' } }),
  resolveImageConfig: async () => ({ digest: `sha256:${'0'.repeat(64)}`, config: Buffer.from(JSON.stringify(baseConfig)).toString('base64') }),
  warn: () => undefined,
};

/** Evaluates a kiln.build.ts made of `lines` (line 1 is the import). */
const run = async (...lines: string[]) =>
  evaluateBundle(await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `${lines.join('\n')}\n` })), init, handlers);
const IMPORT = 'import { bind, cache, image, scratch, secret, tmpfs, type Ctx } from "kiln";';

describe('located errors', () => {
  test('run with an empty command: KLN0805 at the .run call', async () => {
    const p = run(IMPORT, 'export default () =>', '  image("busybox").run([]);');
    await expect(p).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3, column: 20 } });
    await expect(p).rejects.toThrow(/run: the command is empty/);
  });

  test('copy from something that is not a State: KLN0805 at the .copy call', async () => {
    const p = run(IMPORT, 'export default () =>', '  image("busybox").copy("context" as never, "/a", "/b");');
    await expect(p).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3, column: 20 } });
    await expect(p).rejects.toThrow(/copy: the source must be a State \(got a string\)/);
  });

  test('a bad platform string: KLN0805 at image() and at .platform()', async () => {
    const a = run(IMPORT, 'export default () =>', '  image("busybox", { platform: "linux/amd64/v2/x" }).run(["true"]);');
    await expect(a).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3, column: 3 } });
    await expect(a).rejects.toThrow(/invalid platform "linux\/amd64\/v2\/x"/);
    const b = run(IMPORT, 'export default () =>', '  image("busybox").platform("").run(["true"]);');
    await expect(b).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3, column: 20 } });
  });

  test('sources and mounts that cannot work are KLN0805 at the call: bad image ref, empty local/git/cache name, non-http URL, bad checksum', async () => {
    const cases: readonly (readonly [string, RegExp])[] = [
      ['image("Bad Ref!!")', /image: invalid image reference "Bad Ref!!"/],
      ['scratch().copy(local(""), "/", "/")', /local: the name is empty/],
      ['git("")', /git: the URL is empty/],
      ['image("busybox").run(["true"], { mounts: { "/c": cache("") } })', /cache: the id is empty/],
      ['http("ftp://example.com/x")', /http: "ftp:\/\/example.com\/x" is not an http:\/\/ or https:\/\/ URL/],
      ['http("https://example.com/x", { checksum: "nope" })', /http: invalid checksum "nope"/],
    ];
    for (const [expr, message] of cases) {
      const p = run('import { cache, git, http, image, local, scratch } from "kiln";', 'export default () =>', `  ${expr};`);
      await expect(p).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3 } });
      await expect(p).rejects.toThrow(message);
    }
  });

  test('options kiln check would refuse are KLN0805 at the call when built unchecked: unknown names (with the near one), wrong types', async () => {
    // Before, each of these built: the option was dropped or misread (cmd one argument per letter, chmod "755" mode 0o1363, a mount at /0).
    const cases: readonly (readonly [string, number, RegExp, RegExp?])[] = [
      ['image("busybox").run(["ls"], { mount: { "/c": cache("x") } })', 20, /run: unknown option "mount" \(did you mean "mounts"\?\)/, /run takes \{ mounts, ssh, secretEnv, env, /],
      ['image("busybox").run(["ls"], { mounts: [cache("x")] })', 20, /run: option "mounts" must be an object of a cache\(\), secret\(\), bind\(\), tmpfs\(\) or ssh\(\) mount or a State values by absolute target path \(got an array\)/],
      ['image("busybox").run(["ls"], { mounts: { "/c": "npm-cache" } })', 20, /run: option "mounts" must be/],
      ['image("busybox").run(["ls"], { env: { PORT: 3000 } })', 20, /run: option "env" must be an object of string values \(got "PORT": a number\)/, /PORT: "3000"/],
      ['image("busybox").image({ cmd: "npm start" })', 20, /image: option "cmd" must be a string\[\] \(got a string\)/, /cmd: \["npm", "start"\]/],
      ['image("busybox").image({ entryPoint: ["node"] })', 20, /image: unknown option "entryPoint" \(did you mean "entrypoint"\?\)/],
      ['scratch().copy(image("busybox"), "/a", "/b", { chmod: "755" })', 13, /copy: option "chmod" must be a number such as 0o755 \(got a string\)/, /0o755/],
      ['scratch().copy(image("busybox"), "/a", "/b", { exlude: ["x"] })', 13, /copy: unknown option "exlude" \(did you mean "exclude"\?\)/],
      ['scratch().mkdir("/a", { parent: true })', 13, /mkdir: unknown option "parent" \(did you mean "parents"\?\)/],
      ['image("busybox").run(["ls"], { mounts: { "/c": cache("x", { sharing: "sometimes" }) } })', 50, /cache: option "sharing" must be "shared" \| "private" \| "locked"/],
      ['image("busybox", { resolv: true })', 3, /image: unknown option "resolv" \(did you mean "resolve"\?\)/],
      ['merge(image("a"), image("b"))', 3, /merge: the states must be a State\[\] \(got an object \(State\)\)/, /merge\(\[a, b, c\]\)/],
      ['image("busybox").addEnv("PORT", 3000)', 20, /addEnv: the value of PORT must be a string \(got a number\)/],
    ];
    for (const [expr, column, message, hint] of cases) {
      const p = run('import { cache, image, merge, scratch } from "kiln";', 'export default () =>', `  ${expr} as never;`);
      await expect(p, expr).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3, column } });
      await expect(p, expr).rejects.toThrow(message);
      if (hint !== undefined) await expect(p, expr).rejects.toMatchObject({ hint: expect.stringMatching(hint) });
    }
  });

  test('typo tour 4: sh called as a function, a missing await, a near-miss string value, ctx.platforms without a function, a Ref returned', async () => {
    // sh("echo hi") built `/bin/sh -c e` (the string indexed as a template's parts)
    const cases: readonly (readonly [string, string, RegExp])[] = [
      ['KLN0805', 'image("busybox").run(sh("echo hi"))', /sh is a template tag: write sh`…`, not sh\("echo hi"\)/],
      ['KLN0805', 'image("busybox").run(["echo", Promise.resolve("x")])', /run: argument 1 of the command is a Promise \(an await missing\?\), not a string/],
      ['KLN0805', 'image("busybox").run(["ls"], { mounts: { "/c": cache("x", { sharing: "lock" }) } })', /cache: option "sharing" must be "shared" \| "private" \| "locked" \(got "lock"\)/],
      ['KLN0805', 'image("busybox").run(["ls"], { mounts: { "/c": 5 } })', /run: option "mounts" must be .* \(got "\/c": a number\)/],
      ['KLN0805', 'image("busybox").run(["ls"], { mounts: { cache: cache("x") } })', /run: option "mounts" must be .* \(got the relative target "cache"\)/],
    ];
    for (const [code, expr, message] of cases) {
      const p = run('import { cache, image, sh } from "kiln";', 'export default () =>', `  ${expr} as never;`);
      await expect(p, expr).rejects.toMatchObject({ code, location: { file: 'kiln.build.ts', line: 3 } });
      await expect(p, expr).rejects.toThrow(message);
    }
    // was KLN0803 "fn is not a function" (kiln's parameter name)
    const platforms = run(IMPORT, 'export default (ctx: Ctx) =>', '  ctx.platforms("linux/arm64" as never);');
    await expect(platforms).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 3 }, hint: expect.stringContaining('ctx.platforms((p) =>') });
    await expect(platforms).rejects.toThrow(/ctx.platforms: the argument must be a function of the platform \(got a string\)/);
    const ref = run(IMPORT, 'export default async (ctx: Ctx) =>', '  ctx.solve(image("busybox")) as never;');
    await expect(ref).rejects.toThrow(/the default export returned a Ref \(ctx.solve's result: return the State it solved\)/);
  });

  test('options that are right, and undefined ones a spread leaves, still build', async () => {
    const r = await run(IMPORT, 'const extra: { user?: string } = { user: undefined };', 'export default () =>', '  image("busybox").copy(scratch(), ".", ".", { chmod: 0o755, chown: { user: 1000, group: "app" } }).run(["true"], { ...extra, mounts: { "/c": cache("c", { sharing: "locked" }), "/s": scratch() }, env: { A: "1" } }).image({ cmd: ["sh"], env: { B: "2" } });');
    expect(r.results).toHaveLength(1);
  });

  test('${HOME} in an sh`…` script (JavaScript interpolation of an undefined name) hints at the shell spelling', async () => {
    const p = run('import { image, sh } from "kiln";', 'export default () =>', '  image("busybox").run(sh`echo ${HOME}`);');
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3, column: 34 }, hint: expect.stringContaining('write $HOME or \\${HOME}') });
    await expect(p).rejects.toThrow(/HOME is not defined/);
    // a lower-case name is a JavaScript slip, not a shell variable: no such hint
    const q = run('import { image } from "kiln";', 'export default () => image(versionTag);');
    await expect(q).rejects.toMatchObject({ hint: undefined });
  });

  test('.output() of a mount that has no output: KLN0805 at the call, naming why', async () => {
    const ro = run(IMPORT, 'export default () =>', '  image("busybox").run(["true"], { mounts: { "/ro": bind(image("alpine"), { readonly: true }) } })', '    .output("/ro");');
    await expect(ro).rejects.toMatchObject({ code: 'KLN0805', location: { file: 'kiln.build.ts', line: 4, column: 6 } });
    await expect(ro).rejects.toThrow(/output\("\/ro"\): a read-only bind mount has no output/);
    const kinds = run(IMPORT, 'export default () =>', '  image("busybox").run(["true"], { mounts: { "/c": cache("c"), "/t": tmpfs(), "/s": secret("s") } }).output("/t");');
    await expect(kinds).rejects.toThrow(/output\("\/t"\): a tmpfs mount has no output/);
    const root = run(IMPORT, 'export default () =>', '  image("busybox").run(["true"], { readonlyRootfs: true, mounts: { "/out": scratch() } }).output("/");');
    await expect(root).rejects.toThrow(/output\("\/"\): the root filesystem is read-only \(readonlyRootfs\), so it has no output/);
    const none = run(IMPORT, 'export default () =>', '  image("busybox").run(["true"], { mounts: { "/out": scratch() } }).output("/nope");');
    await expect(none).rejects.toThrow(/output\("\/nope"\): the run has no mount at \/nope \(its mounts: \/out\)/);
  });

  test('.output() of writable mounts and of the root works', async () => {
    const r = await run(IMPORT, 'export default () => {', '  const e = image("busybox").run(["true"], { mounts: { "/out": scratch(), "/rw": bind(image("alpine")) } });', '  e.output("/rw"); e.output("/");', '  return e.output("/out");', '};');
    expect(r.results).toHaveLength(1);
  });

  test('returning something else than a State points at the default export', async () => {
    const p = run(IMPORT, '', 'export default () => ({ a: 1 });');
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3, column: 1 } });
  });

  test('a failed ctx call is KLN0803 with the parent\'s first line, at the call in the build file', async () => {
    const p = run(IMPORT, 'export default async (ctx: Ctx) => {', '  const src = ctx.solve(image("busybox"));', '  await src.readFile("/x");', '  return scratch();', '};');
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 4, column: 13 } });
    await expect(p).rejects.toThrow(/^kiln\.build\.ts:4:13: process "\/bin\/sh -c exit 3" did not complete successfully: exit code: 3$/);
  });

  test('a refused ctx call keeps the parent\'s code and hint', async () => {
    const refusing: Handlers = { ...handlers, solve: async () => { throw Object.assign(new Error('ctx.solve needs a build'), { code: 'KLN0805', hint: 'run kiln build' }); } };
    const bundle = await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `${IMPORT}\nexport default async (ctx: Ctx) => {\n  await ctx.solve(scratch()).stat("/");\n  return scratch();\n};\n` }));
    await expect(evaluateBundle(bundle, init, refusing)).rejects.toMatchObject({ code: 'KLN0805', hint: 'run kiln build', location: { line: 3, column: 30 } });
  });

  test('a base image whose config cannot be looked up points at its image() call (with resolve: true too)', async () => {
    const offline: Handlers = { ...handlers, resolveImageConfig: async () => { throw Object.assign(new Error('HEAD https://registry-1.docker.io/v2/library/busybox/manifests/latest: fetch failed'), { code: 'KLN0503' }); } };
    const evaluate = async (...lines: string[]) => evaluateBundle(await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `${lines.join('\n')}\n` })), init, offline);
    const a = evaluate(IMPORT, 'export default () =>', '  image("busybox").run(["true"])', '    .image({ cmd: ["sh"] });');
    await expect(a).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3, column: 3 } });
    await expect(a).rejects.toThrow(/base image busybox: HEAD https/);
    // a bare State result (an implicit .image({})) too
    const bare = evaluate(IMPORT, 'export default () => {', '  const base = image("busybox");', '  return base.run(["true"]);', '};');
    await expect(bare).rejects.toMatchObject({ location: { file: 'kiln.build.ts', line: 3, column: 16 } });
    const b = evaluate(IMPORT, 'export default () =>', '  image("busybox", { resolve: true }).run(["true"]);');
    await expect(b).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3, column: 3 } });
  });

  test('a base image the parent refuses with a code of its own (a source policy\'s KLN0952) keeps that error as the cause', async () => {
    const denial = Object.assign(new Error('source "docker-image://docker.io/library/busybox:latest" denied by policy: rules[0]'), { code: 'KLN0952', hint: 'allow it' });
    const denying: Handlers = { ...handlers, resolveImageConfig: async () => { throw denial; } };
    const bundle = await bundleBuildFile('kiln.build.ts', memory({ 'kiln.build.ts': `${IMPORT}\nexport default () =>\n  image("busybox").run(["true"]);\n` }));
    const p = evaluateBundle(bundle, init, denying);
    // The DSL's own error at the image() call, with the parent's error under it.
    await expect(p).rejects.toMatchObject({ code: 'KLN0803', location: { file: 'kiln.build.ts', line: 3, column: 3 }, hint: 'allow it', cause: denial });
  });

  test('a missing relative import is KLN0802 (forbidden or missing import)', async () => {
    const p = run(IMPORT, 'import { x } from "./nope.js";', 'export default () => image(x);');
    await expect(p).rejects.toMatchObject({ code: 'KLN0802', location: { file: 'kiln.build.ts', line: 2 } });
  });
});
