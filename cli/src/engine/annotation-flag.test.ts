import { describe, expect, test } from 'vitest';
import { parseAnnotationFlags } from './annotation-flag.js';

describe('parseAnnotationFlags (buildx --annotation)', () => {
  test('no type means the manifests; types split on commas; a platform in brackets; the value keeps = and :', () => {
    expect(parseAnnotationFlags(['a=1', 'index,manifest-descriptor:b=x=y:z', 'manifest[linux/arm64/v8]:c=', ''])).toEqual([
      { type: 'manifest', key: 'a', value: '1' },
      { type: 'index', key: 'b', value: 'x=y:z' },
      { type: 'manifest-descriptor', key: 'b', value: 'x=y:z' },
      { type: 'manifest', platform: 'linux/arm64/v8', key: 'c', value: '' },
    ]);
  });

  test.for([
    ['novalue', 'expected KEY=VALUE'],
    ['=v', 'the key is empty'],
    ['index:=v', 'the key is empty'],
    ['layer:k=v', 'unknown annotation type "layer"'],
    ['Index:k=v', 'unknown annotation type "Index"'],
    ['manifest[linux amd64]:k=v', 'unknown annotation type "manifest[linux amd64]"'],
  ])('%s is refused: %s', ([flag, why]) => {
    expect(() => parseAnnotationFlags([flag as string])).toThrow(`invalid --annotation "${flag as string}": ${why as string}`);
  });
});
