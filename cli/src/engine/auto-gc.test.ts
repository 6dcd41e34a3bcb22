import { describe, expect, test } from 'vitest';
import type { CacheRecordKind } from '@kiln/solver';
import { DaemonGc, gcAfterBuild } from './auto-gc.js';
import { defaultGcPolicy } from './gc-policy.js';
import type { KilnEngine } from './engine.js';
import type { CliIo } from '../io.js';

/** An engine whose cache is never over a limit: a pass only reads its totals. */
function fakeEngine(): { engine: KilnEngine; checks: () => number } {
  let n = 0;
  const cache = {
    totalSizeBound: () => {
      n++;
      return 0;
    },
    totalSize: () => 0,
    hasUnusedSince: (_k: readonly CacheRecordKind[], _b: number) => false,
  };
  return { engine: { cache } as unknown as KilnEngine, checks: () => n };
}

describe('DaemonGc', () => {
  test('a build that ends schedules a pass', async () => {
    const { engine, checks } = fakeEngine();
    const gc = new DaemonGc(defaultGcPolicy(1e9));
    gc.afterBuild(engine);
    await gc.idle();
    expect(checks()).toBe(1);
  });

  test('once the daemon stops (SIGTERM interrupted its builds), their ends start no pass', async () => {
    const { engine, checks } = fakeEngine();
    const gc = new DaemonGc(defaultGcPolicy(1e9));
    gc.stop();
    gc.afterBuild(engine);
    await gc.idle();
    expect(checks()).toBe(0);
  });

  test('a failing pass is logged, never thrown', async () => {
    const lines: string[] = [];
    const gc = new DaemonGc(defaultGcPolicy(1e9), (l) => lines.push(l));
    const engine = { cache: { totalSizeBound: () => { throw new Error('disk I/O error'); } } } as unknown as KilnEngine;
    gc.afterBuild(engine);
    await gc.idle();
    expect(lines).toEqual(['gc failed: disk I/O error']);
  });
});

describe('gcAfterBuild (plain kiln process)', () => {
  const io = (env: Record<string, string>): { io: CliIo; err: () => string } => {
    let err = '';
    return { io: { stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: (c: string | Uint8Array) => (err += String(c)) }, env }, err: () => err };
  };
  const engine = (totalSizeBound: () => number): KilnEngine => ({ root: '/nonexistent/kiln', cache: { totalSizeBound, totalSize: totalSizeBound, hasUnusedSince: () => false } }) as unknown as KilnEngine;

  test('a malformed KILN_GC_KEEP_STORAGE is a warning naming it; no GC', () => {
    const o = io({ KILN_GC_KEEP_STORAGE: 'lots' });
    expect(gcAfterBuild(engine(() => 0), o.io)).toBeUndefined();
    expect(o.err()).toMatch(/^WARNING: KILN_GC_KEEP_STORAGE: invalid size "lots"; no automatic GC\n$/);
  });

  test('a cache store error in the check is a GC warning, not blamed on KILN_GC_KEEP_STORAGE', () => {
    const o = io({ KILN_GC_KEEP_STORAGE: '1GB' });
    expect(gcAfterBuild(engine(() => { throw new Error('database disk image is malformed'); }), o.io)).toBeUndefined();
    expect(o.err()).toBe('WARNING: automatic build cache GC failed: database disk image is malformed\n');
  });

  test('under the cap: nothing to run', () => {
    const o = io({ KILN_GC_KEEP_STORAGE: '1GB' });
    expect(gcAfterBuild(engine(() => 1000), o.io)).toBeUndefined();
    expect(o.err()).toBe('');
  });
});
