import { describe, expect, test } from 'vitest';
import { formatPlatform, hostPlatform } from '@kiln/runtime';
import { parsePlatformList } from './platform-list.js';

describe('parsePlatformList (--platform, as buildx platformutil)', () => {
  test('a list, normalized, repeats dropped; local is this machine', () => {
    expect(parsePlatformList('linux/amd64, linux/arm64/v8,linux/amd64').map(formatPlatform)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(parsePlatformList('local').map(formatPlatform)).toEqual([formatPlatform(hostPlatform())]);
  });

  test.each(['linux/amd64,', ',linux/amd64', 'linux/amd64,,linux/arm64', ''])('an empty entry is refused: %j', (value) => {
    expect(() => parsePlatformList(value)).toThrow(expect.objectContaining({ code: 'KLN0702', message: `--platform ${JSON.stringify(value)}: an empty platform in the list` }));
  });

  test('a malformed entry names the flag and keeps the hint', () => {
    expect(() => parsePlatformList('linux//amd64')).toThrow(expect.objectContaining({ code: 'KLN0702', message: expect.stringMatching(/^--platform: invalid platform "linux\/\/amd64"/), hint: expect.stringContaining('os/arch') }));
  });
});
