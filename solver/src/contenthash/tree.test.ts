import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { walkLocal, toLocalStat } from '../local/walk.js';
import { ContentHashTree } from './tree.js';
import { headerDigest } from './tarsum.js';

// Expected digests come from moby/buildkit cache/contenthash/checksum_test.go (v0.11 era):
// the files are built the way its createRef/changeStream helpers build them.
const dgstFileData0 = 'sha256:cd8e75bca50f2d695f220d0cb0997d8ead387e4f926e8669a92d7f104cc9885b';
const dgstFileData1 = 'sha256:c2b5e234f5f38fc5864da7def04782f82501a40d46192e4207d5b3f0c3c4732b';
const dgstDirD0 = 'sha256:d47454417d2c554067fbefe5f5719edc49f3cfe969c36b62e34a187a4da0cc9a';
const dgstDirD0FileByFile = 'sha256:231c3293e329de47fec9e79056686477891fd1f244ed7b1c1fa668489a1f0d50';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Builds a tree like BuildKit's changeStream: "path file data", "path dir", "path symlink target". */
function make(changes: readonly string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'kiln-ch-'));
  dirs.push(root);
  for (const c of changes) {
    const [p = '', kind, arg] = c.split(' ');
    const fp = join(root, p);
    if (kind === 'dir') {
      mkdirSync(fp);
      chmodSync(fp, 0o755);
    } else if (kind === 'symlink') {
      symlinkSync(arg ?? '', fp);
    } else {
      writeFileSync(fp, arg ?? '');
      chmodSync(fp, 0o644);
    }
  }
  return root;
}

function tree(root: string): ContentHashTree {
  return ContentHashTree.fromEntries(walkLocal(root), { root, rootHeaderDigest: headerDigest(toLocalStat(lstatSync(root), root)) });
}

describe('ContentHashTree (BuildKit checksum_test vectors)', () => {
  test('file records: tarsum header + content', async () => {
    const t = tree(make(['foo file data0', 'bar file data1']));
    expect(await t.checksum('foo')).toBe(dgstFileData0);
    expect(await t.checksum('/bar')).toBe(dgstFileData1);
  });

  test('directory digest (d0 with a file, a symlink and a dangling symlink)', async () => {
    const t = tree(make(['d0 dir', 'd0/abc file data0', 'd0/def symlink abc', 'd0/ghi symlink nosuchfile']));
    expect(await t.checksum('d0')).toBe(dgstDirD0);
    expect(await t.checksum('d0/def', { followLinks: true })).toBe(dgstFileData0);
    expect(await t.checksum('d0/def')).not.toBe(dgstFileData0);
  });

  test('TestChecksumUpdateDirectory vectors', async () => {
    const root = make(['d0 dir', 'd0/foo dir', 'd0/foo/bar file data0', 'd0/foo/subdir1 dir', 'd0/foo/subdir1/baz file data1', 'd0/foo/subdir2 dir']);
    expect(await tree(root).checksum('d0/foo')).toBe('sha256:e76717544f71725bd759a981554ca17c286b3d222598f46a671b983fd2b8172d');
    chmodSync(join(root, 'd0/foo'), 0o700);
    expect(await tree(root).checksum('d0/foo')).toBe('sha256:3a729f6ba0d3d74c6ade7d118b08b46e37e447afdad7fc6e258dbba12fa80141');
    rmSync(join(root, 'd0/foo'), { recursive: true });
    writeFileSync(join(root, 'd0/foo'), 'data2');
    chmodSync(join(root, 'd0/foo'), 0o644);
    const t = tree(root);
    expect(await t.checksum('d0/foo')).toBe('sha256:1c67653c3cf95b12a0014e2c4cd1d776b474b3218aee54155d6ae27b9b999c54');
    await expect(t.checksum('d0/foo/bar')).rejects.toMatchObject({ code: 'SOLVER_NOT_FOUND' });
  });

  test('wildcards (TestChecksumWildcardOrFilter)', async () => {
    const t = tree(
      make([
        'bar file data1', 'foo file data0', 'fox file data2', 'x dir', 'x/d0 dir', 'x/d0/abc file data0',
        'x/d0/def symlink abc', 'x/d0/ghi symlink nosuchfile', 'y1 symlink foo', 'y2 symlink fox',
      ]),
    );
    const fooOnly = `sha256:${createHash('sha256').update(`foo${dgstFileData0}`).digest('hex')}`;
    expect(await t.checksum('f*o', { wildcard: true })).toBe(fooOnly);
    expect(await t.checksum('f*', { wildcard: true })).toBe('sha256:7f51c821895cfc116d3f64231dfb438e87a237ecbbe027cd96b7ee5e763cc569');
    expect(await t.checksum('x/d?', { wildcard: true })).toBe(dgstDirD0FileByFile);
    expect(await t.checksum('x/d?/def', { wildcard: true, followLinks: true })).toBe(dgstFileData0);
    expect(await t.checksum('y*', { wildcard: true, followLinks: true })).toBe('sha256:8afc09c7018d65d5eb318a9ef55cb704dec1f06d288181d913fc27a571aa042d');
  });

  test('symlinked path components resolve inside the tree (TestChecksumNonLexicalSymlinks)', async () => {
    const t = tree(
      make([
        'target dir', 'target/file file data0', 'link1 dir', 'link1/target_file symlink ../target/file',
        'link1/target_file_abs symlink /target/file', 'link1/target_dir symlink ../target', 'link1/target_dir_abs symlink /target',
        'link2 dir', 'link2/link1_rel symlink ../link1', 'link2/link1_abs symlink /link1', 'link3 dir',
        'link3/target symlink ../link2/link1_rel/target_dir', 'link3/target_file symlink ../link2/link1_rel/target_file',
      ]),
    );
    for (const p of ['target/file', 'link1/target_file', 'link1/target_dir/file', 'link2/link1_rel/target_file_abs', 'link2/link1_abs/target_dir_abs/file', 'link3/target_file', 'link3/target/file']) {
      expect(await t.checksum(p, { followLinks: true }), p).toBe(dgstFileData0);
    }
    const l1 = await t.checksum('link1/target_file');
    expect(l1).not.toBe(dgstFileData0);
    expect(await t.checksum('link2/link1_abs/target_file')).toBe(l1);
  });

  test('include/exclude patterns select files by name under a directory', async () => {
    const t = tree(make(['src dir', 'src/a.go file data0', 'src/b.txt file data1', 'src/c.go file data0']));
    const all = await t.checksum('src', { includePatterns: ['*.go'] });
    const excl = await t.checksum('src', { excludePatterns: ['*.txt'] });
    expect(all).toBe(excl);
    expect(all).not.toBe(await t.checksum('src'));
    expect(await t.checksum('src', { includePatterns: ['*.none'] })).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});
