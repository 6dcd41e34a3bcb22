/**
 * The kiln/ts Frontend against a fake FrontendClient (the gateway's contract, not runc): the
 * frontend options a build CLI passes (buildx's --label, --build-context, --network, …) are
 * applied or, when the DSL cannot apply them, reported instead of silently dropped.
 */
import { describe, expect, test } from 'vitest';
import { definitionToJsonLines, type Definition, type FrontendClient, type FrontendWarning, type Ref } from '@kiln/llb-core';
import { createTsFrontend } from './frontend.js';

const baseConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH=/bin'], Labels: { base: 'yes', over: 'base' } } };

/** `dirs`: the files of client directories (by local name) that a solved local source reads. */
function fakeClient(buildFile: string, opts: Record<string, string>, dirs: Record<string, Record<string, string>> = {}): FrontendClient & { warnings: FrontendWarning[]; solved: string[] } {
  const warnings: FrontendWarning[] = [];
  const solved: string[] = [];
  const files: Record<string, Record<string, string>> = { ...dirs, dockerfile: { 'kiln.build.ts': buildFile, ...dirs['dockerfile'] } };
  const ref = (definition: Definition): Ref => ({
    definition,
    readFile: async (path) => {
      const name = /"identifier":"local:\/\/([^"]+)"/.exec(definitionToJsonLines(definition))?.[1] ?? '';
      const text = files[name]?.[path];
      if (text !== undefined) return new TextEncoder().encode(text);
      throw new Error(`no ${path}`);
    },
    readDir: async () => [],
    statFile: async () => {
      throw new Error('no stat');
    },
  });
  return {
    opts: new Map(Object.entries({ filename: 'kiln.build.ts', ...opts })),
    inputs: new Map(),
    warnings,
    solved,
    solve: async ({ definition }) => {
      solved.push(definitionToJsonLines(definition));
      return ref(definition);
    },
    warn: (w) => warnings.push(w),
    resolveImageConfig: async () => ({ digest: `sha256:${'0'.repeat(64)}`, config: new TextEncoder().encode(JSON.stringify(baseConfig)) }),
  } as FrontendClient & { warnings: FrontendWarning[]; solved: string[] };
}

const configOf = (r: { metadata: ReadonlyMap<string, Uint8Array> }): { config: Record<string, unknown> } =>
  JSON.parse(new TextDecoder().decode(r.metadata.get('containerimage.config'))) as { config: Record<string, unknown> };

describe('kiln/ts frontend options', () => {
  test('--label (label:K=V) lands in the image config over the build\'s own labels, as dockerui applies it', async () => {
    const client = fakeClient(`import { image } from "kiln";\nexport default () => image("busybox").image({ labels: { mine: "1", over: "build" } });\n`, { 'label:over': 'cli', 'label:org.opencontainers.image.version': '1.2' });
    const r = await createTsFrontend()(client);
    expect(configOf(r).config['Labels']).toEqual({ base: 'yes', over: 'cli', mine: '1', 'org.opencontainers.image.version': '1.2' });
  });

  test('a --build-context NAME=docker-image://REF is what ctx.local(NAME) returns (an image, config inherited)', async () => {
    const client = fakeClient(`import { type Ctx } from "kiln";\nexport default (ctx: Ctx) => ctx.local("base").run(["true"]).image({ cmd: ["sh"] });\n`, { 'context:base': 'docker-image://alpine:3.20' });
    const r = await createTsFrontend()(client);
    expect(client.solved.at(-1)).toContain('"identifier":"docker-image://docker.io/library/alpine:3.20"');
    expect(configOf(r).config).toMatchObject({ Env: ['PATH=/bin'], Cmd: ['sh'] });
  });

  test('--pull (image-resolve-mode=pull) marks every image source and looks configs up in pull mode, as dockerui', async () => {
    const modes: (string | undefined)[] = [];
    const client = fakeClient(`import { image } from "kiln";\nexport default () => image("busybox").run(["true"]).image({});\n`, { 'image-resolve-mode': 'pull' });
    const lookup = client.resolveImageConfig.bind(client);
    client.resolveImageConfig = async (ref, o) => {
      modes.push(o?.resolveMode);
      return lookup(ref, o);
    };
    await createTsFrontend()(client);
    expect(client.solved.at(-1)).toContain('"attrs":{"image.resolvemode":"pull"}');
    expect(modes).toEqual(['pull']);
    expect(client.warnings).toEqual([]);
    await expect(createTsFrontend()(fakeClient('export default () => 1;\n', { 'image-resolve-mode': 'always' }))).rejects.toMatchObject({ code: 'KLN0805' });
  });

  test('options the DSL cannot apply (--network, --add-host, --ulimit, --shm-size, --cgroup-parent) are warnings, not silence', async () => {
    const client = fakeClient(`import { image } from "kiln";\nexport default () => image("busybox");\n`, {
      'force-network-mode': 'none',
      'add-hosts': 'a=1.2.3.4',
      ulimit: 'nofile=1024:1024',
      'shm-size': '1048576',
      'cgroup-parent': '/x',
    });
    await createTsFrontend()(client);
    expect(client.warnings.map((w) => w.message)).toEqual([
      'the kiln/ts frontend does not apply --network (force-network-mode): set network in the build file (run options or .network())',
      'the kiln/ts frontend does not apply --add-host (add-hosts): set it in the build file (.addHost())',
      'the kiln/ts frontend does not apply --ulimit (ulimit): the DSL has no ulimit option',
      'the kiln/ts frontend does not apply --shm-size (shm-size): mount a tmpfs at /dev/shm in the build file',
      'the kiln/ts frontend does not apply --cgroup-parent (cgroup-parent): the DSL has no cgroup parent option',
    ]);
  });
});

/** The source attrs of `local://NAME` in the last solved definition (the build's result). */
const localAttrs = (client: { solved: string[] }, name: string): Record<string, string> | undefined => {
  const line = (client.solved.at(-1) ?? '').split('\n').find((l) => l.includes(`"identifier":"local://${name}"`));
  return line === undefined ? undefined : (JSON.parse(line) as { Op: { Op: { source: { attrs: Record<string, string> } } } }).Op.Op.source.attrs;
};
const ignoreReads = (client: { solved: string[] }): string[] => client.solved.filter((d) => d.includes('.dockerignore')).map((d) => /"llb.customname":"([^"]+)"/.exec(d)?.[1] ?? d);

describe('kiln/ts .dockerignore', () => {
  const copyContext = (opts = '') => `import { image, local } from "kiln";\nexport default () => image("busybox").copy(local("context"${opts}), ".", "/src");\n`;

  test('local("context") excludes what the context\'s .dockerignore lists, read through the client with the Dockerfile frontend\'s own source', async () => {
    const client = fakeClient(copyContext(), {}, { context: { '.dockerignore': '# deps\nnode_modules\n/.git\n!keep.log\n*.log\n' } });
    await createTsFrontend()(client);
    // dockerui's MainContext: ExcludePatterns (as parseDockerignore cleans them) and SharedKeyHint("context")
    expect(localAttrs(client, 'context')).toMatchObject({ 'local.excludepatterns': '["node_modules",".git","!keep.log","*.log"]', 'local.sharedkeyhint': 'context' });
    expect(ignoreReads(client)).toEqual(['[internal] load .dockerignore']);
    const read = client.solved.find((d) => d.includes('[internal] load .dockerignore')) ?? '';
    expect(read).toContain('"local.followpaths":"[\\".dockerignore\\"]"');
    expect(read).toContain('"local.sharedkeyhint":"context-.dockerignore"');
  });

  test('<build file>.dockerignore next to the build file wins over the context\'s, as <Dockerfile>.dockerignore does', async () => {
    const client = fakeClient(copyContext(), {}, { dockerfile: { 'kiln.build.ts.dockerignore': 'dist\n' }, context: { '.dockerignore': 'node_modules\n' } });
    await createTsFrontend()(client);
    expect(localAttrs(client, 'context')?.['local.excludepatterns']).toBe('["dist"]');
    expect(ignoreReads(client)).toEqual([]);
  });

  test('the build\'s own exclude comes after the file\'s patterns; dockerignore: false sends everything and reads no file', async () => {
    const dirs = { context: { '.dockerignore': 'node_modules\n' } };
    const own = fakeClient(copyContext(', { exclude: ["*.md", "!README.md"] }'), {}, dirs);
    await createTsFrontend()(own);
    expect(localAttrs(own, 'context')?.['local.excludepatterns']).toBe('["node_modules","*.md","!README.md"]');
    const off = fakeClient(copyContext(', { dockerignore: false }'), {}, dirs);
    await createTsFrontend()(off);
    expect(localAttrs(off, 'context')).toEqual({ 'local.sharedkeyhint': 'context', 'local.unique': expect.any(String) as string });
    expect(ignoreReads(off)).toEqual([]);
    await expect(createTsFrontend()(fakeClient(copyContext(', { dockerignore: "no" }'), {}, dirs))).rejects.toMatchObject({ code: 'KLN0805', message: expect.stringContaining('option "dockerignore" must be a boolean') as string });
  });

  test('a --build-context NAME=DIR brings DIR/.dockerignore, as dockerui\'s named contexts; a build without local reads no ignore file', async () => {
    const client = fakeClient(`import { image, type Ctx } from "kiln";\nexport default (ctx: Ctx) => image("busybox").copy(ctx.local("assets"), ".", "/a");\n`, { 'context:assets': 'local:assets' }, { assets: { '.dockerignore': '*.psd\n' } });
    await createTsFrontend()(client);
    expect(localAttrs(client, 'assets')?.['local.excludepatterns']).toBe('["*.psd"]');
    expect(localAttrs(client, 'assets')?.['local.sharedkeyhint']).toBeUndefined();
    expect(ignoreReads(client)).toEqual(['[context assets] load .dockerignore']);
    const none = fakeClient(`import { image } from "kiln";\nexport default () => image("busybox");\n`, {}, { context: { '.dockerignore': 'x\n' } });
    await createTsFrontend()(none);
    expect(ignoreReads(none)).toEqual([]);
  });
});

describe('kiln/ts --call=targets', () => {
  test('requestid=frontend.targets answers with the targets export (buildx\'s table and JSON), building nothing', async () => {
    const client = fakeClient(
      `import { scratch, type Ctx } from "kiln";\nconst api = (ctx: Ctx) => scratch().mkfile("/a", String(ctx.target));\nexport const targets = { api, "web-frontend": { build: scratch(), description: "the React app" } };\nexport default api;\n`,
      { requestid: 'frontend.targets' },
    );
    const r = await createTsFrontend()(client);
    const text = (k: string): string => new TextDecoder().decode(r.metadata.get(k));
    expect(text('result.txt')).toBe('TARGET        DESCRIPTION\napi (default) \nweb-frontend  the React app\n');
    expect(JSON.parse(text('result.json'))).toEqual({ targets: [{ name: 'api', default: true }, { name: 'web-frontend', description: 'the React app' }] });
    expect(text('result.statuscode')).toBe('0');
    expect(r.ref).toBeUndefined();
    // only the build file was read
    expect(client.solved.every((d) => d.includes('local://dockerfile'))).toBe(true);
  });

  test('--check (requestid=frontend.lint), which the DSL cannot answer, is refused before anything is read or built', async () => {
    const client = fakeClient('import { image } from "kiln";\nexport default () => image("busybox").run(["true"]);\n', { requestid: 'frontend.lint' });
    await expect(createTsFrontend()(client)).rejects.toMatchObject({ code: 'KLN0805', message: expect.stringContaining('does not answer --check (--call=check)') as string });
    expect(client.solved).toEqual([]);
  });
});
