import { describe, expect, test } from 'vitest';
import { image, mkdir, scratch, type FileStat, type FrontendClient, type FrontendWarning, type Ref, type State } from '@kiln/llb-core';
import type { LifecycleContext } from './detect.js';
import { generate } from './generate.js';
import type { ResolvedEntry } from './order.js';

/**
 * A client whose every solve answers with the same files (`/out/...` of an extension's output),
 * as the frontend contract describes refs; enough for generate's reading of outputs.
 */
function outputClient(files: Readonly<Record<string, string>>, dirs: readonly string[] = []) {
  const warnings: FrontendWarning[] = [];
  const enc = new TextEncoder();
  const ref: Ref = {
    definition: { def: [], metadata: new Map() },
    readFile: async (path) => {
      const f = files[path];
      if (f === undefined) throw new Error(`${path}: not found`);
      return enc.encode(f);
    },
    readDir: async (path) => {
      if (path !== '/out') return [];
      const stat = (name: string, dir: boolean): FileStat => ({ path: name, mode: dir ? 0x80000000 | 0o755 : 0o644, uid: 0, gid: 0, size: 0, modTime: 0n });
      return [...Object.keys(files).filter((p) => p.startsWith('/out/')).map((p) => stat(p.slice(5), false)), ...dirs.map((d) => stat(d, true))];
    },
    statFile: async () => {
      throw new Error('unused');
    },
  };
  const client = { opts: new Map(), inputs: new Map(), warn: (w: FrontendWarning) => warnings.push(w), solve: async () => ref } as unknown as FrontendClient;
  return { client, warnings };
}

const ctxOf = (client: FrontendClient): LifecycleContext => ({
  client,
  root: image('docker.io/kt/builder:latest'),
  user: '1000:1001',
  env: new Map(),
  platformEnv: [],
  buildConfigEnv: [],
  platform: scratch(),
  buildpacks: scratch(),
  extensions: scratch(),
  targetEnv: new Map([['CNB_TARGET_OS', 'linux']]),
  kiln: scratch(),
  helpers: scratch(),
});

const ext = (id: string, programs = { detect: true, generate: true }): ResolvedEntry => ({
  id,
  version: '1',
  optional: false,
  extension: true,
  descriptor: { api: '0.10', id, version: '1', clearEnv: false, targets: [], extension: programs },
});

/** The LLB of a State as text, to look for the paths it copies. */
const llbText = async (s: State): Promise<string> => (await s.marshal()).def.map((b) => new TextDecoder('latin1').decode(b)).join('\n');

describe('generate', () => {
  test('the entries an extension provides go to it and leave the plan; Dockerfiles in order with their args and context', async () => {
    const { client, warnings } = outputClient(
      {
        '/out/build.Dockerfile': 'ARG base_image\nFROM ${base_image}\nEXPOSE 80\n',
        '/out/run.Dockerfile': 'FROM kt/run-alt\n',
        '/out/extend-config.toml': '[[build.args]]\nname = "a"\nvalue = "1"\n[[run.args]]\nname = "b"\nvalue = "2"\n',
      },
      ['context', 'context.build'],
    );
    const x = ext('kt/x');
    const plan = [
      { name: 'tool', providers: [{ id: 'kt/x', version: '1', optional: false, extension: true }], requires: [{ name: 'tool' }] },
      { name: 'dep', providers: [{ id: 'kt/bp', version: '1', optional: false }], requires: [{ name: 'dep' }] },
    ];
    const app = scratch();
    const r = await generate(ctxOf(client), [x], plan, app);
    expect(r.plan.map((p) => p.name)).toEqual(['dep']);
    expect(r.dockerfiles.map((d) => [d.kind, d.args])).toEqual([
      ['run', [{ name: 'b', value: '2' }]],
      ['build', [{ name: 'a', value: '1' }]],
    ]);
    expect(r.dockerfiles[0]?.run).toEqual({ withBase: 'kt/run-alt', extend: false });
    // build: context.build/ wins over context/; run: context/ (no context.run/)
    expect(await llbText(r.dockerfiles[1]?.context ?? app)).toContain('/out/context.build');
    const runContext = await llbText(r.dockerfiles[0]?.context ?? app);
    expect(runContext).toContain('/out/context');
    expect(runContext).not.toContain('/out/context.build');
    expect(warnings).toEqual([{ message: 'build.Dockerfile command EXPOSE on line 3 is not recommended', file: 'kt/x: build.Dockerfile', line: 3 }]);
  });

  test('without a context dir the app is the context; an extension with bin/generate and a static one are both read, in order', async () => {
    const { client } = outputClient({ '/out/build.Dockerfile': 'ARG base_image\nFROM ${base_image}\nRUN true\n' });
    const app = scratch().file(mkdir('/app-marker', 0o755));
    const r = await generate(ctxOf(client), [ext('kt/x'), ext('kt/static', { detect: false, generate: false })], [], app);
    expect(r.dockerfiles.map((d) => d.extension.id)).toEqual(['kt/x', 'kt/static']);
    expect(r.dockerfiles[0]?.context).toBe(app);
  });

  test('a bin/generate that fails fails generate (refs are lazy: read unevaluated, its missing output passed for none)', async () => {
    // the client contract: a failing step surfaces at solve with evaluate, else on the first read
    const failed = new Error('process "/cnb/extensions/kt_x/1/bin/generate /kiln/out /platform /kiln/plan/plan.toml" did not complete successfully: exit code: 3');
    const lazy: Ref = {
      definition: { def: [], metadata: new Map() },
      readFile: async () => Promise.reject(failed),
      readDir: async () => Promise.reject(failed),
      statFile: async () => Promise.reject(failed),
    };
    const client = { opts: new Map(), inputs: new Map(), warn: () => undefined, solve: async (req: { evaluate?: boolean }) => (req.evaluate === true ? Promise.reject(failed) : lazy) } as unknown as FrontendClient;
    await expect(generate(ctxOf(client), [ext('kt/x')], [], scratch())).rejects.toThrow('exit code: 3');
  });

  test('a bad generated file is KLN0908 (Dockerfile rules) or names the extension and extend-config.toml', async () => {
    await expect(generate(ctxOf(outputClient({ '/out/build.Dockerfile': 'FROM ${base_image}\n' }).client), [ext('kt/x')], [], scratch())).rejects.toMatchObject({
      code: 'KLN0908',
      location: { file: 'kt/x: build.Dockerfile', line: 1 },
    });
    await expect(generate(ctxOf(outputClient({ '/out/extend-config.toml': '[[build.args]]\nname = "build_id"\n' }).client), [ext('kt/x')], [], scratch())).rejects.toMatchObject({
      code: 'KLN0908',
      message: expect.stringContaining('kt/x: extend-config.toml: build.args name "build_id" is reserved'),
    });
    await expect(generate(ctxOf(outputClient({ '/out/extend-config.toml': '[[build.args]\n' }).client), [ext('kt/x')], [], scratch())).rejects.toMatchObject({
      code: 'KLN0901',
      location: { file: 'kt/x: extend-config.toml' },
    });
  });
});
