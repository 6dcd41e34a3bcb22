/** Helpers of the snapshot integration tests (merge, diff): build snapshots and read them back. */
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalSnapshotter } from '@kiln/runtime';

/** Commits `id` on top of `parent` after `change` ran on the mounted active snapshot. */
export async function commitWith(
  s: LocalSnapshotter,
  id: string,
  parent: string | undefined,
  change: (dir: string) => Promise<void>,
  labels?: Readonly<Record<string, string>>,
): Promise<void> {
  await s.prepare(`${id}-active`, parent);
  const m = await s.mount(`${id}-active`);
  try {
    await change(m.path);
  } finally {
    await m.release();
  }
  await s.commit(id, `${id}-active`, labels === undefined ? {} : { labels });
}

/** The files (path → content, directories as `/`, others `<kind>`) of a committed snapshot, read through its mount. */
export async function tree(s: LocalSnapshotter, id: string): Promise<Record<string, string>> {
  const m = await s.mount(id);
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(p);
      if (st.isDirectory()) {
        out[`${r}/`] = '';
        await walk(p, r);
      } else if (st.isFile()) out[r] = await readFile(p, 'utf8');
      else out[r] = `<${st.isCharacterDevice() ? 'char' : 'other'}>`;
    }
  };
  try {
    await walk(m.path, '');
  } finally {
    await m.release();
  }
  return out;
}
