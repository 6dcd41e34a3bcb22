import { describe, expect, test } from 'vitest';
import { git, image, scratch, type Definition, type FrontendClient, type FrontendResult, type FrontendWarning, type ImageConfig, type Ref, type SolveFrontendRequest, type State } from '@kiln/llb-core';
import { applyDockerfiles, extensionHistory, parseGoBool } from './extend.js';
import type { GeneratedDockerfile } from './generate.js';

const cfg = (user: string, labels: Record<string, string> = {}): ImageConfig => ({ architecture: 'amd64', os: 'linux', config: { User: user, Labels: labels } });

/**
 * A client whose solveFrontend answers each call with the next config of `answers` (the
 * frontend contract faked, as a Dockerfile frontend would answer), recording the requests.
 */
function fakeClient(answers: ImageConfig[], llb: State = image('docker.io/kt/extended:latest')) {
  const calls: SolveFrontendRequest[] = [];
  const warnings: FrontendWarning[] = [];
  /** The definitions solved with evaluate (what ran). */
  const evaluated: Definition[] = [];
  const client: Pick<FrontendClient, 'solveFrontend' | 'solve' | 'warn' | 'opts' | 'inputs'> = {
    opts: new Map(),
    inputs: new Map(),
    warn: (w) => warnings.push(w),
    solveFrontend: async (req): Promise<FrontendResult> => {
      calls.push(req);
      const next = answers.shift();
      if (next === undefined) throw new Error('no more answers');
      const definition: Definition = await llb.marshal();
      const ref = { definition } as Ref;
      return { ref, metadata: new Map([['containerimage.config', new TextEncoder().encode(JSON.stringify(next))]]) };
    },
    solve: async (req) => {
      if (req.evaluate === true) evaluated.push(req.definition);
      return { definition: req.definition } as Ref;
    },
  };
  return { client: client as FrontendClient, calls, warnings, evaluated };
}

const df = (id: string, kind: 'build' | 'run', args: { name: string; value: string }[] = []): GeneratedDockerfile => ({
  extension: { id, version: '1', optional: false, extension: true, descriptor: { api: '0.10', id, version: '1', clearEnv: false, targets: [] } },
  kind,
  text: 'ARG base_image\nFROM ${base_image}\nRUN true\n',
  args,
  context: scratch(),
});

describe('applyDockerfiles', () => {
  test('each Dockerfile is a dockerfile.v0 solve on the previous result: base as a named context, lifecycle build args, then extend-config args', async () => {
    const { client, calls, evaluated } = fakeClient([cfg('0:0'), cfg('1000:1001')]);
    await applyDockerfiles(client, { state: image('docker.io/kt/builder:latest'), config: cfg('1000:1001') }, [df('kt/a', 'build', [{ name: 'tool', value: 'x' }]), df('kt/b', 'build')], 'build', 'uuid-1');
    expect(calls).toHaveLength(2);
    const [first, second] = calls;
    expect(first?.frontend).toBe('dockerfile.v0');
    // compiled only: the result runs (is evaluated) once checked
    expect(first?.evaluate).toBeUndefined();
    expect(evaluated).toHaveLength(2);
    expect(Object.fromEntries(first?.opts ?? [])).toMatchObject({
      filename: 'kt_a/build.Dockerfile',
      'build-arg:base_image': 'kiln-cnb-base',
      'build-arg:build_id': 'uuid-1',
      'build-arg:user_id': '1000',
      'build-arg:group_id': '1001',
      'build-arg:tool': 'x',
      'build-arg:BUILDKIT_DOCKERFILE_CHECK': 'skip=InvalidDefaultArgInFrom',
      'context:kiln-cnb-base': 'input:kiln-cnb-base',
      'context:context': 'input:kiln-cnb-context',
      // no # syntax= forward (lifecycle's kaniko ignores the directive)
      cmdline: 'dockerfile.v0',
    });
    const meta = JSON.parse(first?.opts.get('input-metadata:kiln-cnb-base') ?? '{}') as Record<string, string>;
    expect(JSON.parse(Buffer.from(meta['containerimage.config'] ?? '', 'base64').toString('utf8'))).toEqual(cfg('1000:1001'));
    expect([...(first?.inputs?.keys() ?? [])].sort()).toEqual(['context', 'dockerfile', 'kiln-cnb-base', 'kiln-cnb-context']);
    // the second Dockerfile sees the first one's result: its user (root) in user_id
    expect(second?.opts.get('build-arg:user_id')).toBe('0');
    expect(second?.opts.get('filename')).toBe('kt_b/build.Dockerfile');
    expect(second?.opts.has('build-arg:tool')).toBe(false);
  });

  test('rebasable only when every run.Dockerfile result says io.buildpacks.rebasable=true (the original need not)', async () => {
    const yes = { 'io.buildpacks.rebasable': 'true' };
    const both = await applyDockerfiles(fakeClient([cfg('1002', yes), cfg('1002', { 'io.buildpacks.rebasable': 'T' })]).client, { state: scratch(), config: cfg('1002') }, [df('a', 'run'), df('b', 'run')], 'run', 'u');
    expect(both.rebasable).toBe(true);
    const one = await applyDockerfiles(fakeClient([cfg('1002'), cfg('1002', yes)]).client, { state: scratch(), config: cfg('1002') }, [df('a', 'run'), df('b', 'run')], 'run', 'u');
    expect(one.rebasable).toBe(false);
  });

  test('a run image left to root is KLN0909; a build image may end as root (warnings only)', async () => {
    await expect(applyDockerfiles(fakeClient([cfg('root')]).client, { state: scratch(), config: cfg('1002') }, [df('a', 'run')], 'run', 'u')).rejects.toMatchObject({ code: 'KLN0909' });
    const f = fakeClient([cfg('0')]);
    await applyDockerfiles(f.client, { state: scratch(), config: cfg('1000') }, [df('a', 'build')], 'build', 'u');
    expect(f.warnings.map((w) => w.message)).toEqual([
      'extension a: build.Dockerfile changed the user ID from 1000 to 0; this must not be the final user ID (a following extension must reset the user)',
      'the original build image user ID was 1000 but the final extension left it set to 0',
    ]);
  });

  test('a failing Dockerfile frontend is KLN0909 naming the extension and file', async () => {
    const { client } = fakeClient([]);
    await expect(applyDockerfiles(client, { state: scratch(), config: cfg('1') }, [df('kt/x', 'run')], 'run', 'u')).rejects.toMatchObject({ code: 'KLN0909', message: 'extension kt/x: run.Dockerfile: no more answers' });
  });

  test("a Dockerfile whose LLB would use the build's secrets, SSH agent, caches, host network or insecure sandbox is KLN0908 at its line, before any of it runs", async () => {
    const base = image('docker.io/kt/extended:latest');
    const uses: [State, string][] = [
      [base.run({ args: ['cat', '/run/secrets/tok'], secrets: [{ id: 'tok', target: '/run/secrets/tok' }] }), 'RUN --mount=type=secret mounts the build secret "tok"'],
      [base.run({ args: ['sh', '-c', 'echo $TOK'], secrets: [{ id: 'tok', env: 'TOK' }] }), 'RUN --mount=type=secret sets TOK from the build secret "tok"'],
      [base.run({ args: ['ssh-add', '-l'], ssh: [{}] }), `RUN --mount=type=ssh forwards the build's SSH agent "default"`],
      [git('git@github.com:org/private.git', 'main'), 'a git source (git://github.com/org/private.git#main) fetches'],
      [base.run({ args: ['npm', 'ci'], mounts: [{ target: '/root/.npm', cache: { id: '/npm' } }] }), 'RUN --mount=type=cache mounts the cache "/npm", shared with the user\'s builds'],
      [base.run({ args: ['wget', 'x'], network: 'host' }), "RUN --network=host uses the host's network"],
      [base.run({ args: ['mount', '-t', 'tmpfs', 'x', '/mnt'], security: 'insecure' }), 'RUN --security=insecure runs without the sandbox'],
    ];
    for (const [llb, message] of uses) {
      const { client, evaluated } = fakeClient([cfg('1002')], llb);
      await expect(applyDockerfiles(client, { state: scratch(), config: cfg('1002') }, [df('kt/x', 'run')], 'run', 'u')).rejects.toMatchObject({
        code: 'KLN0908',
        message: expect.stringContaining(message),
        location: { file: 'kt/x: run.Dockerfile' },
      });
      expect(evaluated).toEqual([]);
    }
  });

  test('without solveFrontend the gateway cannot apply Dockerfiles: KLN0906', async () => {
    const client = { warn: () => undefined } as unknown as FrontendClient;
    await expect(applyDockerfiles(client, { state: scratch(), config: cfg('1') }, [df('a', 'build')], 'build', 'u')).rejects.toMatchObject({ code: 'KLN0906' });
  });
});

test('parseGoBool reads what Go strconv.ParseBool accepts', () => {
  expect(['1', 't', 'TRUE', 'True'].map(parseGoBool)).toEqual([true, true, true, true]);
  expect(['0', 'f', 'false'].map(parseGoBool)).toEqual([false, false, false]);
  expect(['yes', '', undefined].map(parseGoBool)).toEqual([undefined, undefined, undefined]);
});

test('extensionHistory: base entries kept, one entry per added layer named after the extension (lifecycle ExtensionLayerName)', () => {
  const config: ImageConfig = {
    ...cfg('1'),
    history: [{ created_by: 'base layer' }, { created_by: 'base env', empty_layer: true }, { created_by: 'USER root', empty_layer: true }, { created: '1980-01-01T00:00:01Z', created_by: 'RUN /bin/sh -c echo x' }],
  };
  expect(extensionHistory(config, 2, 'kt/x').history).toEqual([
    { created_by: 'base layer' },
    { created_by: 'base env', empty_layer: true },
    { created: '1980-01-01T00:00:01Z', created_by: "Layer: 'RUN /bin/sh -c echo x', Created by extension: kt/x" },
  ]);
});
