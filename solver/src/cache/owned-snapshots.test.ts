import { expect, test } from 'vitest';
import { CacheStore } from './store.js';

test('ownedSnapshots: what results refer to, what waits for its removal, and what a build of this process leases', async () => {
  const store = CacheStore.open({ path: ':memory:', releaseSnapshot: (id) => (id === 'busy' ? Promise.reject(new Error('EBUSY')) : Promise.resolve()) });
  store.save('k1', [], { id: 'r1', snapshot: 'exec-recorded', size: 1, description: 'RUN a' });
  store.upsertRecord({ snapshot: 'busy', description: 'RUN b', kind: 'regular' });
  store.upsertRecord({ snapshot: 'gone', description: 'RUN c', kind: 'regular' });
  // The prune drops every record: 'busy' stays pending (its removal failed), 'gone' is removed.
  await store.prune({ all: true });
  // Recorded again by a later build.
  store.save('k2', [], { id: 'r2', snapshot: 'exec-recorded', size: 1, description: 'RUN a' });
  const unlease = store.lease('exec-leased');
  expect([...store.ownedSnapshots()].sort()).toEqual(['busy', 'exec-leased', 'exec-recorded']);
  unlease();
  expect([...store.ownedSnapshots()].sort()).toEqual(['busy', 'exec-recorded']);
  store.close();
});
