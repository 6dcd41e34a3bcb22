import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseCacheExportSpecs, parseCacheImportSpecs } from '../engine/cache-spec.js';
import { entitlementsError, existingPath, fsChecksEnabled, isUnder, missingEntitlements, parseEntitlements, targetAccess, type TargetAccess } from './entitlements.js';

// buildx's bake/entitlements.go rules (its entitlements_test.go cases where they apply).

let root: string;
let wd: string;
let outside: string;
beforeAll(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'kiln-ent-')));
  wd = join(root, 'wd');
  outside = join(root, 'outside');
  await mkdir(join(wd, 'sub'), { recursive: true });
  await mkdir(join(outside, 'deep'), { recursive: true });
  await writeFile(join(outside, 'key'), 'k');
  await symlink(outside, join(wd, 'escape')); // a link in the working directory to a directory outside it
  await symlink('../outside/key', join(wd, 'key-link'));
  await symlink('sub', join(wd, 'inner')); // stays inside
});
afterAll(() => rm(root, { recursive: true, force: true }));

const none = parseEntitlements([]);
const t = (name: string, a: Partial<TargetAccess>): TargetAccess => ({ name, entitlements: [], read: [], write: [], sshAgent: false, ...a });

describe('--allow values', () => {
  test('the keys of buildx ParseEntitlements: fs= is both, image.* accepted, anything else KLN0854', () => {
    const c = parseEntitlements(['network.host', 'ssh', 'fs=/a', 'fs.read=/b', 'fs.write=*', 'image.push=r/x']);
    expect(c).toEqual({ networkHost: true, securityInsecure: false, ssh: true, fsRead: ['/a', '/b'], fsWrite: ['/a', '*'] });
    expect(() => parseEntitlements(['security.insecurez'])).toThrow(expect.objectContaining({ code: 'KLN0854', message: expect.stringContaining('"security.insecurez"') }));
    expect(() => parseEntitlements(['fs.rd=/x'])).toThrow(expect.objectContaining({ code: 'KLN0854' }));
  });

  test('BUILDX_BAKE_ENTITLEMENTS_FS and BAKE_ALLOW_REMOTE_FS_ACCESS (remote definitions only)', () => {
    expect(fsChecksEnabled({}, false)).toBe(true);
    expect(fsChecksEnabled({ BAKE_ALLOW_REMOTE_FS_ACCESS: '1' }, false)).toBe(true);
    expect(fsChecksEnabled({ BAKE_ALLOW_REMOTE_FS_ACCESS: '1' }, true)).toBe(false);
    expect(fsChecksEnabled({ BAKE_ALLOW_REMOTE_FS_ACCESS: '1', BUILDX_BAKE_ENTITLEMENTS_FS: 'true' }, true)).toBe(true);
    expect(fsChecksEnabled({ BUILDX_BAKE_ENTITLEMENTS_FS: '0' }, false)).toBe(false);
    expect(() => fsChecksEnabled({ BUILDX_BAKE_ENTITLEMENTS_FS: 'yes' }, false)).toThrow(expect.objectContaining({ code: 'KLN0854' }));
  });
});

describe('paths', () => {
  test('evaluateToExistingPath: symlinks resolved, the part that does not exist cut off', async () => {
    expect(await existingPath(join(wd, 'escape', 'deep'))).toEqual({ existing: join(outside, 'deep'), rest: '' });
    expect(await existingPath(join(wd, 'key-link'))).toEqual({ existing: join(outside, 'key'), rest: '' });
    expect(await existingPath(join(wd, 'new', 'dir'))).toEqual({ existing: wd, rest: 'new/dir' });
    expect(await existingPath(join(wd, 'inner', 'x'))).toEqual({ existing: join(wd, 'sub'), rest: 'x' });
    expect(await existingPath('/')).toEqual({ existing: '/', rest: '' });
  });

  test('isParentOrEqualPath: a prefix must end at a separator; / holds everything', () => {
    expect(isUnder('/a/b', '/a')).toBe(true);
    expect(isUnder('/a', '/a')).toBe(true);
    expect(isUnder('/ab', '/a')).toBe(false);
    expect(isUnder('/x', '/')).toBe(true);
  });

  test('the working directory is granted; outside it, reading and writing need fs.read / fs.write', async () => {
    const m = await missingEntitlements(none, [t('a', { read: [join(wd, 'sub'), join(outside, 'deep')], write: [join(wd, 'out', 'new'), join(outside, 'deep', 'o')] })], wd);
    expect(m.fsRead).toEqual([{ path: join(outside, 'deep'), targets: ['a'] }]);
    expect(m.fsWrite).toEqual([{ path: join(outside, 'deep'), targets: ['a'] }]);
    // granted: the directory, a parent of it, /, or *
    for (const g of [[`fs=${outside}`], [`fs=${root}`], ['fs=/'], ['fs=*']]) {
      const ok = await missingEntitlements(parseEntitlements(g), [t('a', { read: [join(outside, 'deep')], write: [join(outside, 'deep')] })], wd);
      expect(ok.fsRead, g.join()).toEqual([]);
      expect(ok.fsWrite, g.join()).toEqual([]);
    }
  });

  test('a symlink in the working directory that leaves it asks for its target; one that stays does not', async () => {
    const m = await missingEntitlements(none, [t('a', { read: [join(wd, 'escape'), join(wd, 'inner'), join(wd, 'key-link')] })], wd);
    expect(m.fsRead.map((p) => p.path)).toEqual([outside]);
    // the key under it is deduplicated into the directory
    expect(m.fsRead[0]?.targets).toEqual(['a']);
    // a grant through a symlink counts as its target
    expect((await missingEntitlements(parseEntitlements([`fs.read=${join(wd, 'escape')}`]), [t('a', { read: [join(outside, 'key')] })], wd)).fsRead).toEqual([]);
  });

  test('a granted path that does not exist grants only itself (buildx NonExistingAllowedPath cases)', async () => {
    const sub = parseEntitlements([`fs.write=${join(outside, 'not/exists')}`]);
    expect((await missingEntitlements(sub, [t('a', { write: [outside] })], wd)).fsWrite.map((p) => p.path)).toEqual([outside]);
    // writing not/exists creates it in outside: outside is what is asked for
    expect((await missingEntitlements(sub, [t('a', { write: [join(outside, 'not/exists')] })], wd)).fsWrite.map((p) => p.path)).toEqual([outside]);
    expect((await missingEntitlements(parseEntitlements([`fs.write=${outside}`]), [t('a', { write: [join(outside, 'not/exists')] })], wd)).fsWrite).toEqual([]);
  });
});

describe('the error', () => {
  test('KLN0858 lists each privilege with its targets and the exact --allow flags in buildx\'s order, paths relative up to one ..', async () => {
    const m = await missingEntitlements(
      none,
      [
        t('app', { entitlements: ['security.insecure', 'network.host'], read: ['/etc', join(outside, 'key')], write: ['/etc', join(outside, 'deep')] }),
        t('web', { sshAgent: true, entitlements: ['network.host'] }),
      ],
      wd,
    );
    const e = entitlementsError(m, wd, true);
    expect(e?.code).toBe('KLN0858');
    expect(e?.message).toContain('privileged containers that can change the host (target "app")');
    expect(e?.message).toContain('host network access (targets "app", "web")');
    expect(e?.message).toContain('read and write access to /etc (target "app")');
    expect(e?.hint).toContain('pass --allow=network.host --allow=security.insecure --allow=ssh --allow=fs=/etc --allow=fs.read=../outside/key --allow=fs.write=../outside/deep to grant them');
    // with the file-system checks off only the others remain
    expect(entitlementsError(m, wd, false)?.hint).toMatch(/^pass --allow=network.host --allow=security.insecure to grant them$/);
    expect(entitlementsError(await missingEntitlements(parseEntitlements(['network.host', 'security.insecure', 'ssh', 'fs=*']), [t('app', { entitlements: ['security.insecure'], read: ['/etc'], sshAgent: true })], wd), wd, true)).toBeUndefined();
  });
});

describe('what a target uses', () => {
  test('outputs, cache, secrets and ssh as buildx collects them (relative to the working directory)', () => {
    const a = targetAccess(
      'a',
      [join(wd, 'ctx')],
      {
        output: ['type=local,dest=o1', 'type=tar,dest=-', 'type=oci,dest=/x/img.tar', 'type=image,name=r/x,push=true', 'o2', 'type=docker,dest=d.tar'],
        cacheTo: ['type=local,dest=/c', 'type=registry,ref=r/c'],
        cacheFrom: ['type=local,src=cache-in', 'r/c:tag'],
        secret: ['id=s1,src=/run/s1', 'id=s2,env=S2', 'id=s3', 'id=HOME_SET'],
        ssh: ['default', 'k=/keys/id,/keys/id2'],
        allow: ['network.host'],
      },
      wd,
      { HOME_SET: 'v' },
    );
    expect(a.write).toEqual([join(wd, 'o1'), '/x/img.tar', join(wd, 'o2'), join(wd, 'd.tar'), '/c']);
    // s3 is read from the file s3 (no variable s3); HOME_SET from its variable
    expect(a.read).toEqual([join(wd, 'ctx'), join(wd, 'cache-in'), '/run/s1', join(wd, 's3'), '/keys/id', '/keys/id2']);
    expect(a.sshAgent).toBe(true);
    expect(a.entitlements).toEqual(['network.host']);
  });
  test('a cache path is the one the build reads (encoding/csv: "" in a quoted field is a quote), so a link named x" to outside asks for outside', async () => {
    await symlink(outside, join(wd, 'x"'));
    const cacheTo = 'type=local,"dest=x""/c"';
    const cacheFrom = 'type=local,"src=x""/in"';
    // what the build writes and reads
    expect(parseCacheExportSpecs(cacheTo)).toMatchObject([{ dest: 'x"/c' }]);
    expect(parseCacheImportSpecs(cacheFrom)).toMatchObject([{ src: 'x"/in' }]);
    const a = targetAccess('a', [], { output: [], cacheTo: [cacheTo], cacheFrom: [cacheFrom], secret: [], ssh: [], allow: [] }, wd, {});
    expect(a.write).toEqual([join(wd, 'x"/c')]);
    expect(a.read).toEqual([join(wd, 'x"/in')]);
    const m = await missingEntitlements(none, [a], wd);
    expect(m.fsWrite.map((p) => p.path)).toEqual([outside]);
    expect(m.fsRead.map((p) => p.path)).toEqual([outside]);
  });
});
