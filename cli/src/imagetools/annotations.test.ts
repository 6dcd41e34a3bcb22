import { describe, expect, test } from 'vitest';
import { parseAnnotations } from './annotations.js';

// buildx's buildflags.ParseAnnotations: cut at the first "=", then at the first ":"; each
// comma-separated type has its own optional [platform].
describe('parseAnnotations', () => {
  test('each type of a list carries its own platform', () => {
    expect(parseAnnotations(['manifest-descriptor[linux/amd64],manifest-descriptor[linux/arm64]:k=v'])).toEqual([
      { type: 'manifest-descriptor', platform: 'linux/amd64', key: 'k', value: 'v' },
      { type: 'manifest-descriptor', platform: 'linux/arm64', key: 'k', value: 'v' },
    ]);
    expect(parseAnnotations(['manifest-descriptor[linux/arm],index:k=v'])).toEqual([
      { type: 'manifest-descriptor', platform: 'linux/arm/v7', key: 'k', value: 'v' },
      { type: 'index', key: 'k', value: 'v' },
    ]);
    expect(parseAnnotations(['index,manifest-descriptor[linux/amd64]:k=v'])).toEqual([
      { type: 'index', key: 'k', value: 'v' },
      { type: 'manifest-descriptor', platform: 'linux/amd64', key: 'k', value: 'v' },
    ]);
  });

  test('keys may hold ":" after a type; values may hold "=" and ":"; no type is untyped', () => {
    expect(parseAnnotations(['index:a:b=c=d:e'])).toEqual([{ type: 'index', key: 'a:b', value: 'c=d:e' }]);
    expect(parseAnnotations(['org.opencontainers.image.url=https://x'])).toEqual([{ type: '', key: 'org.opencontainers.image.url', value: 'https://x' }]);
    expect(parseAnnotations([''])).toEqual([]);
  });

  test.for(['foo:k=v', 'com.example:k=v', 'index[linux/amd64:k=v', 'k', 'index:=v', 'manifest-descriptor[linux/$$]:k=v'])('%s is refused (KLN0860)', (a) => {
    expect(() => parseAnnotations([a])).toThrow(expect.objectContaining({ code: 'KLN0860' }));
  });
});
