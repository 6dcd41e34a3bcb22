import { describe, expect, test } from 'vitest';
import { parseOverrides, resolveTargets } from './config.js';
import { interpolate } from './compose.js';
import { loadConfig } from './load.js';

const compose = (text: string, env: Record<string, string> = {}, names: string[] = []) => {
  const config = loadConfig([{ name: 'compose.yaml', text }], env);
  return resolveTargets(config, names, parseOverrides(config, [], env));
};

describe('Compose files', () => {
  test('services with a build section are targets of the default group; image is a tag; x-bake adds bake keys', () => {
    const r = compose(
      [
        'services:',
        '  db:',
        '    image: postgres:16',
        '  api.v1:',
        '    image: example/api:${TAG:-dev}',
        '    build:',
        '      context: ./api',
        '      dockerfile: api.Dockerfile',
        '      target: prod',
        '      args:',
        '        GO: "1.22"',
        '        FROM_ENV:',
        '      labels: [team=x]',
        '      cache_from: ["type=local,src=c"]',
        '      secrets: [token]',
        '      additional_contexts:',
        '        base: docker-image://busybox',
        '      x-bake:',
        '        output: ["type=local,dest=out"]',
        '        tags: [example/api:extra]',
        '  web:',
        '    build: ./web',
        'secrets:',
        '  token:',
        '    file: ./token.txt',
      ].join('\n'),
      { FROM_ENV: 'e', TAG: 'v3' },
    );
    expect([...r.targets.keys()]).toEqual(['api_v1', 'web']);
    expect(r.groups.get('default')?.targets).toEqual(['api_v1', 'web']);
    expect(r.targets.get('api_v1')?.target).toEqual({
      context: './api',
      dockerfile: 'api.Dockerfile',
      target: 'prod',
      args: { GO: '1.22', FROM_ENV: 'e' },
      labels: { team: 'x' },
      contexts: { base: 'docker-image://busybox' },
      // buildx: the image is the tag (no build.tags), x-bake's tags add to it.
      tags: ['example/api:v3', 'example/api:extra'],
      'cache-from': ['type=local,src=c'],
      secret: ['id=token,src=./token.txt'],
      output: ['type=local,dest=out'],
    });
    expect(r.targets.get('web')?.target).toEqual({ context: './web', dockerfile: 'Dockerfile' });
  });

  test('interpolation: defaults, required variables, $$', () => {
    expect(interpolate('a-${X:-d}-${Y-e}-$Z-$$X', { Y: '', Z: 'z' }, 'f')).toBe('a-d--z-$X');
    expect(() => interpolate('${NEED:?set it}', {}, 'compose.yaml')).toThrow(expect.objectContaining({ code: 'KLN0852', message: 'compose.yaml: required variable NEED is not set: set it' }));
  });

  test('an unknown key of a build section is refused at its line, as compose-go refuses it (was dropped: the default Dockerfile was built)', () => {
    expect(() => compose('services:\n  web:\n    build:\n      context: .\n      dockerfil: web.Dockerfile\n')).toThrow(
      expect.objectContaining({ code: 'KLN0853', message: 'compose.yaml:5:7: service web: build: unknown key "dockerfil" (did you mean dockerfile?)', location: { file: 'compose.yaml', line: 5, column: 7 } }),
    );
    // x-* extensions are Compose's own escape hatch
    expect([...compose('services:\n  web:\n    build:\n      context: .\n      x-kiln-note: hi\n').targets.keys()]).toEqual(['web']);
  });

  test('YAML merge keys (<<: *anchor) are merged, as compose-go reads them: not an unknown key "<<"', () => {
    const r = compose(
      ['x-build: &build', '  context: ./app', '  args:', '    A: "1"', 'x-svc: &svc', '  image: example/web:1', 'services:', '  web:', '    build:', '      <<: *build', '      target: prod', '  api:', '    <<: *svc', '    build: ./api', ''].join('\n'),
    );
    expect(r.targets.get('web')?.target).toMatchObject({ context: './app', target: 'prod', args: { A: '1' } });
    expect(r.targets.get('api')?.target).toMatchObject({ context: './api', tags: ['example/web:1'] });
  });

  test('YAML errors point at the line', () => {
    expect(() => compose('services:\n  a:\n    build: [\n')).toThrow(expect.objectContaining({ code: 'KLN0851', location: expect.objectContaining({ file: 'compose.yaml' }) }));
    expect(() => compose('services:\n  web:\n    build: .\n     image: foo\n')).toThrow(
      expect.objectContaining({ code: 'KLN0851', message: 'compose.yaml:3:12: invalid YAML: Nested mappings are not allowed in compact mappings', location: { file: 'compose.yaml', line: 3, column: 12 } }),
    );
  });
});
