import { describe, expect, test } from 'vitest';
import { asRunImage, targetNames, type SourcedImage } from './images.js';

const D = `sha256:${'8'.repeat(64)}`;

describe('targetNames', () => {
  test('names to write: normalised tags', () => {
    expect(targetNames('app', ['reg.example:5000/team/app:2'])).toEqual(['docker.io/library/app:latest', 'reg.example:5000/team/app:2']);
  });

  test('a digest reference is refused as a name to write (it would name other content)', () => {
    expect(() => targetNames(`app@${D}`, [])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
    expect(() => targetNames('app', [`app:1@${D}`])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
  });

  test('a name that is not a reference is a KLN0926 refusal, not a bare error', () => {
    expect(() => targetNames('Bad Name', [])).toThrow(expect.objectContaining({ code: 'KLN0926' }));
  });
});

describe('asRunImage', () => {
  test('a run image name that does not parse is a KLN0925 refusal', () => {
    const img = { name: 'not a ref', root: { mediaType: 'x', digest: D, size: 1 } } as unknown as SourcedImage;
    expect(() => asRunImage(img)).toThrow(expect.objectContaining({ code: 'KLN0925' }));
  });
});
