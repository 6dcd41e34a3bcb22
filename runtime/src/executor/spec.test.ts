import { describe, expect, test } from 'vitest';
import { boundingCapabilities, buildSpec, DEFAULT_CAPABILITIES, specJson, type SpecInput } from './spec.js';

const base: SpecInput = {
  rootPath: '/r',
  readonlyRoot: false,
  args: ['sh'],
  env: ['A=1'],
  cwd: '/',
  user: { uid: 1, gid: 2, additionalGids: [3], home: '/' },
  hostname: 'h',
  network: 'none',
  security: 'sandbox',
  insecureCapabilities: ['CAP_SYS_ADMIN'],
  hostsFile: '/b/hosts',
  resolvConfFile: '/b/resolv.conf',
  mounts: [],
};

type Spec = {
  process: { env: string[]; user: unknown; capabilities: { effective: string[] } };
  linux: { namespaces: { type: string }[]; maskedPaths?: string[] };
  mounts: { destination: string; type: string; options: string[] }[];
};

describe('buildSpec', () => {
  test('sandbox: default caps, masked paths, own netns, default PATH added', () => {
    const s = buildSpec(base) as unknown as Spec;
    expect(s.process.capabilities.effective).toEqual(DEFAULT_CAPABILITIES);
    expect(s.process.env[0]).toMatch(/^PATH=/);
    expect(s.process.user).toEqual({ uid: 1, gid: 2, additionalGids: [3] });
    expect(s.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(s.linux.maskedPaths).toContain('/proc/kcore');
    expect(s.mounts.find((m) => m.destination === '/sys')?.type).toBe('sysfs');
  });

  test('host network binds /sys and shares the netns; insecure has the given caps and no masks', () => {
    const s = buildSpec({ ...base, network: 'host', security: 'insecure', env: ['PATH=/x'] }) as unknown as Spec;
    expect(s.linux.namespaces.map((n) => n.type)).not.toContain('network');
    expect(s.mounts.find((m) => m.destination === '/sys')?.type).toBe('bind');
    expect(s.process.capabilities.effective).toEqual(['CAP_SYS_ADMIN']);
    expect(s.linux.maskedPaths).toBeUndefined();
    expect(s.process.env).toEqual(['PATH=/x']);
  });

  test('ulimits become RLIMIT_* entries (-1 is RLIM_INFINITY as the exact uint64) and a cgroup parent sets cgroupsPath', () => {
    const spec = buildSpec({ ...base, rlimits: [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'core', soft: -1, hard: -1 }], cgroupsPath: '/builds/kiln-1' });
    const text = specJson(spec);
    expect(text).toContain('"rlimits":[{"type":"RLIMIT_NOFILE","soft":1024,"hard":2048},{"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":18446744073709551615}]');
    expect(text).toContain('"cgroupsPath":"/builds/kiln-1"');
    expect(specJson(buildSpec(base))).not.toContain('rlimits');
  });

  test('a root overlay comes before every other mount', () => {
    const s = buildSpec({ ...base, rootMount: { destination: '/', type: 'overlay', source: 'overlay', options: [] } }) as unknown as Spec;
    expect(s.mounts[0]?.destination).toBe('/');
    expect(s.mounts[1]?.destination).toBe('/proc');
  });

  test('devpts gets gid=5 (tty) unless the user namespace has no gid 5 (rootless kiln with one id)', () => {
    const pts = (i: SpecInput): readonly string[] | undefined => (buildSpec(i) as unknown as Spec).mounts.find((m) => m.destination === '/dev/pts')?.options;
    expect(pts(base)).toContain('gid=5');
    expect(pts({ ...base, idsInside: 65537 })).toContain('gid=5');
    expect(pts({ ...base, idsInside: 1 })).toEqual(['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620']);
  });
});

test('boundingCapabilities decodes CapBnd', () => {
  expect(boundingCapabilities('CapBnd:\t0000000000000003\n')).toEqual(['CAP_CHOWN', 'CAP_DAC_OVERRIDE']);
  expect(boundingCapabilities('CapBnd:\t000001fffeffffff\n')).not.toContain('CAP_SYS_RESOURCE');
});
