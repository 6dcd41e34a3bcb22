import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { syncLocalSource } from './sync.js';
import { walkLocal } from './walk.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kiln-sync-'));
  dirs.push(d);
  return d;
}
function files(root: string, spec: Record<string, string | null>): void {
  for (const [p, data] of Object.entries(spec)) {
    const fp = join(root, p);
    mkdirSync(join(fp, '..'), { recursive: true });
    if (data === null) mkdirSync(fp, { recursive: true });
    else writeFileSync(fp, data);
  }
}

describe('walkLocal filters (fsutil semantics)', () => {
  const root = (): string => {
    const r = tmp();
    files(r, {
      'Dockerfile': 'FROM x',
      'src/a.go': 'a',
      'src/b.txt': 'b',
      'src/vendor/v.go': 'v',
      'node_modules/m/index.js': 'm',
      'docs/README.md': 'r',
      'docs/other.md': 'o',
    });
    return r;
  };

  test('exclude patterns with ! exceptions', () => {
    const r = root();
    const paths = walkLocal(r, { excludePatterns: ['node_modules', 'docs', '!docs/README.md', '**/*.txt'] }).map((e) => e.path);
    expect(paths).toEqual(['Dockerfile', 'docs', 'docs/README.md', 'src', 'src/a.go', 'src/vendor', 'src/vendor/v.go']);
  });

  test('include patterns keep only matches plus their parent directories', () => {
    const r = root();
    expect(walkLocal(r, { includePatterns: ['src/*.go'] }).map((e) => e.path)).toEqual(['src', 'src/a.go']);
    expect(walkLocal(r, { includePatterns: ['src'] }).map((e) => e.path)).toEqual(['src', 'src/a.go', 'src/b.txt', 'src/vendor', 'src/vendor/v.go']);
  });

  test('follow paths include symlink targets', () => {
    const r = root();
    symlinkSync('docs/README.md', join(r, 'link.md'));
    expect(walkLocal(r, { followPaths: ['link.md'] }).map((e) => e.path)).toEqual(['docs', 'docs/README.md', 'link.md']);
  });
});

describe('syncLocalSource', () => {
  test('cold sync copies everything; an unchanged sync reads nothing; one change rehashes one file', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'a.txt': 'hello', 'dir/b.txt': 'bee', 'dir/sub/c.bin': 'x'.repeat(1000), '.dockerignore': '' });
    chmodSync(join(src, 'a.txt'), 0o600);
    symlinkSync('a.txt', join(src, 'ln'));
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };

    const r1 = await syncLocalSource(opts);
    expect(r1.stats).toMatchObject({ entries: 7, hashed: 4, unchanged: 0, removed: 0 });
    expect(readFileSync(join(opts.dest, 'dir/sub/c.bin'), 'utf8')).toBe('x'.repeat(1000));
    expect(lstatSync(join(opts.dest, 'a.txt')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(opts.dest, 'ln'))).toBe('a.txt');
    expect(Math.abs(lstatSync(join(opts.dest, 'dir/b.txt')).mtimeMs - lstatSync(join(src, 'dir/b.txt')).mtimeMs)).toBeLessThan(0.01);

    const r2 = await syncLocalSource(opts);
    expect(r2.stats).toMatchObject({ hashed: 0, copied: 0, unchanged: 7 });
    expect(r2.rootDigest).toBe(r1.rootDigest);
    expect(await r2.tree.checksum('dir')).toBe(await r1.tree.checksum('dir'));

    writeFileSync(join(src, 'dir/b.txt'), 'changed');
    utimesSync(join(src, 'dir/b.txt'), new Date(2030, 1, 1), new Date(2030, 1, 1));
    const r3 = await syncLocalSource(opts);
    expect(r3.stats).toMatchObject({ hashed: 1, copied: 1 });
    expect(r3.rootDigest).not.toBe(r1.rootDigest);
    expect(await r3.tree.checksum('a.txt')).toBe(await r1.tree.checksum('a.txt'));
    expect(await r3.tree.checksum('dir/b.txt')).not.toBe(await r1.tree.checksum('dir/b.txt'));
    expect(readFileSync(join(opts.dest, 'dir/b.txt'), 'utf8')).toBe('changed');
    // Reused directory digests equal a from-scratch sync of the same tree.
    const fresh = async (tag: string): Promise<string> =>
      (await syncLocalSource({ src, dest: join(work, `fresh-${tag}`), statePath: join(work, `fresh-${tag}.json`) })).rootDigest;
    expect(r3.rootDigest).toBe(await fresh('r3'));

    rmSync(join(src, 'dir/sub'), { recursive: true });
    const r4 = await syncLocalSource(opts);
    expect(r4.stats.removed).toBe(2);
    expect(r4.rootDigest).toBe(await fresh('r4'));
    expect(existsSync(join(opts.dest, 'dir/sub'))).toBe(false);
  });

  test('the mirror honours exclude patterns and a file turning into a directory', async () => {
    const src = tmp();
    const work = tmp();
    files(src, { 'keep.txt': 'k', 'skip.log': 's', 'x': 'file' });
    const opts = { src, dest: join(work, 'm'), statePath: join(work, 's.json'), filter: { excludePatterns: ['*.log'] } };
    await syncLocalSource(opts);
    expect(existsSync(join(opts.dest, 'skip.log'))).toBe(false);
    rmSync(join(src, 'x'));
    files(src, { 'x/inner': 'i' });
    const r = await syncLocalSource(opts);
    expect(readFileSync(join(opts.dest, 'x/inner'), 'utf8')).toBe('i');
    expect(r.stats.entries).toBe(3);
  });
});
