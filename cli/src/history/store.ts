import { renameSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pidAlive } from '@kiln/solver';
import { HistoryError } from './errors.js';
import { ownerAlive, parseRecord, type HistoryOwner, type HistoryRecord } from './record.js';

/** BuildKit's default history config (`[history] maxAge = 48h, maxEntries = 50`). */
export interface RetentionPolicy {
  readonly maxEntries: number;
  readonly maxAgeMs: number;
}

/** BuildKit's defaults. */
export const DEFAULT_RETENTION: RetentionPolicy = { maxEntries: 50, maxAgeMs: 48 * 3600_000 };

/** The file names of one record: `<created ms, 13 digits>-<ref>.json` and `….log.gz`. */
export interface RecordFiles {
  readonly ref: string;
  readonly created: number;
  readonly json: string;
  readonly log: string;
}

/** Below this many bytes a record and its log are written synchronously (see {@link HistoryStore.write}). */
const SYNC_WRITE_BELOW = 64 * 1024;

const RECORD_NAME = /^(\d{13})-([0-9a-z]{25})\.json$/;
const LOG_NAME = /^(\d{13})-([0-9a-z]{25})\.log\.gz$/;
/** A temp file of {@link HistoryStore.write}: `.<name>.<pid>-<hex>.tmp`. */
const TEMP_NAME = /^\..+\.(\d+)-[0-9a-f]+\.tmp$/;

/** The names of record `ref` created at `created` (ms). */
export function recordFiles(ref: string, created: number): RecordFiles {
  const base = `${String(created).padStart(13, '0')}-${ref}`;
  return { ref, created, json: `${base}.json`, log: `${base}.log.gz` };
}

/** A record and its files. */
export interface StoredRecord {
  readonly record: HistoryRecord;
  readonly files: RecordFiles;
}

/**
 * The build records of one kiln root, in `<root>/history/`. Each record is its own files: the
 * record JSON and its gzip-compressed progress log, each written to a temp file and renamed into
 * place (no shared index that two processes could tear). A build writes its record when it
 * starts (status `running`, naming its process) and replaces it when it ends, so a killed
 * build leaves a record that reads as interrupted. The name starts with the creation time, so
 * listing and retention need no file reads. No fsync: a record lost to a power cut is not worth
 * a disk flush on every build; a torn file is skipped when read.
 */
export class HistoryStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'history');
  }

  /**
   * Writes (or replaces) the record, with its log. The record goes to a temp file renamed over
   * the old one. The log is written in place before that: it is read only through a record that
   * names it, and the record is renamed into place after it is whole (a log cut short by a kill
   * stays nameless and goes with its record). With `waited` (a build waits for this write), a
   * small record and log (a cached build's, a few kB) are written synchronously: three syscalls
   * take less than three trips through libuv's thread pool on a busy machine.
   */
  async write(rec: HistoryRecord, log?: Uint8Array, opts: { readonly waited?: boolean } = {}): Promise<RecordFiles> {
    const files = recordFiles(rec.ref, Date.parse(rec.createdAt));
    const tmp = join(this.dir, `.${files.json}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const json = JSON.stringify(rec);
    const small = opts.waited === true && json.length + (log?.length ?? 0) <= SYNC_WRITE_BELOW;
    const put = async (): Promise<void> => {
      if (small) {
        if (log !== undefined) writeFileSync(join(this.dir, files.log), log, { mode: 0o600 });
        writeFileSync(tmp, json, { mode: 0o600 });
      } else await Promise.all([writeFile(tmp, json, { mode: 0o600 }), ...(log === undefined ? [] : [writeFile(join(this.dir, files.log), log, { mode: 0o600 })])]);
    };
    try {
      // The directory is made by the first write into it only.
      await put().catch(async (e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        await mkdir(this.dir, { recursive: true });
        await put();
      });
      if (small) renameSync(tmp, join(this.dir, files.json));
      else await rename(tmp, join(this.dir, files.json));
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    return files;
  }

  /** The records' files, newest first (by creation time, then ref). */
  async files(): Promise<RecordFiles[]> {
    const out: RecordFiles[] = [];
    for (const name of await this.#names()) {
      const m = RECORD_NAME.exec(name);
      if (m !== null) out.push(recordFiles(m[2] as string, Number(m[1])));
    }
    return out.sort((a, b) => b.created - a.created || (a.ref < b.ref ? 1 : -1));
  }

  async #names(): Promise<string[]> {
    try {
      return await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Reads one record; undefined when it is gone or not a record (torn, foreign). */
  async read(files: RecordFiles): Promise<HistoryRecord | undefined> {
    const text = await readFile(join(this.dir, files.json), 'utf8').catch(() => undefined);
    const rec = text === undefined ? undefined : parseRecord(text);
    return rec?.ref === files.ref ? rec : undefined;
  }

  /** Every readable record, newest first. */
  async list(): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    for (const files of await this.files()) {
      const record = await this.read(files);
      if (record !== undefined) out.push({ record, files });
    }
    return out;
  }

  /** The record files that hold no record this kiln can read (torn, foreign, not JSON). */
  async unreadable(): Promise<RecordFiles[]> {
    const out: RecordFiles[] = [];
    for (const files of await this.files()) {
      const text = await readFile(join(this.dir, files.json), 'utf8').catch(() => undefined);
      if (text !== undefined && parseRecord(text)?.ref !== files.ref) out.push(files);
    }
    return out;
  }

  /**
   * The record `ref` names: a whole ref or a unique prefix of one, or `^N`, the Nth before the
   * newest (`^0` is the newest), as buildx reads them; also `BUILDER/NODE/REF`, the form of
   * `buildx.build.ref` in `--metadata-file`. Default: the newest.
   */
  async find(ref: string | undefined): Promise<StoredRecord> {
    const all = await this.list();
    if (all.length === 0) throw new HistoryError('KLN0930', `no builds are recorded in ${this.dir}`, { hint: 'run a build first (kiln build, bake or solve record themselves)' });
    const q = ref === undefined ? '^0' : (/^[^/]+\/[^/]+\/([^/]+)$/.exec(ref)?.[1] ?? ref);
    if (q.startsWith('^')) {
      const n = q.slice(1);
      if (!/^\d+$/.test(n)) throw new HistoryError('KLN0931', `invalid build offset "${q}"`, { hint: 'use ^N: ^0 is the latest build, ^1 the one before' });
      const hit = all[Number(n)];
      if (hit === undefined) throw new HistoryError('KLN0930', `there is no build ${q}: ${all.length} ${all.length === 1 ? 'build is' : 'builds are'} recorded`, { hint: `use ^0 to ^${all.length - 1}, or a BUILD ID from kiln history ls` });
      return hit;
    }
    const hits = all.filter((s) => s.record.ref.startsWith(q.toLowerCase()));
    if (hits.length === 1 && q !== '') return hits[0] as StoredRecord;
    if (hits.length > 1 && q !== '') throw new HistoryError('KLN0930', `build ID prefix "${q}" matches ${hits.length} builds`, { hint: 'give more characters of the BUILD ID (kiln history ls --no-trunc)' });
    throw new HistoryError('KLN0930', `no build record "${q}"`, { hint: 'list the recorded builds with kiln history ls (kept: the last 50, and every build of the last 48 h)' });
  }

  /** Removes a record and its log (the record first: a log without one is never read). */
  async remove(files: RecordFiles): Promise<void> {
    await unlink(join(this.dir, files.json)).catch(ignoreMissing);
    await unlink(join(this.dir, files.log)).catch(ignoreMissing);
  }

  /** Removes a record's log only (one cut short by a failed write). */
  async removeLog(files: RecordFiles): Promise<void> {
    await unlink(join(this.dir, files.log)).catch(ignoreMissing);
  }

  /** The log file of a record. */
  logPath(files: RecordFiles): string {
    return join(this.dir, files.log);
  }

  /**
   * Applies the retention policy as BuildKit's history gc does: a record goes once it is both
   * past the newest `maxEntries` and completed more than `maxAgeMs` ago (the last 50 stay however
   * old, and every record of the last 48 h stays however many), never one whose build still runs.
   * Newest is by creation (from the file names: only the records that may go are read). Also
   * removes logs without a record and temp files of dead processes. Safe beside other processes
   * doing the same (a file another removed first is skipped).
   */
  async prune(policy: RetentionPolicy = DEFAULT_RETENTION, now = Date.now(), alive: (owner: HistoryOwner | undefined) => boolean = ownerAlive): Promise<number> {
    const names = await this.#names();
    const records = new Set<string>();
    const byAge: RecordFiles[] = [];
    for (const name of names) {
      const m = RECORD_NAME.exec(name);
      if (m === null) continue;
      records.add(m[2] as string);
      byAge.push(recordFiles(m[2] as string, Number(m[1])));
    }
    byAge.sort((a, b) => b.created - a.created || (a.ref < b.ref ? 1 : -1));
    const oldest = now - policy.maxAgeMs;
    let removed = 0;
    for (const files of byAge.slice(policy.maxEntries)) {
      // Created within the max age: completed within it too.
      if (files.created >= oldest) continue;
      const rec = await this.read(files);
      if (rec?.status === 'running' && alive(rec.owner)) continue;
      // A long build created before the max age but completed within it stays (an interrupted one ended when it was created).
      if (rec?.completedAt !== undefined && Date.parse(rec.completedAt) >= oldest) continue;
      await this.remove(files);
      removed++;
    }
    for (const name of names) {
      const log = LOG_NAME.exec(name);
      // A log whose record is gone: removed before its log, or the record was never written.
      if (log !== null && !records.has(log[2] as string)) await unlink(join(this.dir, name)).catch(ignoreMissing);
      const tmp = TEMP_NAME.exec(name);
      // A write takes milliseconds: a temp file left for minutes by a process gone here is stale.
      // Not a fresh one: its writer may be a kiln in another pid namespace sharing the root.
      if (tmp !== null && !pidAlive(Number(tmp[1])) && (await isStale(join(this.dir, name)))) await unlink(join(this.dir, name)).catch(ignoreMissing);
    }
    return removed;
  }
}

/** A temp file older than this is no write in flight. */
const STALE_TEMP_MS = 10 * 60_000;

async function isStale(path: string): Promise<boolean> {
  const st = await stat(path).catch(() => undefined);
  return st !== undefined && st.mtimeMs < Date.now() - STALE_TEMP_MS;
}

function ignoreMissing(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
}
