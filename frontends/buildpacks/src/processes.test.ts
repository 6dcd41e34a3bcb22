import { describe, expect, test } from 'vitest';
import type { ProcessType } from './descriptors.js';
import { mergeProcesses } from './processes.js';

const proc = (type: string, buildpackId: string, isDefault = false): ProcessType => ({ type, command: [`${buildpackId}-${type}`], args: [], direct: true, default: isDefault, buildpackId });

describe('mergeProcesses (lifecycle phase/builder.go)', () => {
  test('a later process of a type replaces it and moves to the end; the last default wins', () => {
    const m = mergeProcesses([[proc('web', 'a', true), proc('worker', 'a')], [proc('web', 'b'), proc('cli', 'b', true)]]);
    expect([...m.processes.values()].map((p) => `${p.type}:${p.buildpackId}`)).toEqual(['worker:a', 'web:b', 'cli:b']);
    expect(m.defaultType).toBe('cli');
  });
  test('a later non-default process of the default type unsets the default', () => {
    const m = mergeProcesses([[proc('web', 'a', true)], [proc('web', 'b')]]);
    expect(m.defaultType).toBeUndefined();
    expect(m.replacedDefaults).toEqual(['web']);
  });
  test('a later default process of the default type keeps it', () => {
    expect(mergeProcesses([[proc('web', 'a', true)], [proc('web', 'b', true)]]).defaultType).toBe('web');
  });
});
