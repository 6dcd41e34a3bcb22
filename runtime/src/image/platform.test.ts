import { describe, expect, test } from 'vitest';
import { digestOf } from '../content/digest.js';
import { formatPlatform, normalizePlatform, parsePlatform, selectPlatformManifest } from './platform.js';
import type { Descriptor, Platform } from './types.js';

describe('normalizePlatform (containerd rules)', () => {
  test.for([
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/i386', 'linux/386'],
    ['Linux/AMD64', 'linux/amd64'],
    ['arm64', 'linux/arm64'],
    ['macos/arm64', 'darwin/arm64'],
  ] as const)('%s → %s', ([input, want]) => {
    expect(formatPlatform(parsePlatform(input))).toBe(want);
  });

  test('invalid platform strings are rejected with a code', () => {
    expect(() => parsePlatform('linux//amd64')).toThrow(expect.objectContaining({ code: 'PLATFORM_NOT_FOUND' }));
  });

  test('one component is an OS (the host architecture) or an architecture (linux), else rejected, as containerd parses it', () => {
    expect(() => parsePlatform('bogus')).toThrow(expect.objectContaining({ code: 'PLATFORM_NOT_FOUND', message: expect.stringContaining('unknown operating system or architecture') }));
    expect(parsePlatform('x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux').os).toBe('linux');
    expect(parsePlatform('windows')).toMatchObject({ os: 'windows', architecture: parsePlatform('linux').architecture });
    // Two components are taken as they are (containerd does not check them either).
    expect(parsePlatform('linux/riscv128')).toEqual({ os: 'linux', architecture: 'riscv128' });
  });

  test('normalisation keeps os.version', () => {
    expect(normalizePlatform({ os: 'windows', architecture: 'x86_64', 'os.version': '10.0' })).toEqual({ os: 'windows', architecture: 'amd64', 'os.version': '10.0' });
  });
});

describe('selectPlatformManifest', () => {
  const desc = (p: Platform | undefined, tag: string): Descriptor => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: digestOf(tag),
    size: 1,
    platform: p,
  });
  const list = [
    desc(undefined, 'attestation'),
    desc({ os: 'linux', architecture: 'arm', variant: 'v6' }, 'armv6'),
    desc({ os: 'linux', architecture: 'arm', variant: 'v7' }, 'armv7'),
    desc({ os: 'linux', architecture: 'amd64' }, 'amd64'),
    desc({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 'arm64'),
  ];
  test('exact match after normalisation wins', () => {
    expect(selectPlatformManifest(list, parsePlatform('linux/aarch64')).digest).toBe(digestOf('arm64'));
    expect(selectPlatformManifest(list, parsePlatform('linux/x86_64')).digest).toBe(digestOf('amd64'));
    expect(selectPlatformManifest(list, parsePlatform('linux/arm/v7')).digest).toBe(digestOf('armv7'));
  });
  test('older compatible variants are picked when the exact one is missing', () => {
    expect(selectPlatformManifest(list.filter((d) => d.digest !== digestOf('armv7')), parsePlatform('linux/arm/v7')).digest).toBe(digestOf('armv6'));
    expect(selectPlatformManifest([list[3] as Descriptor], parsePlatform('linux/amd64/v3')).digest).toBe(digestOf('amd64'));
  });
  test('no compatible entry → PLATFORM_NOT_FOUND naming what exists', () => {
    expect(() => selectPlatformManifest(list, parsePlatform('linux/s390x'))).toThrow(
      expect.objectContaining({ code: 'PLATFORM_NOT_FOUND', message: expect.stringContaining('linux/arm64') }),
    );
    expect(() => selectPlatformManifest(list, parsePlatform('linux/arm/v5'))).toThrow(expect.objectContaining({ code: 'PLATFORM_NOT_FOUND' }));
  });
});
