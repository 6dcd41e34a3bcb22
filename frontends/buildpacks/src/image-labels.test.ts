import { describe, expect, test } from 'vitest';
import { readRunImageMetadata } from './image-labels.js';

const top = `sha256:${'a'.repeat(64)}`;

describe('readRunImageMetadata', () => {
  test('runImage as kiln and lifecycle (Platform API >= 0.12) write it', () => {
    const label = JSON.stringify({ app: [], runImage: { topLayer: top, reference: 'docker.io/kt/run@sha256:x', image: 'kt/run', mirrors: ['m.example/kt/run'] } });
    expect(readRunImageMetadata(label)).toEqual({ topLayer: top, reference: 'docker.io/kt/run@sha256:x', image: 'kt/run', mirrors: ['m.example/kt/run'] });
  });

  test('images before 0.12: the name and mirrors come from the deprecated stack key', () => {
    const label = JSON.stringify({ runImage: { topLayer: top, reference: 'r' }, stack: { runImage: { image: 'old/run', mirrors: ['a/run', 7] } } });
    expect(readRunImageMetadata(label)).toEqual({ topLayer: top, reference: 'r', image: 'old/run', mirrors: ['a/run'] });
  });

  test('not an app image a rebase can use: undefined', () => {
    expect(readRunImageMetadata('not json')).toBeUndefined();
    expect(readRunImageMetadata('[]')).toBeUndefined();
    expect(readRunImageMetadata(JSON.stringify({ runImage: { reference: 'r' } }))).toBeUndefined();
    expect(readRunImageMetadata(JSON.stringify({ runImage: { topLayer: '' } }))).toBeUndefined();
  });
});
