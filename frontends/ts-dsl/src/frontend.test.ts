/**
 * The kiln/ts Frontend against a fake FrontendClient (the gateway's contract, not runc): the
 * frontend options a build CLI passes (buildx's --label, --build-context, --network, …) are
 * applied or, when the DSL cannot apply them, reported instead of silently dropped.
 */
import { describe, expect, test } from 'vitest';
import { definitionToJsonLines, type Definition, type FrontendClient, type FrontendWarning, type Ref } from '@kiln/llb-core';
import { createTsFrontend } from './frontend.js';

const baseConfig = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: ['PATH=/bin'], Labels: { base: 'yes', over: 'base' } } };

function fakeClient(buildFile: string, opts: Record<string, string>): FrontendClient & { warnings: FrontendWarning[]; solved: string[] } {
  const warnings: FrontendWarning[] = [];
  const solved: string[] = [];
  const ref = (definition: Definition): Ref => ({
    definition,
    readFile: async (path) => {
      if (path === 'kiln.build.ts') return new TextEncoder().encode(buildFile);
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
