import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CacheStore } from '@kiln/solver';
import { runKiln, token, useSandbox, writeTree, type KilnSandbox } from './build-helpers.js';

// A cache mount's size is measured in the background after its RUN (off the build's critical
// path); a plain kiln process records it before its cache store closes (helper-70 found it
// recorded as 0 when the RUN was the build's last step), so `du` and the automatic GC count it.
// The 3,000 files are written by ash's printf builtin: a head per file took 9-24 s of forks.

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

describe('cache mount size', { timeout: 180_000 }, () => {
  test('is recorded by a plain kiln process whose last step used the cache mount', async () => {
    const t = token();
    const ctx = join(sb.dir, 'cm');
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=sz-${t},target=/c sh -c 'for i in $(seq 1 3000); do printf %2000s > /c/f$i; done; echo ${t} > /t'\n` });
    const r = await runKiln(sb, ['build', ctx, '--root', sb.root, '--progress', 'plain'], { env: { KILN_DAEMON: '0', KILN_GC_KEEP_STORAGE: 'off' } });
    expect(r.code).toBe(0);
    const store = CacheStore.open({ path: join(sb.root, 'cache', 'solver.db') });
    try {
      const rows = store.du().filter((u) => u.kind === 'exec.cachemount' && u.description.includes(`sz-${t}`));
      expect(rows).toHaveLength(1);
      expect(rows[0]?.size ?? 0).toBeGreaterThanOrEqual(6_000_000);
    } finally {
      store.close();
    }
  });
});
