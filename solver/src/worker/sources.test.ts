import { describe, expect, test } from 'vitest';
import type { WorkerOpContext } from '../llb/worker.js';
import type { RuntimeWorkerDeps } from './deps.js';
import { LocalSources } from './sources.js';

describe('LocalSources: a local source the build has no directory for', () => {
  test('names the near one and the ones there are (typo tour 4: local("contxt") in a build file)', async () => {
    // only localDirs is read before the refusal
    const sources = new LocalSources({ localDirs: { context: '/ctx', dockerfile: '/df' } } as unknown as RuntimeWorkerDeps);
    await expect(sources.snapshot({ identifier: 'local://contxt' }, {} as WorkerOpContext)).rejects.toMatchObject({
      code: 'SOLVER_INVALID_DEFINITION',
      message: 'no local directory was given for local source "contxt" (did you mean "context"?)',
      hint: 'pass the build context (or --build-context NAME=path) for it; this build has "context", "dockerfile"',
    });
  });
});
