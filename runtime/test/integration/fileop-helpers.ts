import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile, lstat, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach } from 'vitest';
import type { FileActionCopy } from '@kiln/runtime';

/** Fails (never skips) when not root: real chown needs it. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('fileop integration tests need root (real chown): run them as root, e.g. sudo npx vitest run runtime/test/integration');
}

const made: string[] = [];
afterEach(async () => {
  for (const d of made.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A fresh temp directory removed after the test. */
export async function tempDir(label = 'root'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `kiln-fileop-${label}-`));
  made.push(d);
  return d;
}

/** Writes a tree: string → file content, `{ link }` → symlink, `{ dir }` → empty directory. */
export type Tree = Readonly<Record<string, string | { readonly link: string } | { readonly dir: true }>>;

export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [p, v] of Object.entries(tree)) {
    const host = join(root, p);
    await mkdir(dirname(host), { recursive: true });
    if (typeof v === 'string') await writeFile(host, v);
    else if ('link' in v) await symlink(v.link, host);
    else await mkdir(host, { recursive: true });
  }
}

/** Lists a tree as path → content / `-> target` / `dir`, sorted. */
export async function readTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const { readdir } = await import('node:fs/promises');
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(join(root, r));
      if (st.isSymbolicLink()) out[r] = `-> ${await readlink(join(root, r))}`;
      else if (st.isDirectory()) {
        out[r] = 'dir';
        await walk(r);
      } else out[r] = await readFile(join(root, r), 'utf8');
    }
  };
  await walk('');
  return out;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** A FileActionCopy with BuildKit's client defaults (mode -1 keep, timestamp -1 keep). */
export function copyAction(src: string, dest: string, over: Partial<FileActionCopy> = {}): FileActionCopy {
  return {
    src,
    dest,
    mode: -1,
    followSymlink: false,
    dirCopyContents: false,
    attemptUnpackDockerCompatibility: false,
    createDestPath: false,
    allowWildcard: false,
    allowEmptyWildcard: false,
    timestamp: -1,
    alwaysReplaceExistingDestPaths: false,
    ...over,
  };
}

const PACKAGE_OF: Readonly<Record<string, string>> = { setfattr: 'attr', getfattr: 'attr', mkfifo: 'coreutils', mknod: 'coreutils', zstd: 'zstd' };

/** Runs a system command (tar, bzip2, xz, setfattr) needed to build fixtures; fails with the install hint. */
export function run(cmd: string, args: string[], cwd?: string): void {
  try {
    execFileSync(cmd, args, { cwd, stdio: 'pipe' });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed (is it installed? apt-get install ${PACKAGE_OF[cmd] ?? cmd}): ${String(err)}`);
  }
}
