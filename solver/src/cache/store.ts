import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { SolverError } from '../errors.js';

type SqliteDb = InstanceType<typeof Database>;

/** The kind of a cache record, as BuildKit's cache record types (used by prune filters and `du`). */
export type CacheRecordKind = 'regular' | 'source.local' | 'exec.cachemount' | 'internal' | 'frontend';

/** A link from an input key id to a key id (BuildKit's CacheInfoLink plus its target). */
export interface CacheLink {
  readonly input: number;
  readonly output: number;
  readonly digest: string;
  readonly selector: string;
}

/** One stored result: the snapshot an op produced for a cache key id. */
export interface CacheResultRecord {
  readonly key: string;
  readonly id: string;
  readonly snapshot: string;
  readonly size: number;
  /** ms since the epoch. */
  readonly created: number;
  readonly lastUsed: number;
  readonly description: string;
  readonly kind: CacheRecordKind;
}

/** `du` output: one row per snapshot (results sharing a snapshot are counted once). */
export interface DiskUsageRecord {
  readonly snapshot: string;
  readonly size: number;
  readonly created: number;
  readonly lastUsed: number;
  readonly description: string;
  readonly kind: CacheRecordKind;
  readonly keys: number;
  readonly inUse: boolean;
  /**
   * No cache record refers to it any more, but an earlier prune could not remove it (still used
   * as a parent, or its files busy): it still takes disk space, and every prune retries it.
   */
  readonly pendingRemoval?: boolean;
}

/** Options of {@link CacheStore.prune}. */
export interface PruneOptions {
  /** Remove every record kind (default keeps `internal` and `frontend` records, like buildctl prune). */
  readonly all?: boolean;
  /** Keep up to this many bytes, removing least recently used snapshots first. */
  readonly keepStorage?: number;
  /**
   * Keep what was used within this many ms (buildctl `--keep-duration`, buildx `--filter until=`):
   * only records last used before `now - keepDuration` may go.
   */
  readonly keepDuration?: number;
  /** Only records this accepts may go (buildctl `--filter`); the total still counts every record. */
  readonly filter?: (record: DiskUsageRecord) => boolean;
}

/**
 * The records a prune with `opts` removes, in removal order: those not in use, of an eligible
 * kind (`internal` and `frontend` only with `all`), accepted by `filter` and unused for
 * `keepDuration`; least recently used first. With `keepStorage`, only until `total` (every
 * record's size, BuildKit's unshared total) fits. Pure: the automatic GC plans with it too.
 */
export function selectPruneVictims(usage: readonly DiskUsageRecord[], total: number, opts: PruneOptions, now: number): DiskUsageRecord[] {
  const cutoff = opts.keepDuration === undefined ? Infinity : now - opts.keepDuration;
  const eligible = usage.filter(
    (u) => !u.inUse && u.pendingRemoval !== true && (opts.all === true || (u.kind !== 'internal' && u.kind !== 'frontend')) && u.lastUsed < cutoff && (opts.filter?.(u) ?? true),
  );
  const victims: DiskUsageRecord[] = [];
  for (const u of eligible.sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (opts.keepStorage !== undefined && total <= opts.keepStorage) break;
    victims.push(u);
    total -= u.size;
  }
  return victims;
}

/** What the store tells a {@link ReleaseSnapshotHook} about the snapshot it releases. */
export interface ReleaseContext {
  /**
   * Whether the snapshot is still unused: no cache record refers to it again (in any process using
   * this database) and no build of this store leases it. Removal is asynchronous while builds go
   * on (one may unpack an image layer into the same `layer-<chain>` id and record it meanwhile):
   * the hook asks this synchronously right before its irreversible step and, on false, keeps the
   * snapshot and rejects.
   */
  stillUnused(): boolean;
  /**
   * Whether the store has any claim on another snapshot: a cache record of any process refers to
   * it, it waits for its removal, or a build of this store leases it. The lower layers of an image
   * (`layer-<chain>` below the one a FROM records) are no record's: the hook removes them with
   * their last child while this says false, as BuildKit releases a ref's parents with it.
   */
  owns?(snapshot: string): boolean;
}

/**
 * Called for every snapshot no cache record refers to any more; the worker deletes it. Rejecting
 * means the snapshot is still there: the store keeps it pending removal and calls again later
 * (unless it was recorded again meanwhile). Resolving means it is gone: records saved for it
 * while the hook ran are dropped with it.
 */
export type ReleaseSnapshotHook = (snapshotId: string, ctx: ReleaseContext) => Promise<void>;

/** Options of {@link CacheStore.open}. */
export interface CacheStoreOptions {
  /** The sqlite file (e.g. `<kiln root>/cache/solver.db`); `:memory:` for tests. */
  readonly path: string;
  readonly releaseSnapshot?: ReleaseSnapshotHook;
  /** Clock in ms (tests). */
  readonly now?: () => number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (
  src TEXT NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL, digest TEXT NOT NULL,
  selector TEXT NOT NULL, dst TEXT NOT NULL,
  PRIMARY KEY (src, input, output, digest, selector, dst)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_dst ON links(dst);
CREATE TABLE IF NOT EXISTS results (
  key TEXT NOT NULL, id TEXT NOT NULL, snapshot TEXT NOT NULL, size INTEGER NOT NULL,
  created INTEGER NOT NULL, last_used INTEGER NOT NULL, description TEXT NOT NULL, kind TEXT NOT NULL,
  PRIMARY KEY (key, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_snapshot ON results(snapshot);
CREATE TABLE IF NOT EXISTS pending_release (
  snapshot TEXT PRIMARY KEY, size INTEGER NOT NULL, since INTEGER NOT NULL, description TEXT NOT NULL,
  attempts INTEGER NOT NULL, error TEXT NOT NULL
) WITHOUT ROWID;
`;

interface ResultRow {
  key: string;
  id: string;
  snapshot: string;
  size: number;
  created: number;
  last_used: number;
  description: string;
  kind: string;
}

const toRecord = (r: ResultRow): CacheResultRecord => ({
  key: r.key,
  id: r.id,
  snapshot: r.snapshot,
  size: r.size,
  created: r.created,
  lastUsed: r.last_used,
  description: r.description,
  kind: r.kind as CacheRecordKind,
});

/**
 * The persistent solver cache: links between cache key ids (BuildKit's cache storage model) and
 * results (key id → snapshot, size, created, last used). Backed by SQLite in WAL mode: every
 * change is one transaction, so a killed process leaves either the old or the new state.
 * Snapshots are owned by the store once saved; when the last record of a snapshot goes (prune),
 * it is marked pending removal in the same transaction and the release hook runs after it
 * commits. A snapshot whose release failed (busy, still a parent) or never ran (crash) stays
 * pending: `du` counts it and every prune ({@link retryReleases}) tries again.
 */
export class CacheStore {
  readonly #db: SqliteDb;
  readonly #release: ReleaseSnapshotHook | undefined;
  readonly #now: () => number;
  readonly #inUse = new Map<string, number>();
  /** Snapshots whose release hook is running (a retry pass of this process). */
  readonly #releasing = new Set<string>();
  /** Prepared statements by SQL: preparing one costs more than running it (~0.3 ms per call on every step). */
  readonly #stmts = new Map<string, ReturnType<SqliteDb['prepare']>>();

  private constructor(db: SqliteDb, opts: CacheStoreOptions) {
    this.#db = db;
    this.#release = opts.releaseSnapshot;
    this.#now = opts.now ?? Date.now;
  }

  /** Opens (creating if needed) the store; throws SOLVER_CACHE_STORE if the file is not a usable database. */
  static open(opts: CacheStoreOptions): CacheStore {
    try {
      if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
      const db = new Database(opts.path, { timeout: 10_000 });
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode is durable across process kills (not power loss) and much faster.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.exec(SCHEMA);
      db.prepare(`INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', '1')`).run();
      return new CacheStore(db, opts);
    } catch (err) {
      throw new SolverError('SOLVER_CACHE_STORE', `cannot open the cache store at ${opts.path}`, {
        cause: err,
        hint: 'remove the file to start with an empty cache, or check its permissions',
      });
    }
  }

  #stmt(sql: string): ReturnType<SqliteDb['prepare']> {
    let st = this.#stmts.get(sql);
    if (st === undefined) {
      st = this.#db.prepare(sql);
      this.#stmts.set(sql, st);
    }
    return st;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  /** A new random key id (for keys with inputs that match nothing stored yet). */
  newId(): string {
    return randomBytes(16).toString('hex');
  }

  /** Ids linked from `src` through `link`. */
  walkLinks(src: string, link: CacheLink): string[] {
    const rows = this.#stmt('SELECT dst FROM links WHERE src = ? AND input = ? AND output = ? AND digest = ? AND selector = ?')
      .all(src, link.input, link.output, link.digest, link.selector) as Array<{ dst: string }>;
    return rows.map((r) => r.dst);
  }

  hasLink(src: string, link: CacheLink, dst: string): boolean {
    return (
      this.#stmt('SELECT 1 FROM links WHERE src = ? AND input = ? AND output = ? AND digest = ? AND selector = ? AND dst = ?')
        .get(src, link.input, link.output, link.digest, link.selector, dst) !== undefined
    );
  }

  /** Links into key id `dst` (BuildKit's WalkBacklinks), ordered for a deterministic export. */
  backlinks(dst: string): Array<CacheLink & { src: string }> {
    return this.#stmt('SELECT src, input, output, digest, selector FROM links WHERE dst = ? ORDER BY src, input, output, digest, selector').all(dst) as Array<CacheLink & { src: string }>;
  }

  /** All links (for cache export). */
  links(): Array<CacheLink & { src: string; dst: string }> {
    return this.#stmt('SELECT src, input, output, digest, selector, dst FROM links').all() as Array<CacheLink & { src: string; dst: string }>;
  }

  /** Results stored for key id `key`, newest first. */
  results(key: string): CacheResultRecord[] {
    return (this.#stmt('SELECT * FROM results WHERE key = ? ORDER BY created DESC').all(key) as ResultRow[]).map(toRecord);
  }

  /** Marks a result as used now (LRU for prune). */
  touch(key: string, id: string): void {
    this.#stmt('UPDATE results SET last_used = ? WHERE key = ? AND id = ?').run(this.#now(), key, id);
  }

  /**
   * Atomically adds `links` (src → dst) and the result of key id `key`: either everything is
   * stored or nothing.
   */
  save(
    key: string,
    links: ReadonlyArray<CacheLink & { src: string }>,
    result: { id: string; snapshot: string; size: number; description: string; kind?: CacheRecordKind; created?: number },
  ): CacheResultRecord {
    const now = this.#now();
    // A result loaded from an imported cache keeps the time it was made (BuildKit's combined
    // cache manager saves it with the imported record's CreatedAt), so exporting it again gives
    // the same cache.
    const created = result.created ?? now;
    const addLink = this.#stmt('INSERT OR IGNORE INTO links (src, input, output, digest, selector, dst) VALUES (?, ?, ?, ?, ?, ?)');
    const addResult = this.#stmt(
      'INSERT OR REPLACE INTO results (key, id, snapshot, size, created, last_used, description, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const tx = this.#db.transaction(() => {
      for (const l of links) addLink.run(l.src, l.input, l.output, l.digest, l.selector, key);
      addResult.run(key, result.id, result.snapshot, result.size, created, now, result.description, result.kind ?? 'regular');
      // Referred to again (a cache mount name, a shared snapshot): no longer to be removed.
      this.#stmt('DELETE FROM pending_release WHERE snapshot = ?').run(result.snapshot);
    });
    tx();
    return { key, id: result.id, snapshot: result.snapshot, size: result.size, created, lastUsed: now, description: result.description, kind: result.kind ?? 'regular' };
  }

  /**
   * Records (or refreshes) something that lives outside the key graph but should show in `du` and
   * go with `prune`, e.g. a cache mount directory (`kind: 'exec.cachemount'`): one record per
   * `snapshot` name; the release hook gets that name.
   */
  upsertRecord(rec: { snapshot: string; size?: number | undefined; description: string; kind: CacheRecordKind }): void {
    const now = this.#now();
    const key = `${rec.kind}:${rec.snapshot}`;
    const existing = this.#stmt('SELECT created, size FROM results WHERE key = ? AND id = ?').get(key, key) as { created: number; size: number } | undefined;
    this.#db.transaction(() => {
      this.#stmt('INSERT OR REPLACE INTO results (key, id, snapshot, size, created, last_used, description, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(key, key, rec.snapshot, rec.size ?? existing?.size ?? 0, existing?.created ?? now, now, rec.description, rec.kind);
      this.#stmt('DELETE FROM pending_release WHERE snapshot = ?').run(rec.snapshot);
    })();
  }

  /** Sets the size of a record {@link upsertRecord} made, if it still exists (never re-creates one). */
  updateRecordSize(rec: { snapshot: string; size: number; kind: CacheRecordKind }): void {
    const key = `${rec.kind}:${rec.snapshot}`;
    this.#stmt('UPDATE results SET size = ? WHERE key = ? AND id = ?').run(rec.size, key, key);
  }

  /** Adds links only (e.g. connecting a definition key to a content key that already has results). */
  addLinks(links: ReadonlyArray<CacheLink & { src: string; dst: string }>): void {
    const addLink = this.#stmt('INSERT OR IGNORE INTO links (src, input, output, digest, selector, dst) VALUES (?, ?, ?, ?, ?, ?)');
    this.#db.transaction(() => {
      for (const l of links) addLink.run(l.src, l.input, l.output, l.digest, l.selector, l.dst);
    })();
  }

  /** Protects `snapshot` from prune while a build uses it; returns the release function. */
  lease(snapshot: string): () => void {
    this.#inUse.set(snapshot, (this.#inUse.get(snapshot) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#inUse.get(snapshot) ?? 1) - 1;
      if (n <= 0) this.#inUse.delete(snapshot);
      else this.#inUse.set(snapshot, n);
    };
  }

  /** How many dropped snapshots still wait for their removal (see {@link CacheStore.retryReleases}). */
  pendingReleaseCount(): number {
    return (this.#stmt('SELECT COUNT(*) AS n FROM pending_release').get() as { n: number }).n;
  }

  /** Disk usage per snapshot, most recently used first; then snapshots pending removal. */
  du(): DiskUsageRecord[] {
    return [...this.#recordUsage(), ...this.#pendingUsage()];
  }

  #pendingUsage(): DiskUsageRecord[] {
    const rows = this.#stmt('SELECT snapshot, size, since, description FROM pending_release ORDER BY since').all() as Array<{ snapshot: string; size: number; since: number; description: string }>;
    return rows.map((r) => ({ snapshot: r.snapshot, size: r.size, created: r.since, lastUsed: r.since, description: r.description, kind: 'regular', keys: 0, inUse: false, pendingRemoval: true }));
  }

  #recordUsage(): DiskUsageRecord[] {
    const rows = this.#stmt(
        `SELECT snapshot, MAX(size) AS size, MIN(created) AS created, MAX(last_used) AS last_used,
                MIN(description) AS description, MIN(kind) AS kind, COUNT(*) AS keys
           FROM results GROUP BY snapshot ORDER BY last_used DESC`,
      )
      .all() as Array<{ snapshot: string; size: number; created: number; last_used: number; description: string; kind: string; keys: number }>;
    return rows.map((r) => ({
      snapshot: r.snapshot,
      size: r.size,
      created: r.created,
      lastUsed: r.last_used,
      description: r.description,
      kind: r.kind as CacheRecordKind,
      keys: r.keys,
      inUse: this.#inUse.has(r.snapshot),
    }));
  }

  /**
   * The bytes `du` counts (each snapshot once, plus those pending removal) in one SQL query: what
   * the automatic GC checks after every build, cheap while the cache is under its limit.
   */
  totalSize(): number {
    const row = this.#stmt(
      `SELECT (SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM results GROUP BY snapshot))
            + (SELECT COALESCE(SUM(size), 0) FROM pending_release) AS total`,
    ).get() as { total: number };
    return row.total;
  }

  /**
   * An upper bound of {@link totalSize}: a snapshot several keys share counts once per key. A
   * plain SUM over the table, ~10x cheaper (0.4 ms vs 4 ms for 10,000 records): enough to tell
   * that a cache is under a limit.
   */
  totalSizeBound(): number {
    return (this.#stmt('SELECT (SELECT COALESCE(SUM(size), 0) FROM results) + (SELECT COALESCE(SUM(size), 0) FROM pending_release) AS total').get() as { total: number }).total;
  }

  /**
   * Whether a snapshot of one of `kinds` was last used before `before` (ms), not counting leased
   * ones: judged per snapshot as {@link du} and {@link prune} do (its latest use, MIN(kind)), so
   * an old record of a snapshot another record used since (a local context recorded under a new
   * random key by every build) does not count.
   */
  hasUnusedSince(kinds: readonly CacheRecordKind[], before: number): boolean {
    const rows = this.#stmt(
      `SELECT snapshot FROM results
        WHERE snapshot IN (SELECT snapshot FROM results WHERE last_used < @before AND kind IN (SELECT value FROM json_each(@kinds)))
        GROUP BY snapshot HAVING MAX(last_used) < @before AND MIN(kind) IN (SELECT value FROM json_each(@kinds))`,
    ).iterate({ before, kinds: JSON.stringify(kinds) }) as IterableIterator<{ snapshot: string }>;
    // Stops at the first one (closing the statement): rarely more than one row is read.
    for (const r of rows) if (!this.#inUse.has(r.snapshot)) return true;
    return false;
  }

  /** Every snapshot some result refers to (a worker may delete snapshots outside this set). */
  referencedSnapshots(): Set<string> {
    return new Set((this.#stmt('SELECT DISTINCT snapshot FROM results').all() as Array<{ snapshot: string }>).map((r) => r.snapshot));
  }

  /**
   * Every snapshot this store owns or holds: those results refer to, those pending removal (see
   * {@link retryReleases}; removed through the release hook, not by others), and those leased by
   * builds of this process. Anything else is not the store's (a sweep of what killed builds left
   * may take it). Cache mount names (`cachemount:<id>`) are included as recorded.
   */
  ownedSnapshots(): Set<string> {
    const owned = this.referencedSnapshots();
    for (const r of this.#stmt('SELECT snapshot FROM pending_release').all() as Array<{ snapshot: string }>) owned.add(r.snapshot);
    for (const s of this.#inUse.keys()) owned.add(s);
    return owned;
  }

  /**
   * Removes cache records and releases their snapshots: with `keepStorage`, least recently used
   * snapshots go first until the total fits; otherwise every eligible one. Snapshots in use by a
   * running build are kept. Links whose target has no result left are dropped too.
   * Returns the snapshots removed; one whose removal failed stays pending (see {@link retryReleases}).
   */
  async prune(opts: PruneOptions = {}): Promise<DiskUsageRecord[]> {
    // What earlier prunes could not remove goes first (its children may be gone by now).
    const earlier = await this.#retry();
    const usage = this.#recordUsage();
    const total = usage.reduce((n, u) => n + u.size, 0) + this.#pendingUsage().reduce((n, u) => n + u.size, 0);
    const victims = selectPruneVictims(usage, total, opts, this.#now());
    const delResults = this.#stmt('DELETE FROM results WHERE snapshot = ?');
    this.#db.transaction(() => {
      for (const v of victims) {
        delResults.run(v.snapshot);
        this.#markPending(v.snapshot, v.size, v.description, '');
      }
      this.#db.exec('DELETE FROM links WHERE dst NOT IN (SELECT key FROM results) AND dst NOT IN (SELECT src FROM links)');
    })();
    // Only what is gone: a victim still pending removal is listed by du, not reported as freed.
    const byId = new Map(victims.map((v) => [v.snapshot, v]));
    return [...earlier, ...(await this.#retry()).map((u) => byId.get(u.snapshot) ?? u)];
  }

  /**
   * Runs the release hook for every snapshot pending removal (pruned, not removed yet), in passes
   * while some succeed, so a parent whose last child goes in this pass goes in the next one. A
   * snapshot whose release rejects stays pending with the error. Call it at start-up to collect
   * what a crashed or failed prune left; {@link prune} calls it. Returns how many were removed.
   */
  async retryReleases(): Promise<number> {
    return (await this.#retry()).length;
  }

  async #retry(): Promise<DiskUsageRecord[]> {
    const removed: DiskUsageRecord[] = [];
    // Recorded again while released: pending again, but not before the next prune.
    const revived = new Set<string>();
    for (let progress = true; progress; ) {
      progress = false;
      for (const u of this.#pendingUsage()) {
        if (revived.has(u.snapshot)) continue;
        // Looked at again right before its release: while an earlier release of this pass was
        // awaited, a build may have recorded it again (a reused image layer, a cache mount) or
        // leased it, and another retry (a concurrent prune) may be removing it already.
        if (this.#releasing.has(u.snapshot) || !this.#unused(u.snapshot)) continue;
        this.#releasing.add(u.snapshot);
        try {
          await this.#release?.(u.snapshot, { stillUnused: () => this.#unused(u.snapshot), owns: (other) => this.#owns(other) });
        } catch (e) {
          // Still there. Recorded again meanwhile: its pending row is gone and it stays; only
          // leased: it stays pending and the next prune tries again.
          this.#stmt('UPDATE pending_release SET attempts = attempts + 1, error = ? WHERE snapshot = ?').run(e instanceof Error ? e.message : String(e), u.snapshot);
          continue;
        } finally {
          this.#releasing.delete(u.snapshot);
        }
        // Gone. Records saved for it while the hook ran (after its last stillUnused(), or with a
        // hook that does not ask) refer to the removed snapshot (a build looked it up just before)
        // or to a new one made under the same id since: they are dropped, so no build hits a
        // missing snapshot, and the id stays pending, so a new snapshot is not leaked; the next
        // prune releases it (a build using it meanwhile leases it or records it again).
        const recordedAgain = this.#db.transaction(() => {
          const again = this.#stmt('SELECT size, description FROM results WHERE snapshot = ? ORDER BY created DESC LIMIT 1').get(u.snapshot) as
            | { size: number; description: string }
            | undefined;
          if (again === undefined) {
            this.#stmt('DELETE FROM pending_release WHERE snapshot = ?').run(u.snapshot);
            return false;
          }
          this.#stmt('DELETE FROM results WHERE snapshot = ?').run(u.snapshot);
          this.#markPending(u.snapshot, again.size, again.description, 'recorded again while it was being removed');
          return true;
        })();
        if (recordedAgain) revived.add(u.snapshot);
        const { pendingRemoval: _p, ...rec } = u;
        removed.push(rec);
        progress = true;
      }
    }
    return removed;
  }

  /** Records `snapshot` as pending removal (a prune dropped its records), from now. */
  #markPending(snapshot: string, size: number, description: string, error: string): void {
    this.#stmt('INSERT OR REPLACE INTO pending_release (snapshot, size, since, description, attempts, error) VALUES (?, ?, ?, ?, 0, ?)').run(snapshot, size, this.#now(), description, error);
  }

  /** Referred to by a record of any process, pending removal, or leased here. */
  #owns(snapshot: string): boolean {
    return (
      this.#inUse.has(snapshot) ||
      this.#stmt('SELECT 1 FROM results WHERE snapshot = ? LIMIT 1').get(snapshot) !== undefined ||
      this.#stmt('SELECT 1 FROM pending_release WHERE snapshot = ?').get(snapshot) !== undefined
    );
  }

  /** Pending removal (no record of any process refers to it) and not leased here. */
  #unused(snapshot: string): boolean {
    return !this.#inUse.has(snapshot) && this.#stmt('SELECT 1 FROM pending_release WHERE snapshot = ?').get(snapshot) !== undefined;
  }
}
