import { describe, expect, test } from 'vitest';
import { callAnswer, parseCall } from './call-spec.js';

const meta = (m: Record<string, string>): Map<string, Uint8Array> => new Map(Object.entries(m).map(([k, v]) => [k, new TextEncoder().encode(v)]));

describe('--call values (buildx ParsePrintFunc)', () => {
  test('NAME[,format=json]; build and no value are a build; --check is check', () => {
    expect(parseCall(undefined)).toBeUndefined();
    expect(parseCall('build')).toBeUndefined();
    expect(parseCall('outline')).toEqual({ name: 'outline' });
    expect(parseCall('targets,format=json')).toEqual({ name: 'targets', format: 'json' });
    expect(parseCall('format=json,check')).toEqual({ name: 'check', format: 'json' });
    expect(parseCall(undefined, true)).toEqual({ name: 'check' });
    expect(parseCall('check,format=json', true)).toEqual({ name: 'check', format: 'json' });
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
});
