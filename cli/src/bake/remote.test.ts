import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseOverrides, printResolved, resolveTargets } from './config.js';
import { targetBuild } from './flags.js';
import { listBake, parseList } from './list.js';
import { loadConfig } from './load.js';
import { bakeArgs, isSshGitUrl, printView, remotePath, type RemoteDefinition } from './remote.js';

const io = (env: Record<string, string> = {}) => ({ stdin: (async function* () {})(), stdout: { write: () => true }, stderr: { write: () => true }, cwd: '/work', env });
const GIT = 'https://tok@git.example.com/org/app.git#v1:deploy';
const gitDef: RemoteDefinition = { url: GIT, kind: 'git', ssh: false, files: [] };
const tarDef: RemoteDefinition = { url: 'https://example.com/def.tar.gz', kind: 'archive', dir: '/tmp/tree', ssh: false, files: [] };

function target(r: ReturnType<typeof resolved>, name: string) {
  const rt = r.targets.get(name);
  if (rt === undefined) throw new Error(`no target ${name}`);
  return rt;
}

function resolved(text: string, names: string[]) {
  const config = loadConfig([{ name: 'docker-bake.hcl', text }], {}, {}, { cmdContext: 'git://other.example.com/ctx.git' });
  return resolveTargets(config, names, parseOverrides(config, [], {}));
}

describe('arguments', () => {
  test('buildx bakeArgs: a first URL is the definition, a second one BAKE_CMD_CONTEXT, the rest targets', () => {
    expect(bakeArgs(['app', 'web'])).toEqual({ cmdContext: 'cwd://', targets: ['app', 'web'] });
    expect(bakeArgs([GIT, 'app'])).toEqual({ url: GIT, cmdContext: 'cwd://', targets: ['app'] });
    expect(bakeArgs(['https://example.com/def.tar.gz', 'git@github.com:o/r.git', 'a'])).toEqual({ url: 'https://example.com/def.tar.gz', cmdContext: 'git@github.com:o/r.git', targets: ['a'] });
  });

  test('BAKE_CMD_CONTEXT is the command context given to the loader', () => {
    expect(resolved('target "a" {\n  context = BAKE_CMD_CONTEXT\n}\n', ['a']).targets.get('a')?.target.context).toBe('git://other.example.com/ctx.git');
  });

  test('ssh git URLs', () => {
    expect(isSshGitUrl('git@github.com:o/r.git#main')).toBe(true);
    expect(isSshGitUrl('ssh://git@host/r.git')).toBe(true);
    expect(isSshGitUrl('https://host/r.git')).toBe(false);
    expect(isSshGitUrl('git://host/r.git')).toBe(false);
  });
});

describe('--print', () => {
  test("escapes <, > and & as Go's json.MarshalIndent (buildx's --print)", () => {
    const r = resolved('target "a" {\n  args = { X = "<a> & b" }\n}\n', ['a']);
    const out = printResolved(r);
    expect(out).toContain('"X": "\\u003ca\\u003e \\u0026 b"');
    expect((JSON.parse(out) as { target: { a: { args: { X: string } } } }).target.a.args.X).toBe('<a> & b');
  });
});

describe('contexts inside a remote definition', () => {
  test('a git remote: `.` is the URL, a path is joined to #REF:DIR; an archive: the unpacked tree; `..` out is KLN0853', async () => {
    expect(await remotePath(gitDef, '.', 'context')).toBe(GIT);
    expect(await remotePath(gitDef, './svc/', 'context')).toBe('https://tok@git.example.com/org/app.git#v1:deploy/svc');
    expect(await remotePath({ ...gitDef, url: 'git://h/r.git' }, 'svc', 'context')).toBe('git://h/r.git#:svc');
    expect(await remotePath(tarDef, 'sub', 'context')).toBe('/tmp/tree/sub');
    await expect(remotePath(gitDef, 'svc/../../x', 'context')).rejects.toMatchObject({ code: 'KLN0853', message: expect.stringContaining('https://git.example.com/org/app.git#v1:deploy') });
  });

  test('github.com/ORG/REPO without a scheme (a git remote for buildx and the frontend): a relative context is a directory of it', async () => {
    const gh: RemoteDefinition = { ...gitDef, url: 'github.com/org/app#v1:deploy' };
    expect(await remotePath(gh, '.', 'context')).toBe('github.com/org/app#v1:deploy');
    expect(await remotePath(gh, 'svc', 'context')).toBe('github.com/org/app#v1:deploy/svc');
    expect(await remotePath({ ...gitDef, url: 'github.com/org/app' }, 'svc', 'context')).toBe('github.com/org/app#:svc');
  });

  test("an archive's symlinks resolve inside its tree: a link to /etc or ../.. is never the host's directory", async () => {
    const tree = await mkdtemp(join(tmpdir(), 'kiln-remote-tree-'));
    try {
      await mkdir(join(tree, 'real'));
      await symlink('/etc', join(tree, 'abs'));
      await symlink('../../..', join(tree, 'up'));
      await symlink('real', join(tree, 'rel'));
      const def: RemoteDefinition = { ...tarDef, dir: tree };
      expect(await remotePath(def, 'abs', 'context')).toBe(join(tree, 'etc'));
      expect(await remotePath(def, 'up/x', 'context')).toBe(join(tree, 'x'));
      expect(await remotePath(def, 'rel', 'context')).toBe(join(tree, 'real'));
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  test('targetBuild: contexts, named contexts and the dockerfile follow the remote; cwd:// stays local; auth secrets and the ssh agent as buildx adds them', async () => {
    const r = resolved('target "a" {\n  contexts = { x = "lib", y = "cwd://mine" }\n}\ntarget "b" {\n  context = "svc"\n  dockerfile = "D"\n}\ntarget "c" {\n  context = "cwd://"\n}\n', ['a', 'b', 'c']);
    const env = { BUILDX_BAKE_GIT_AUTH_TOKEN: 'secret-token' };
    const a = await targetBuild(target(r, 'a'), { progress: 'quiet' }, io(env), { fileRelative: false, inlineDir: '/tmp', remote: { ...gitDef, ssh: true } });
    expect(a.context).toBe(GIT);
    expect(a.flags.buildContext).toEqual(['x=https://tok@git.example.com/org/app.git#v1:deploy/lib', 'y=/work/mine']);
    expect(a.flags.secret).toEqual(['id=GIT_AUTH_TOKEN,env=BUILDX_BAKE_GIT_AUTH_TOKEN']);
    expect(a.flags.ssh).toEqual(['default']);
    const b = await targetBuild(target(r, 'b'), { progress: 'quiet' }, io(), { fileRelative: false, inlineDir: '/tmp', remote: tarDef });
    expect(b.context).toBe('/tmp/tree/svc');
    expect(b.flags.file).toBe('/tmp/tree/svc/D');
    expect(b.flags.secret).toEqual([]);
    expect(b.flags.ssh).toEqual([]);
    const c = await targetBuild(target(r, 'c'), { progress: 'quiet' }, io(), { fileRelative: false, inlineDir: '/tmp', remote: gitDef });
    expect(c.context).toBe('/work');
    // a downloaded bake file that is no archive leaves the contexts local
    const local = await targetBuild(target(r, 'b'), { progress: 'quiet' }, io(), { fileRelative: false, inlineDir: '/tmp', remote: { url: 'https://e/x.hcl', kind: 'file', ssh: false, files: [] } });
    expect(local.context).toBe('/work/svc');
  });

  test('--print shows `.` as the URL without its credentials', () => {
    const p = printView(resolved('target "a" {\n  contexts = { x = "./", y = "lib" }\n}\n', ['a']), gitDef);
    expect(p.targets.get('a')?.target).toMatchObject({ context: 'https://git.example.com/org/app.git#v1:deploy', contexts: { x: 'https://git.example.com/org/app.git#v1:deploy', y: 'lib' } });
  });
});

describe('--list', () => {
  test('buildx parseList: a bare type, or type= and format= fields', () => {
    expect(parseList('targets')).toEqual({ type: 'targets', format: 'table' });
    expect(parseList('type=variables,format=json')).toEqual({ type: 'variables', format: 'json' });
    expect(() => parseList('type=targets,format=yaml')).toThrow(expect.objectContaining({ code: 'KLN0854' }));
    expect(() => parseList('type=targets,fmt=json')).toThrow(expect.objectContaining({ code: 'KLN0854' }));
    expect(() => parseList('things')).toThrow(expect.objectContaining({ code: 'KLN0854' }));
  });

  test('format=json: buildx\'s entries, Go\'s escaping, null for no targets and [] for no variables', () => {
    const config = loadConfig([{ name: 'docker-bake.hcl', text: 'variable "L" { default = ["a"] }\nvariable "E" { default = null }\ngroup "g" { targets = ["b", "a"] }\ntarget "a" { description = "x & y" }\ntarget "b" {}\ntarget "_p" {}\n' }], {});
    expect(JSON.parse(listBake(config, 'type=targets,format=json'))).toEqual([{ name: 'a', description: 'x & y' }, { name: 'b' }, { name: 'g', description: 'a, b', group: true }]);
    expect(listBake(config, 'type=targets,format=json')).toContain('"x \\u0026 y"');
    expect(JSON.parse(listBake(config, 'type=variables,format=json'))).toEqual([{ name: 'E' }, { name: 'L', value: '["a"]' }]);
    const empty = loadConfig([{ name: 'docker-bake.hcl', text: '' }], {});
    expect(listBake(empty, 'type=targets,format=json')).toBe('null\n');
    // the table as buildx's printTargetList: no _ names, members after a group's description, Go tabwriter columns
    const t = loadConfig([{ name: 'docker-bake.hcl', text: 'group "all" {\n  description = "every one"\n  targets = ["b", "a-long-target"]\n}\ntarget "_base" {}\ntarget "a-long-target" {\n  description = "x"\n}\ntarget "b" {}\n' }], {});
    expect(listBake(t, 'targets')).toBe('TARGET\t\tDESCRIPTION\na-long-target\tx\nall\t\tevery one (a-long-target, b)\nb\t\t\n');
    expect(listBake(empty, 'type=variables,format=json')).toBe('[]\n');
  });
});
