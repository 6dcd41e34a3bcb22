import { describe, expect, test } from 'vitest';
import { CALL_REQUESTS, callAnswer, parseCall } from './call-spec.js';

const meta = (m: Record<string, string>): Map<string, Uint8Array> => new Map(Object.entries(m).map(([k, v]) => [k, new TextEncoder().encode(v)]));

describe('--call values (buildx ParseCallFunc)', () => {
  test('NAME[,format=json]; build and no value are a build; --check is check', () => {
    expect(parseCall(undefined)).toBeUndefined();
    expect(parseCall('build')).toBeUndefined();
    expect(parseCall('outline')).toEqual({ name: 'outline' });
    expect(parseCall('targets,format=json')).toEqual({ name: 'targets', format: 'json' });
    expect(parseCall('format=json,check')).toEqual({ name: 'check', format: 'json' });
    expect(parseCall(undefined, true)).toEqual({ name: 'check' });
    expect(parseCall('check,format=json', true)).toEqual({ name: 'check', format: 'json' });
  });

  test('lint is check (buildx takes both, sending requestid frontend.lint); subrequests.describe is a call', () => {
    expect(parseCall('lint')).toEqual({ name: 'check' });
    expect(parseCall('lint,format=json,ignorestatus=true')).toEqual({ name: 'check', format: 'json', ignoreStatus: true });
    expect(parseCall('lint', true)).toEqual({ name: 'check' });
    expect(parseCall('subrequests.describe')).toEqual({ name: 'subrequests.describe' });
    expect(parseCall('subrequests.describe,format=json', false, 'call')).toEqual({ name: 'subrequests.describe', format: 'json' });
    expect(CALL_REQUESTS['subrequests.describe']).toBe('frontend.subrequests.describe');
    expect(CALL_REQUESTS.check).toBe('frontend.lint');
    expect(() => parseCall('describe')).toThrow(/unknown --call "describe": the calls are build, check, outline, targets, subrequests.describe/);
    expect(() => parseCall('subrequests.describe', true)).toThrow(/--check cannot be used with --call=subrequests.describe/);
  });

  test('an unknown call, field or format, two names, or --check with another call are KLN0702 naming the value and the choices', () => {
    expect(() => parseCall('outlines')).toThrow(/unknown --call "outlines": the calls are build, check, outline, targets/);
    expect(() => parseCall('outline,format=yaml')).toThrow(/invalid --call format "yaml": the formats are json/);
    expect(() => parseCall('outline,fmt=json')).toThrow(/invalid --call field "fmt=json" in "outline,fmt=json": the fields are format and ignorestatus/);
    expect(() => parseCall('check,ignorestatus=yes')).toThrow(/invalid --call ignorestatus value "yes": true or false/);
    expect(() => parseCall('outline,targets')).toThrow(/names two calls \(outline, targets\)/);
    expect(() => parseCall('outline', true)).toThrow(/--check cannot be used with --call=outline/);
    try {
      parseCall('nope');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('KLN0702');
    }
  });
});

test('ignorestatus=BOOL (Go ParseBool), as buildx ParseCallFunc: the answer\'s status code then fails nothing', () => {
  expect(parseCall('check,ignorestatus=true')).toEqual({ name: 'check', ignoreStatus: true });
  expect(parseCall('ignorestatus=1', true)).toEqual({ name: 'check', ignoreStatus: true });
  expect(parseCall('outline,format=json,ignorestatus=false')).toEqual({ name: 'outline', format: 'json' });
  // buildx printResult: `!f.IgnoreStatus` guards the result.statuscode exit
  expect(callAnswer({ name: 'check', ignoreStatus: true }, meta({ 'result.txt': 'WARNING: x\n', 'result.statuscode': '1' }))).toEqual({ text: 'WARNING: x\n', failed: false });
  expect(callAnswer({ name: 'check' }, meta({ 'result.txt': 'WARNING: x\n', 'result.statuscode': '1' }))).toEqual({ text: 'WARNING: x\n', failed: true });
});

describe('what a call prints (buildx printResult)', () => {
  const outlineJson = '{\n  "name": "app",\n  "args": [\n    {\n      "name": "V",\n      "value": "1"\n    }\n  ]\n}';

  test('format=json prints result.json and a newline; the status code decides the exit', () => {
    expect(callAnswer({ name: 'outline', format: 'json' }, meta({ 'result.json': outlineJson, 'result.txt': 'ignored' }))).toEqual({ text: `${outlineJson}\n`, failed: false });
    expect(callAnswer({ name: 'check', format: 'json' }, meta({ 'result.json': '{}', 'result.statuscode': '1' }))).toEqual({ text: '{}\n', failed: true });
    expect(callAnswer({ name: 'check', format: 'json' }, meta({ 'result.txt': 'x' }))).toBeUndefined();
  });

  test('outline and targets text is rendered from result.json (a frontend image that sends no result.txt prints the same)', () => {
    expect(callAnswer({ name: 'outline' }, meta({ 'result.json': outlineJson }))?.text).toBe('TARGET: app\n\nBUILD ARG   VALUE   DESCRIPTION\nV           1       \n\n');
    expect(callAnswer({ name: 'targets' }, meta({ 'result.json': '{"targets":[{"name":"a","default":true,"description":"the app"}]}' }))?.text).toBe('TARGET      DESCRIPTION\na (default) the app\n');
    // an answer newer than buildx's printers, or JSON they cannot read: the frontend's own text
    expect(callAnswer({ name: 'outline' }, meta({ 'result.json': outlineJson, 'result.txt': 'own text\n', version: '1.1.0' }))?.text).toBe('own text\n');
    expect(callAnswer({ name: 'targets' }, meta({ 'result.json': 'not json', 'result.txt': 'own\n' }))?.text).toBe('own\n');
    // check prints the frontend's report
    expect(callAnswer({ name: 'check' }, meta({ 'result.json': '{}', 'result.txt': 'Check complete, no warnings found.\n', 'result.statuscode': '0' }))).toEqual({ text: 'Check complete, no warnings found.\n', failed: false });
    expect(callAnswer({ name: 'outline' }, meta({}))).toBeUndefined();
  });

  test('subrequests.describe text is PrintDescribe of result.json; format=json prints the JSON; a newer version prints result.txt', () => {
    const json = '[\n  {\n    "name": "frontend.targets",\n    "version": "1.0.0",\n    "type": "rpc",\n    "description": "List all targets current build supports"\n  },\n  {\n    "name": "frontend.subrequests.describe",\n    "version": "1.0.0",\n    "type": "rpc",\n    "description": "List available subrequest types"\n  }\n]';
    const call = { name: 'subrequests.describe' } as const;
    expect(callAnswer(call, meta({ 'result.json': json }))).toEqual({ text: 'NAME                 VERSION DESCRIPTION\ntargets              1.0.0   List all targets current build supports\nsubrequests.describe 1.0.0   List available subrequest types\n', failed: false });
    expect(callAnswer({ ...call, format: 'json' }, meta({ 'result.json': json, 'result.txt': 'x' }))?.text).toBe(`${json}\n`);
    expect(callAnswer(call, meta({ 'result.json': json, 'result.txt': 'newer\n', version: '2.0.0' }))?.text).toBe('newer\n');
  });
});
