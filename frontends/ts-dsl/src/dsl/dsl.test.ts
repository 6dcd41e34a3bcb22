import { describe, expect, test } from 'vitest';
import { definitionToJsonLines, parsePlatform } from '@kiln/llb-core';
import { image, local, marshal, scratch, sh, shellQuote } from './index.js';
import { imageConfigFor } from './image-result.js';

const ops = async (st: Parameters<typeof marshal>[0]): Promise<Record<string, unknown>[]> =>
  definitionToJsonLines(await marshal(st, { platform: 'linux/amd64' }))
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { Op: Record<string, unknown> }).Op);

describe('sh', () => {
  test('quotes interpolations so they stay one word', () => {
    const name = "it's a file; rm -rf /";
    expect(sh`cat ${name} ${'plain'} ${['a b', 'c']}`.args).toEqual(['/bin/sh', '-c', `cat 'it'\\''s a file; rm -rf /' plain 'a b' c`]);
    expect(shellQuote('')).toBe("''");
    expect(sh`x ${sh`$(date)`}`.script).toBe('x $(date)');
  });
});

describe('long chains', () => {
  test('a chain of 4,000 runs lowers and marshals (typo tour 4: the recursive lowering overflowed the stack at about 2,500)', async () => {
    let st = image('busybox');
    for (let i = 0; i < 4000; i++) st = st.run(['echo', String(i)]);
    const def = await marshal(st, { platform: 'linux/amd64' });
    // the image, 4,000 execs and the terminal op
    expect(def.def.length).toBe(4002);
  });
});

describe('file batching', () => {
  test('consecutive file calls are one FileOp, a value change in between starts another', async () => {
    const one = await ops(scratch().mkdir('/a').mkfile('/a/b', 'x').symlink('/a/b', '/c'));
    expect(one.filter((o) => JSON.stringify(o).includes('"file"'))).toHaveLength(1);
    const two = await ops(scratch().mkdir('/a').user('1').mkfile('/a/b', 'x'));
    expect(two.filter((o) => JSON.stringify(o).includes('"file"'))).toHaveLength(2);
  });

  test('a State used twice is one vertex', async () => {
    const base = image('busybox').run(['true']);
    const list = await ops(base.copy(base, '/x', '/y'));
    expect(list.filter((o) => JSON.stringify(o).includes('"exec"'))).toHaveLength(1);
  });

  test('copy to "." or "" is into the working directory, as COPY: a file keeps its name, even if the directory does not exist yet', async () => {
    // Go's llb.Copy(…, ".") targets the directory path itself: with /app missing, package.json became the file /app.
    for (const dest of ['.', '', './']) {
      const list = await ops(image('busybox').dir('/app').copy(local('context'), 'package.json', dest));
      const copy = list.map((o) => JSON.stringify(o)).find((o) => o.includes('"copy"'));
      expect(copy, dest).toContain('"dest":"/app/"');
    }
    const plain = (await ops(image('busybox').dir('/app').copy(local('context'), 'package.json', 'pkg.json'))).map((o) => JSON.stringify(o)).find((o) => o.includes('"copy"'));
    expect(plain).toContain('"dest":"/app/pkg.json"');
  });

  test('local keeps include/exclude/followPaths as BuildKit attributes', async () => {
    const [src] = await ops(local('context', { include: ['src/**'], exclude: ['*.log'], followPaths: ['a'] }));
    const attrs = (src as { Op: { source: { attrs: Record<string, string> } } }).Op.source.attrs;
    expect(attrs['local.includepattern']).toBe('["src/**"]');
    expect(attrs['local.excludepatterns']).toBe('["*.log"]');
    expect(attrs['local.followpaths']).toBe('["a"]');
  });
});

describe('state values follow Go client/llb meta.go', () => {
  // dirf: a relative Dir is system.NormalizePath(prev, value); addEnvf: no $VAR expansion, and
  // EnvList.AddOrReplace deletes the key then appends it; User is taken as written.
  test('relative dirs join and clean, env values stay literal, a replaced key moves last', async () => {
    const st = image('busybox').dir('/work').dir('sub/../app').dir('..').dir('srv').addEnv('A', '1').addEnv('B', '$A-${A}').addEnv('A', '2').user('1000:1000');
    const exec = (await ops(st.run(['env']))).find((o) => JSON.stringify(o).includes('"exec"')) as { Op: { exec: { meta: Record<string, unknown> } } };
    expect(exec.Op.exec.meta['cwd']).toBe('/work/srv');
    expect(exec.Op.exec.meta['env']).toEqual(['B=$A-${A}', 'A=2']);
    expect(exec.Op.exec.meta['user']).toBe('1000:1000');
  });
});

describe('image config', () => {
  const base = {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    rootfs: { type: 'layers', diff_ids: ['sha256:aa'] },
    config: { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Entrypoint: ['/init'], WorkingDir: '/w', Labels: { a: '1' } },
  };
  test('unset fields inherit the base image config', () => {
    const c = JSON.parse(imageConfigFor(base, { cmd: ['cat', '/hi'], env: { A: '2', B: '3' }, labels: { b: '2' }, exposedPorts: ['8080/tcp', '53/udp'] }, parsePlatform('linux/amd64'))) as typeof base & { config: Record<string, unknown> };
    expect(c.config).toEqual({
      Env: ['PATH=/bin', 'A=2', 'B=3'],
      Cmd: ['cat', '/hi'],
      Entrypoint: ['/init'],
      WorkingDir: '/w',
      Labels: { a: '1', b: '2' },
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
    });
    expect(c.rootfs.diff_ids).toEqual(['sha256:aa']);
    // The exporter sets the new image's time; the base's would date it back.
    expect(c.created).toBeUndefined();
  });
  test('healthcheck, volumes, stopSignal and numeric ports are written as the Dockerfile frontend writes HEALTHCHECK, VOLUME, STOPSIGNAL and EXPOSE', () => {
    const withVol = { ...base, config: { ...base.config, Volumes: { '/old': {} }, Healthcheck: { Test: ['CMD', 'true'] } } };
    const c = JSON.parse(imageConfigFor(withVol, {
      exposedPorts: [3000, '53/udp'],
      volumes: ['/data'],
      stopSignal: 'SIGQUIT',
      healthcheck: { cmd: 'wget -q -O- localhost:3000/health', interval: '1m30s', timeout: '500ms', retries: 3 },
    }, parsePlatform('linux/amd64'))) as { config: Record<string, unknown> };
    expect(c.config['ExposedPorts']).toEqual({ '3000/tcp': {}, '53/udp': {} });
    expect(c.config['Volumes']).toEqual({ '/old': {}, '/data': {} });
    expect(c.config['StopSignal']).toBe('SIGQUIT');
    // HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD wget …: durations in ns, zero ones left out
    expect(c.config['Healthcheck']).toEqual({ Test: ['CMD-SHELL', 'wget -q -O- localhost:3000/health'], Interval: 90e9, Timeout: 500e6, Retries: 3 });
    const argv = JSON.parse(imageConfigFor(withVol, { healthcheck: { cmd: ['/bin/check', '--fast'] } }, parsePlatform('linux/amd64'))) as { config: Record<string, unknown> };
    expect(argv.config['Healthcheck']).toEqual({ Test: ['CMD', '/bin/check', '--fast'] });
    const none = JSON.parse(imageConfigFor(withVol, { healthcheck: 'none' }, parsePlatform('linux/amd64'))) as { config: Record<string, unknown> };
    expect(none.config['Healthcheck']).toEqual({ Test: ['NONE'] });
  });
  test('bad healthcheck durations and ports are KLN0805 at .image()', () => {
    expect(() => image('busybox').image({ healthcheck: { cmd: 'true', interval: '30' } })).toThrow(/image: option "interval" must be a duration such as "30s"/);
    expect(() => image('busybox').image({ healthcheck: { cmd: 'true', timeout: '10us' } })).toThrow(/option "timeout" must be a duration/);
    expect(() => image('busybox').image({ healthcheck: { cmd: [] } })).toThrow(/option "cmd" must be a shell command line or an argv list/);
    expect(() => image('busybox').image({ exposedPorts: ['http'] })).toThrow(/option "exposedPorts" must be a list of ports/);
    expect(() => image('busybox').image({ healthcheck: { cmd: 'true', retries: 3 }, volumes: ['/v'], exposedPorts: [80] })).not.toThrow();
  });
  test('a new entrypoint drops the inherited cmd; scratch gets the default PATH', () => {
    const c = JSON.parse(imageConfigFor(base, { entrypoint: ['/bin/sh'] }, parsePlatform('linux/amd64'))) as { config: Record<string, unknown> };
    expect(c.config['Cmd']).toBeUndefined();
    const s = JSON.parse(imageConfigFor(undefined, {}, parsePlatform('linux/arm64'))) as { architecture: string; config: Record<string, unknown> };
    expect(s.architecture).toBe('arm64');
    expect(s.config['Env']).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });
});
