import { describe, expect, test } from 'vitest';
import type { DetectPlan, GroupEntry, PlanSections } from './descriptors.js';
import { resolveGroup, type DetectRun } from './detect-resolve.js';

// Table tests after lifecycle phase/detector_test.go ("Resolve" cases), written anew.
const S = (provides: string[] = [], requires: string[] = []): PlanSections => ({ provides, requires: requires.map((name) => ({ name })) });
const plan = (sections: PlanSections = S(), ...or: PlanSections[]): DetectPlan => ({ sections, or });
const bp = (id: string, optional = false): GroupEntry => ({ id, version: 'v1', optional });
const ext = (id: string): GroupEntry => ({ id, version: 'v1', optional: true, extension: true });
const pass = (p: DetectPlan = plan()): DetectRun => ({ code: 0, plan: p });
const fail: DetectRun = { code: 100, plan: plan() };

interface Case {
  name: string;
  group: GroupEntry[];
  runs: DetectRun[];
  kind: 'pass' | 'fail' | 'error';
  ids?: string[];
  planOut?: { name: string; providers: string[]; requires: number }[];
}

const cases: Case[] = [
  { name: 'empty group fails', group: [], runs: [], kind: 'fail' },
  { name: 'all members pass without a plan', group: [bp('A'), bp('B')], runs: [pass(), pass()], kind: 'pass', ids: ['A', 'B'], planOut: [] },
  { name: 'a required member failing fails the group', group: [bp('A'), bp('B')], runs: [pass(), fail], kind: 'fail' },
  { name: 'an optional member failing is dropped', group: [bp('A'), bp('B', true)], runs: [pass(), fail], kind: 'pass', ids: ['A'] },
  { name: 'only optional members, none passing: no viable buildpacks', group: [bp('A', true), bp('B', true)], runs: [fail, fail], kind: 'fail' },
  { name: 'an unexpected status of a required member is an error', group: [bp('A'), bp('B')], runs: [pass(), { code: 3, plan: plan() }], kind: 'error' },
  { name: 'an unexpected status of an optional member does not fail a passing group', group: [bp('A'), bp('B', true)], runs: [pass(), { code: 3, plan: plan() }], kind: 'pass', ids: ['A'] },
  { name: 'an erroring optional member turns a failed group into an error', group: [bp('A', true), bp('B')], runs: [{ code: 1, plan: plan() }, fail], kind: 'error' },
  { name: 'a target mismatch of a required member is an error', group: [bp('A')], runs: [{ code: -1, plan: plan() }], kind: 'error' },
  {
    name: 'provide then require resolves one plan entry',
    group: [bp('A'), bp('B')],
    runs: [pass(plan(S(['dep1']))), pass(plan(S([], ['dep1'])))],
    kind: 'pass',
    ids: ['A', 'B'],
    planOut: [{ name: 'dep1', providers: ['A'], requires: 1 }],
  },
  { name: 'a require before its provide fails', group: [bp('A'), bp('B')], runs: [pass(plan(S([], ['dep1']))), pass(plan(S(['dep1'])))], kind: 'fail' },
  { name: 'a provide nobody requires fails', group: [bp('A'), bp('B')], runs: [pass(plan(S(['dep1']))), pass()], kind: 'fail' },
  {
    name: 'the same buildpack may provide and require',
    group: [bp('A')],
    runs: [pass(plan(S(['dep1'], ['dep1'])))],
    kind: 'pass',
    ids: ['A'],
    planOut: [{ name: 'dep1', providers: ['A'], requires: 1 }],
  },
  {
    name: 'optional members with unmet requires or unused provides are dropped and the trial retried',
    group: [bp('A', true), bp('B'), bp('C', true), bp('D')],
    runs: [pass(plan(S([], ['missing']))), pass(plan(S(['dep']))), pass(plan(S(['unused']))), pass(plan(S([], ['dep'])))],
    kind: 'pass',
    ids: ['B', 'D'],
    planOut: [{ name: 'dep', providers: ['B'], requires: 1 }],
  },
  {
    name: 'dropping an optional provider leaves its requirer unmet: fail',
    group: [bp('A', true), bp('B')],
    runs: [pass(plan(S(['dep'], ['missing']))), pass(plan(S([], ['dep'])))],
    kind: 'fail',
  },
  {
    name: 'falls back to an [[or]] alternative',
    group: [bp('A'), bp('B')],
    runs: [pass(plan(S(['dep1']), S(['dep2']))), pass(plan(S([], ['dep2'])))],
    kind: 'pass',
    ids: ['A', 'B'],
    planOut: [{ name: 'dep2', providers: ['A'], requires: 1 }],
  },
  {
    name: 'options of later members vary first (depth-first)',
    group: [bp('A'), bp('B')],
    runs: [pass(plan(S(['x']), S(['y']))), pass(plan(S([], ['y']), S([], ['x'])))],
    kind: 'pass',
    ids: ['A', 'B'],
    planOut: [{ name: 'x', providers: ['A'], requires: 1 }],
  },
  {
    name: 'only the last option keeps optional: an optional member whose first option fails uses its last and may be dropped',
    group: [bp('A'), bp('B', true)],
    runs: [pass(), pass(plan(S([], ['never']), S(['unused'])))],
    kind: 'pass',
    ids: ['A'],
  },
  {
    name: 'several providers of one name: the require collects all earlier ones',
    group: [bp('A'), bp('B'), bp('C'), bp('D')],
    runs: [pass(plan(S(['dep']))), pass(plan(S(['dep']))), pass(plan(S([], ['dep']))), pass(plan(S([], ['dep'])))],
    kind: 'pass',
    ids: ['A', 'B', 'C', 'D'],
    planOut: [{ name: 'dep', providers: ['A', 'B'], requires: 2 }],
  },
  // image extensions (lifecycle's Resolve with group-extensions)
  {
    name: 'an extension provide meets a buildpack require; the plan entry names the extension',
    group: [ext('X'), bp('A')],
    runs: [pass(plan(S(['tool']))), pass(plan(S([], ['tool'])))],
    kind: 'pass',
    ids: ['X', 'A'],
    planOut: [{ name: 'tool', providers: ['X'], requires: 1 }],
  },
  { name: 'extensions alone are not a group (no buildpack detected)', group: [ext('X'), bp('A', true)], runs: [pass(), fail], kind: 'fail' },
  {
    name: 'an extension whose provide nobody requires is dropped (skip: provides unused)',
    group: [ext('X'), ext('Y'), bp('A')],
    runs: [pass(plan(S(['tool']))), pass(plan(S(['curl']))), pass(plan(S([], ['tool'])))],
    kind: 'pass',
    ids: ['X', 'A'],
  },
  { name: 'a failing extension is skipped like an optional buildpack', group: [ext('X'), bp('A')], runs: [fail, pass()], kind: 'pass', ids: ['A'] },
  { name: 'an extension and a buildpack may share an id', group: [ext('A'), bp('A')], runs: [pass(plan(S(['t']))), pass(plan(S([], ['t'])))], kind: 'pass', ids: ['A', 'A'] },
];

describe('resolveGroup', () => {
  test.for(cases)('$name', (c) => {
    const r = resolveGroup(c.group, c.runs);
    expect(r.kind).toBe(c.kind);
    if (r.kind !== 'pass') return;
    if (c.ids !== undefined) expect(r.group.map((e) => e.id)).toEqual(c.ids);
    expect(r.group.every((e) => !e.optional)).toBe(true);
    if (c.planOut !== undefined) expect(r.plan.map((p) => ({ name: p.name, providers: p.providers.map((e) => e.id), requires: p.requires.length }))).toEqual(c.planOut);
    // extensions stay marked as such in the group and the plan
    expect(r.group.map((e) => e.extension === true)).toEqual(r.group.map((e) => c.group.find((g) => g.id === e.id && g.extension === e.extension)?.extension === true));
  });

  test('the extension flag survives into the plan providers', () => {
    const r = resolveGroup([ext('X'), bp('A')], [pass(plan(S(['tool']))), pass(plan(S([], ['tool'])))]);
    expect(r).toMatchObject({ kind: 'pass', group: [{ id: 'X', extension: true }, { id: 'A' }], plan: [{ providers: [{ id: 'X', extension: true }] }] });
    if (r.kind === 'pass') expect(r.group[1]?.extension).toBeUndefined();
  });

  test('plan requires keep their metadata', () => {
    const r = resolveGroup([bp('A'), bp('B')], [pass(plan(S(['dep']))), pass(plan({ provides: [], requires: [{ name: 'dep', metadata: { version: '1.2' } }] }))]);
    expect(r).toMatchObject({ kind: 'pass', plan: [{ name: 'dep', requires: [{ name: 'dep', metadata: { version: '1.2' } }] }] });
  });
});
