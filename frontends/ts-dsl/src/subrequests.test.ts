import { describe, expect, test } from 'vitest';
import { checkRequest, describeResult, targetsResult } from './subrequests.js';

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

describe('subrequests.describe', () => {
  test('kiln/ts lists what it answers, as dockerui lists a frontend\'s handlers: targets, then describe itself', () => {
    const res = checkRequest('frontend.subrequests.describe');
    expect(text(res?.metadata, 'result.txt')).toBe('NAME                 VERSION DESCRIPTION\ntargets              1.0.0   List all targets current build supports\nsubrequests.describe 1.0.0   List available subrequest types\n');
    expect(text(res?.metadata, 'version')).toBe('1.0.0');
    const json = text(describeResult().metadata, 'result.json');
    expect(JSON.parse(json)).toEqual([
      { name: 'frontend.targets', version: '1.0.0', type: 'rpc', description: 'List all targets current build supports', opts: [], inputs: null, metadata: [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }], refs: null },
      { name: 'frontend.subrequests.describe', version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, inputs: null, metadata: [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }], refs: null },
    ]);
    // Go's MarshalIndent layout: two spaces, "key": value
    expect(json.startsWith('[\n  {\n    "name": "frontend.targets",\n    "version": "1.0.0",\n')).toBe(true);
  });

  test('a build and --call=targets get no early answer', () => {
    expect(checkRequest(undefined)).toBeUndefined();
    expect(checkRequest('frontend.targets')).toBeUndefined();
  });
});
