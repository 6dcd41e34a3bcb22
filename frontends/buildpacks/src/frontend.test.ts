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
});
