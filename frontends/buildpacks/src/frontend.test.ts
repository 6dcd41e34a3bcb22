import { describe, expect, test } from 'vitest';
import type { FrontendClient } from '@kiln/llb-core';
import { createBuildpacksFrontend } from './frontend.js';

/** A client that records whether the frontend asked it for anything beyond its options. */
function clientWith(opts: Record<string, string>): { client: FrontendClient; asked: string[] } {
  const asked: string[] = [];
  const refuse = (what: string) => (): never => {
    asked.push(what);
    throw new Error(`${what} called`);
  };
  const client: FrontendClient = {
    opts: new Map(Object.entries(opts)),
    inputs: new Map(),
    solve: refuse('solve'),
    resolveImageConfig: refuse('resolveImageConfig'),
    warn: () => undefined,
  };
  return { client, asked };
}

describe('kiln/buildpacks subrequests', () => {
  test.each([
    ['frontend.outline', '--call=outline'],
    ['frontend.lint', '--check (--call=check)'],
    ['frontend.targets', '--call=targets'],
    ['frontend.other', 'requestid frontend.other'],
  ])('%s is refused before anything is read or built', async (requestid, named) => {
    const { client, asked } = clientWith({ requestid });
    await expect(createBuildpacksFrontend()(client)).rejects.toMatchObject({ code: 'KLN0906', message: `the kiln/buildpacks frontend does not answer ${named}` });
    expect(asked).toEqual([]);
  });

  test('subrequests.describe is answered, before anything is read, with describe alone (a dockerui frontend with no handlers)', async () => {
    const { client, asked } = clientWith({ requestid: 'frontend.subrequests.describe' });
    const res = await createBuildpacksFrontend()(client);
    const text = (k: string): string => new TextDecoder().decode(res.metadata?.get(k));
    expect(text('result.txt')).toBe('NAME                 VERSION DESCRIPTION\nsubrequests.describe 1.0.0   List available subrequest types\n');
    expect(JSON.parse(text('result.json'))).toEqual([{ name: 'frontend.subrequests.describe', version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, inputs: null, metadata: [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }], refs: null }]);
    expect(text('version')).toBe('1.0.0');
    expect(asked).toEqual([]);
  });
});
