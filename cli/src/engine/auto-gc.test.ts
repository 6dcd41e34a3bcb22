import { describe, expect, test } from 'vitest';
import type { CacheRecordKind } from '@kiln/solver';
import { DaemonGc } from './auto-gc.js';
import { defaultGcPolicy } from './gc-policy.js';
import type { KilnEngine } from './engine.js';

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
