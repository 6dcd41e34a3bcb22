/**
 * Values the DSL's types accept (and EXPOSE / HEALTHCHECK accept in a Dockerfile) that the
 * run-time option checks must not refuse, and the config JSON they give.
 */
import { describe, expect, test } from 'vitest';
import { parsePlatform, type ChownSpec } from '@kiln/llb-core';
import { image, scratch, type Command, type RunOpts } from './index.js';
import { imageConfigFor } from './image-result.js';

const config = (spec: Parameters<typeof imageConfigFor>[1]): Record<string, unknown> =>
  (JSON.parse(imageConfigFor(undefined, spec, parsePlatform('linux/amd64'))) as { config: Record<string, unknown> }).config;

describe('run-time checks accept what the types allow', () => {
  test('a chown object with an undefined user or group (llb-core leaves that part unset)', () => {
    // what a build file's own tsconfig (no exactOptionalPropertyTypes, TypeScript's default) accepts
    const loose = (c: { user?: string | number | undefined; group?: string | number | undefined }): ChownSpec => c as ChownSpec;
    expect(() => image('busybox').copy(scratch(), '/a', '/b', { chown: loose({ user: 1000, group: undefined }) })).not.toThrow();
    expect(() => image('busybox').mkdir('/a', { chown: loose({ user: undefined, group: 'app' }) })).not.toThrow();
    expect(() => image('busybox').mkdir('/a', { chown: { user: 1000, group: null as never } })).toThrow(/mkdir: option "chown" must be/);
  });

  test('an options object of a subtype, passed whole (TypeScript accepts it): keys far from every option name are left alone, misspellings still refused', () => {
    interface Step extends RunOpts {
      readonly cmd: Command;
      readonly label: string;
    }
    const steps: readonly Step[] = [{ cmd: ['make'], label: 'build', env: { A: '1' } }];
    expect(() => steps.reduce((s, step) => s.run(step.cmd, step), image('busybox'))).not.toThrow();
    const own = { chown: 'app:app', chmod: 0o644, owner: 'team-a' };
    expect(() => image('busybox').copy(scratch(), '/a', '/b', own)).not.toThrow();
    expect(() => image('busybox').run(['make'], { mount: {} } as RunOpts)).toThrow(/run: unknown option "mount" \(did you mean "mounts"\?\)/);
    expect(() => image('busybox').image({ entryPoint: ['node'] } as never)).toThrow(/image: unknown option "entryPoint" \(did you mean "entrypoint"\?\)/);
  });

  test('exposedPorts: EXPOSE ranges and upper-case protocols, as the Dockerfile frontend reads them', () => {
    // EXPOSE 8000-8002 80/TCP 53/udp 0 → each port of the range, the protocol lower-cased
    expect(config({ exposedPorts: ['8000-8002', '80/TCP', '53/udp', 0] })['ExposedPorts']).toEqual({ '8000/tcp': {}, '8001/tcp': {}, '8002/tcp': {}, '80/tcp': {}, '53/udp': {}, '0/tcp': {} });
    for (const bad of ['8002-8000', '70000', '80/http', '3000.5', -1, 3000.5]) {
      expect(() => image('busybox').image({ exposedPorts: [bad] }), String(bad)).toThrow(/option "exposedPorts" must be a list of ports/);
    }
  });

  test('healthcheck durations: every form Go time.ParseDuration takes for HEALTHCHECK flags, in exact nanoseconds', () => {
    const h = config({ healthcheck: { cmd: 'true', interval: '1.001s', timeout: '1500us', startPeriod: '.5s', startInterval: '+2ms' } })['Healthcheck'];
    // Go: 1.001s is 1s + float64(1) * (1e9 / 1000) ns; 1.001 * 1e9 in float64 is 1000999999.9999999
    expect(h).toEqual({ Test: ['CMD-SHELL', 'true'], Interval: 1_001_000_000, Timeout: 1_500_000, StartPeriod: 500_000_000, StartInterval: 2_000_000 });
    expect(config({ healthcheck: { cmd: 'true', interval: '1h0m0.1s', timeout: '0', startPeriod: '2µs1ms' } })['Healthcheck']).toEqual({ Test: ['CMD-SHELL', 'true'], Interval: 3_600_100_000_000, StartPeriod: 1_002_000 });
    // what HEALTHCHECK refuses: under 1ms, negative, no unit, no digits
    for (const bad of ['500us', '-1s', '30', '.s', '1.5', '1d']) {
      expect(() => image('busybox').image({ healthcheck: { cmd: 'true', interval: bad } }), bad).toThrow(/option "interval" must be a duration/);
    }
  });
});

describe('run-time checks refuse what the Dockerfile frontend (or runc) refuses', () => {
  test('stopSignal is a signal STOPSIGNAL takes; volumes are non-empty paths; mount targets are absolute', () => {
    for (const ok of ['SIGINT', 'term', '15', 'RTMIN+3']) expect(config({ stopSignal: ok })['StopSignal']).toBe(ok);
    for (const bad of ['SIGNOPE', '0', '']) expect(() => image('busybox').image({ stopSignal: bad }), bad).toThrow(/option "stopSignal" must be a signal name or number/);
    expect(() => image('busybox').image({ volumes: ['/data', ''] })).toThrow(/option "volumes" must be a list of paths/);
    expect(() => image('busybox').run(['make'], { mounts: { 'relative/x': image('alpine') } })).toThrow(/option "mounts" must be an object of .* values by absolute target path/);
    expect(() => image('busybox').run(['make'], { mounts: { '/abs': image('alpine') } })).not.toThrow();
  });
});
