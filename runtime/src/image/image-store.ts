import { mkdir, readdir, readFile, rename, rm, writeFile, open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ImageStoreError } from '../content/errors.js';
import { parseDescriptor } from './manifest.js';
import type { Descriptor } from './types.js';

/** A named image: the name (a normalised reference) and the descriptor it points at. */
export interface ImageRecord {
  readonly name: string;
  readonly target: Descriptor;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/**
 * Image records under `<root>/images/`, one JSON file per name (URI-encoded), each written to a
 * temp file, fsynced and renamed, so a crash leaves either the old or the new record.
 */
export class ImageStore {
  readonly dir: string;

  private constructor(root: string) {
    this.dir = join(root, 'images');
  }

  static async open(root: string): Promise<ImageStore> {
    const s = new ImageStore(root);
    await mkdir(s.dir, { recursive: true });
    return s;
  }

  private file(name: string): string {
    return join(this.dir, `${encodeURIComponent(name)}.json`);
  }

  /** The record for `name`, or undefined. */
  async get(name: string): Promise<ImageRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(name), 'utf8');
    } catch {
      return undefined;
    }
    return parseRecord(JSON.parse(text) as unknown);
  }

  /** Like {@link get} but throws `IMAGE_NOT_FOUND`. */
  async mustGet(name: string): Promise<ImageRecord> {
    const r = await this.get(name);
    if (r === undefined) throw new ImageStoreError('IMAGE_NOT_FOUND', `image "${name}" not found in the kiln store`);
    return r;
  }

  /**
   * Creates or replaces the record for `name`. `durable: false` skips the fsync, for records that
   * can be made again from the content store alone (a name pinned by digest): a killed process
   * still leaves the old or the new file (the rename is atomic), only a power loss may lose it.
   */
  async put(name: string, target: Descriptor, opts: { readonly durable?: boolean } = {}): Promise<ImageRecord> {
    const prev = await this.get(name).catch(() => undefined);
    const now = new Date().toISOString();
    const rec: ImageRecord = { name, target, createdAt: prev?.createdAt ?? now, updatedAt: now };
    const tmp = join(this.dir, `.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(tmp, JSON.stringify(rec));
    if (opts.durable !== false) {
      const fh = await open(tmp, 'r+');
      await fh.sync();
      await fh.close();
    }
    await rename(tmp, this.file(name));
    return rec;
  }

  async delete(name: string): Promise<boolean> {
    try {
      await rm(this.file(name));
      return true;
    } catch {
      return false;
    }
  }

  /** All records, sorted by name. */
  async list(): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    for (const f of (await readdir(this.dir)).sort()) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      const r = await this.get(decodeURIComponent(f.slice(0, -'.json'.length)));
      if (r !== undefined) out.push(r);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

function parseRecord(v: unknown): ImageRecord {
  if (typeof v !== 'object' || v === null) throw new ImageStoreError('MANIFEST_INVALID', 'corrupt image record');
  const r = v as Record<string, unknown>;
  if (typeof r['name'] !== 'string') throw new ImageStoreError('MANIFEST_INVALID', 'corrupt image record');
  return {
    name: r['name'],
    target: parseDescriptor(r['target']),
    createdAt: typeof r['createdAt'] === 'string' ? r['createdAt'] : '',
    updatedAt: typeof r['updatedAt'] === 'string' ? r['updatedAt'] : '',
  };
}
