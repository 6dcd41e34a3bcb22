import { describe, expect, test } from 'vitest';
import type { ImageConfigDraft } from '@kiln/runtime';
import { fillLayerLabels, LAYER_LABELS_KEY, parseLayerLabels } from './layer-labels.js';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
const LM = 'io.buildpacks.lifecycle.metadata';
// root first: two base layers, then three the frontend added
const diffIDs = ['sha256:base0', 'sha256:base1', 'sha256:layer', 'sha256:app', 'sha256:launcher'];

function draft(labels: Record<string, string>): ImageConfigDraft {
  return { os: 'linux', architecture: 'amd64', config: { Env: ['A=1'], Labels: labels } };
}
const label = (c: ImageConfigDraft, name: string): unknown => JSON.parse(((c['config'] as { Labels: Record<string, string> }).Labels[name]) ?? 'null');

describe(LAYER_LABELS_KEY, () => {
  const meta = { app: [{ sha: '' }], launcher: { sha: '' }, buildpacks: [{ key: 'a/b', layers: { 'x/y~z': { sha: '', data: { n: 1 } } } }] };
  const spec = parseLayerLabels(enc({ labels: { [LM]: { '/app/0/sha': 1, '/launcher/sha': 0, '/buildpacks/0/layers/x~1y~0z/sha': 2 } }, check: { layer: 3, diffID: 'sha256:base1' } }));

  test('fills each pointer with the diffID of the layer counted from the top; other fields and labels stay', () => {
    const out = fillLayerLabels(draft({ [LM]: JSON.stringify(meta), other: 'keep' }), spec, diffIDs);
    expect(label(out, LM)).toEqual({ app: [{ sha: 'sha256:app' }], launcher: { sha: 'sha256:launcher' }, buildpacks: [{ key: 'a/b', layers: { 'x/y~z': { sha: 'sha256:layer', data: { n: 1 } } } }] });
    expect((out['config'] as { Labels: Record<string, string>; Env: string[] }).Labels['other']).toBe('keep');
    expect((out['config'] as { Env: string[] }).Env).toEqual(['A=1']);
  });

  test('counting from the top does not depend on how many base layers there are', () => {
    const out = fillLayerLabels(draft({ [LM]: JSON.stringify(meta) }), { labels: spec.labels }, ['sha256:only-base', 'sha256:layer', 'sha256:app', 'sha256:launcher']);
    expect(label(out, LM)).toMatchObject({ app: [{ sha: 'sha256:app' }], launcher: { sha: 'sha256:launcher' } });
  });

  test('a failed check or a layer past the image fills nothing (a flattened merge)', () => {
    const input = draft({ [LM]: JSON.stringify(meta) });
    expect(fillLayerLabels(input, spec, ['sha256:base0', 'sha256:flattened'])).toBe(input);
    expect(fillLayerLabels(input, spec, ['sha256:other', 'sha256:x', 'sha256:layer', 'sha256:app', 'sha256:launcher'])).toBe(input);
  });

  test('pointers naming no string, a missing label or a label that is not JSON are skipped', () => {
    const s = parseLayerLabels(enc({ labels: { [LM]: { '/app/0': 0, '/nope/sha': 0, '/app/0/sha': 1 }, absent: { '/sha': 0 }, text: { '/sha': 0 } } }));
    const out = fillLayerLabels(draft({ [LM]: JSON.stringify(meta), text: 'not json' }), s, diffIDs);
    expect(label(out, LM)).toMatchObject({ app: [{ sha: 'sha256:app' }] });
    expect(label(out, LM)).not.toHaveProperty('nope');
    expect((out['config'] as { Labels: Record<string, string> }).Labels).toEqual({ [LM]: expect.any(String), text: 'not json' });
  });

  test('a malformed value is KLN0704', () => {
    expect(() => parseLayerLabels(new TextEncoder().encode('{'))).toThrow(expect.objectContaining({ code: 'KLN0704' }));
    expect(() => parseLayerLabels(enc({ labels: { [LM]: { 'app/0': 0 } } }))).toThrow(expect.objectContaining({ code: 'KLN0704' }));
    expect(() => parseLayerLabels(enc({ labels: { [LM]: { '/app': -1 } } }))).toThrow(expect.objectContaining({ code: 'KLN0704' }));
    expect(() => parseLayerLabels(enc({ labels: {}, check: { layer: 1 } }))).toThrow(expect.objectContaining({ code: 'KLN0704' }));
  });
});
