import { describe, expect, test } from 'vitest';
import { checkRequest, targetsResult } from './subrequests.js';

const text = (meta: ReadonlyMap<string, Uint8Array> | undefined, key: string): string => new TextDecoder().decode(meta?.get(key));

// buildx prints result.txt as BuildKit's subrequests/targets PrintTargets writes it.
describe('targetsResult', () => {
  test('targets are a TARGET/DESCRIPTION table, the default marked', () => {
    const res = targetsResult([{ name: 'api', description: 'the API' }, { name: 'web', default: true }]);
    expect(text(res.metadata, 'result.txt')).toBe('TARGET        DESCRIPTION\napi           the API\nweb (default) \n');
    expect(JSON.parse(text(res.metadata, 'result.json'))).toEqual({ targets: [{ name: 'api', description: 'the API' }, { name: 'web', default: true }] });
  });

  test('an empty list reads "No targets" (PrintTargets), not a bare header', () => {
    const res = targetsResult([]);
    expect(text(res.metadata, 'result.txt')).toBe('No targets\n');
    expect(JSON.parse(text(res.metadata, 'result.json'))).toEqual({ targets: [] });
  });
});

describe('checkRequest', () => {
  test('targets and a build pass; outline and check are refused, each named as the flag', () => {
    expect(() => checkRequest(undefined)).not.toThrow();
    expect(() => checkRequest('frontend.targets')).not.toThrow();
    expect(() => checkRequest('frontend.outline')).toThrow(expect.objectContaining({ code: 'KLN0805', message: 'the kiln/ts frontend does not answer --call=outline' }));
    expect(() => checkRequest('frontend.lint')).toThrow(expect.objectContaining({ message: 'the kiln/ts frontend does not answer --check (--call=check): a build file has no Dockerfile build checks' }));
  });
});
