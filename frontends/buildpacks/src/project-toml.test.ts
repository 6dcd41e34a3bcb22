import { describe, expect, test } from 'vitest';
import { gitignoreToPatterns, readProjectToml } from './project-toml.js';

describe('project.toml', () => {
  test('schema 0.1: [build], [[build.buildpacks]], [[build.env]]', () => {
    const p = readProjectToml('# syntax=kiln/buildpacks\n[project]\nid = "x"\n[build]\nexclude = ["*.md"]\n[[build.buildpacks]]\nid = "kt/a"\nversion = "1"\n[[build.buildpacks]]\nuri = "./bp"\n[[build.env]]\nname = "K"\nvalue = "v"\n');
    expect(p).toMatchObject({ schemaVersion: '0.1', exclude: ['*.md'], include: [], group: [{ id: 'kt/a', version: '1' }, { uri: './bp' }], env: [['K', 'v']], project: { id: 'x' } });
  });
  test('schema 0.2/0.3: [io.buildpacks] group, pre/post, env, builder, inline script', () => {
    const text = (v: string) =>
      `[_]\nschema-version = "${v}"\nid = "app"\n[io.buildpacks]\nbuilder = "kt/builder"\ninclude = ["src/"]\n[[io.buildpacks.pre.group]]\nid = "kt/pre"\n[[io.buildpacks.group]]\nid = "kt/inline"\n[io.buildpacks.group.script]\napi = "0.10"\ninline = "echo hi"\n[[io.buildpacks.post.group]]\nid = "kt/post"\n[[io.buildpacks.build.env]]\nname = "A"\nvalue = "1"\n`;
    for (const v of ['0.2', '0.3'] as const) {
      expect(readProjectToml(text(v))).toMatchObject({
        schemaVersion: v,
        builder: 'kt/builder',
        include: ['src/'],
        pre: [{ id: 'kt/pre' }],
        group: [{ id: 'kt/inline', script: { api: '0.10', inline: 'echo hi', shell: '/bin/sh' } }],
        post: [{ id: 'kt/post' }],
        env: [['A', '1']],
        project: { id: 'app' },
      });
    }
  });
  // `buildr = "kt/builder"` was dropped without a word; the build then failed with "no builder".
  test('keys of [io.buildpacks] / [build] kiln does not read are listed, near misses named', () => {
    expect(readProjectToml('[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuildr = "kt/builder"\nexlude = ["*.md"]\nextra = 1\n[com.example]\nmine = true\n').ignoredKeys).toEqual([
      'io.buildpacks.buildr (did you mean builder?)',
      'io.buildpacks.exlude (did you mean exclude?)',
      'io.buildpacks.extra',
    ]);
    expect(readProjectToml('[build]\nbuildpack = []\nbuilder = "b"\n').ignoredKeys).toEqual(['build.buildpack (did you mean buildpacks?)']);
    expect(readProjectToml('[_]\nschema-version = "0.3"\n[io.buildpacks]\nbuilder = "b"\n[[io.buildpacks.group]]\nid = "x"\n').ignoredKeys).toEqual([]);
  });

  test('errors: unknown schema, include with exclude, bad TOML located', () => {
    expect(() => readProjectToml('[_]\nschema-version = "0.9"\n')).toThrow(expect.objectContaining({ code: 'KLN0901', message: expect.stringContaining('"0.9" is not supported') }));
    expect(() => readProjectToml('[build]\ninclude = ["a"]\nexclude = ["b"]\n')).toThrow(/include and exclude cannot both be set/);
    expect(() => readProjectToml('# syntax=kiln/buildpacks\n[[build.buildpacks]]\nid = \n')).toThrow(expect.objectContaining({ code: 'KLN0901', location: expect.objectContaining({ file: 'project.toml', line: 3 }) }));
    expect(() => readProjectToml('[[build.buildpacks]]\nversion = "1"\n')).toThrow(/build.buildpacks\[0\].id or uri is required/);
  });
  test('typo tour 4: a value of the wrong type is located at its key (was the file name alone); an unclosed string is named', () => {
    const text = '# syntax=kiln/buildpacks\n[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuilder = "b"\n[[io.buildpacks.build.env]]\nname = "A"\nvalue = "1"\n[[io.buildpacks.build.env]]\nname = "B"\nvalue = 2\n';
    expect(() => readProjectToml(text)).toThrow(expect.objectContaining({ code: 'KLN0901', message: 'project.toml:11:1: io.buildpacks.build.env[1].value must be a string, not number 2', location: { file: 'project.toml', line: 11, column: 1 } }));
    expect(() => readProjectToml('[_]\nschema-version = "0.2"\n\n[io.buildpacks]\n  builder = ["b"]\n')).toThrow(expect.objectContaining({ message: 'project.toml:5:3: io.buildpacks.builder must be a string, not an array' }));
    // a required key left out: its table's header
    expect(() => readProjectToml('[[build.buildpacks]]\nversion = "1"\n')).toThrow(expect.objectContaining({ location: { file: 'project.toml', line: 1, column: 1 } }));
    expect(() => readProjectToml('[_]\nid = "site\n')).toThrow(expect.objectContaining({ code: 'KLN0901', message: 'project.toml:2:11: invalid TOML: the string is not closed before the end of the line' }));
  });

  test('typo tour 4: top-level tables the schema lacks are ignored keys (a 0.1 [[build.env]] in a 0.2 file set no env, silently)', () => {
    const text = '[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuilder = "b"\n[[build.env]]\nname = "A"\nvalue = "1"\n[io.other-tool]\nx = 1\n';
    const p = readProjectToml(text);
    expect(p.env).toEqual([]);
    expect(p.ignoredKeys).toEqual(['build (the schema 0.1 layout: in 0.2, [build] keys go under [io.buildpacks], e.g. [[io.buildpacks.build.env]])']);
    expect(readProjectToml('[build]\nbuilder = "b"\n[io.buildpacks]\nbuilder = "c"\n').ignoredKeys).toEqual(['io (a schema 0.2 table: declare [_] schema-version = "0.2")']);
    // [_] that declares schema-version = "0.1" is that declaration, not a 0.2 table (pack says nothing)
    expect(readProjectToml('[_]\nschema-version = "0.1"\n[build]\nbuilder = "b"\n').ignoredKeys).toEqual([]);
    expect(readProjectToml('[_]\nid = "x"\n[build]\nbuilder = "b"\n').ignoredKeys).toEqual(['_ (a schema 0.2 table: declare [_] schema-version = "0.2")']);
  });

  test('gitignore patterns become local-source patterns', () => {
    expect(gitignoreToPatterns(['*.go', '/vendor', 'docs/', '!keep.md', '# c', ''])).toEqual(['**/*.go', 'vendor', '**/docs', '!**/keep.md']);
  });
  // pack matches with sabhiram/go-gitignore: a slash inside a pattern does not anchor it (only a
  // leading one, or the `dir/*.ext` form), and `?` is a literal character
  test('patterns match as pack matches them (go-gitignore)', () => {
    expect(gitignoreToPatterns(['a/b.txt', 'docs/build/', 'src/*.go', 'x/**/*.md', 'what?.txt'])).toEqual(['**/a/b.txt', '**/docs/build', 'src/*.go', 'x/**/*.md', '**/what\\?.txt']);
  });
});
