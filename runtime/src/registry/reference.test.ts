import { describe, expect, test } from 'vitest';
import { familiarReference, formatReference, isLocalhost, parseReference } from './reference.js';

const D = 'sha256:e14e06e5c350e5445beb0f39fbc33c13636d555eff1e97858958927c6e3cb7dc';

describe('parseReference (Docker normalisation)', () => {
  test.for([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1', 'busybox:1'],
    ['localhost:5000/busybox', 'localhost:5000/busybox:latest', 'localhost:5000/busybox:latest'],
    ['localhost/busybox', 'localhost/busybox:latest', 'localhost/busybox:latest'],
    ['ghcr.io/a/b/c:v1.2-x', 'ghcr.io/a/b/c:v1.2-x', 'ghcr.io/a/b/c:v1.2-x'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`127.0.0.1:5000/x:t@${D}`, `127.0.0.1:5000/x:t@${D}`, `127.0.0.1:5000/x:t@${D}`],
  ] as const)('%s → %s', ([input, full, familiar]) => {
    const r = parseReference(input);
    expect(formatReference(r)).toBe(full);
    expect(familiarReference(r)).toBe(familiar);
  });

  test.for(['', 'Busybox', 'busybox:', 'busybox@sha256:abc', 'a//b', 'busybox:tag with space', '-x/y'])('rejects %j', (input) => {
    expect(() => parseReference(input)).toThrow(expect.objectContaining({ code: 'REFERENCE_INVALID' }));
  });

  test.for(['oci-layout:/tmp/layout', 'foo:/bar', 'host:50x/app', 'reg.-x.io/app', 'ho st:5000/app'])('rejects the registry host of %j', (input) => {
    expect(() => parseReference(input)).toThrow(expect.objectContaining({ code: 'REFERENCE_INVALID', message: expect.stringContaining('bad registry host') }));
  });

  test('a scheme one slash short is named as such', () => {
    expect(() => parseReference('oci-layout:/tmp/layout')).toThrow('bad registry host "oci-layout:" (a port is digits; a scheme takes two slashes: oci-layout://tmp/layout)');
  });

  test('localhost detection for plain http', () => {
    expect(isLocalhost('localhost:5000')).toBe(true);
    expect(isLocalhost('127.0.0.1:40000')).toBe(true);
    expect(isLocalhost('[::1]:5000')).toBe(true);
    expect(isLocalhost('registry.example.com:5000')).toBe(false);
  });
});
