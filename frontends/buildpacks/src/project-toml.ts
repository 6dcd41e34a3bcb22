/**
 * project.toml (the project descriptor), schemas 0.1, 0.2 and 0.3 as pack reads them:
 * 0.1 keeps everything under `[build]`; 0.2 and 0.3 (`[_] schema-version`) under `[io.buildpacks]`.
 */
import { suggest } from '@kiln/llb-core';
import { BuildpacksError } from './errors.js';
import { Fields } from './toml.js';

/** A buildpack the project asks for: from the builder (`id[@version]`), a `uri`, or an inline script. */
export interface ProjectBuildpack {
  readonly id?: string;
  readonly version?: string;
  readonly uri?: string;
  readonly script?: { readonly api: string; readonly inline: string; readonly shell: string };
}

/** What kiln uses of a project.toml. */
export interface ProjectDescriptor {
  readonly schemaVersion: '0.1' | '0.2' | '0.3';
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly group: readonly ProjectBuildpack[];
  readonly pre: readonly ProjectBuildpack[];
  readonly post: readonly ProjectBuildpack[];
  /** Build-time environment (`[[io.buildpacks.build.env]]`, 0.1 `[[build.env]]`), in order. */
  readonly env: readonly (readonly [string, string])[];
  readonly builder?: string;
  /** `[_]` (0.2+) or `[project]` (0.1): id, name, version… as written. */
  readonly project: Readonly<Record<string, unknown>>;
  /**
   * Keys of `[io.buildpacks]` (0.1: `[build]`) that kiln does not read, a near miss of one it reads
   * named (`io.buildpacks.buildr (did you mean builder?)`): a typo there is otherwise silent.
   */
  readonly ignoredKeys: readonly string[];
}

/** The keys read from `[io.buildpacks]` (0.2, 0.3) and `[build]` (0.1). */
const SECTION_KEYS = { '0.1': ['builder', 'include', 'exclude', 'buildpacks', 'env'], later: ['builder', 'include', 'exclude', 'group', 'pre', 'post', 'build'] } as const;

function readBuildpacks(list: readonly Fields[]): ProjectBuildpack[] {
  return list.map((b) => {
    const id = b.string('id');
    const version = b.string('version');
    const uri = b.string('uri');
    const s = b.subtable('script');
    if (id === undefined && uri === undefined) b.fail('id', 'or uri is required');
    const script = s === undefined ? undefined : { api: s.requiredString('api'), inline: s.requiredString('inline'), shell: s.string('shell') ?? '/bin/sh' };
    if (script !== undefined && id === undefined) b.fail('id', 'is required with an inline script');
    return {
      ...(id === undefined ? {} : { id }),
      ...(version === undefined || version === '' ? {} : { version }),
      ...(uri === undefined ? {} : { uri }),
      ...(script === undefined ? {} : { script }),
    };
  });
}

function readEnv(list: readonly Fields[]): [string, string][] {
  return list.map((e) => [e.requiredString('name'), e.string('value') ?? '']);
}

/** Parses a project.toml; invalid TOML and wrong shapes fail with KLN0901 naming the file. */
export function readProjectToml(text: string, file = 'project.toml'): ProjectDescriptor {
  const root = Fields.parse(file, text);
  const meta = root.subtable('_');
  const declared = meta?.string('schema-version');
  const schemaVersion = declared ?? '0.1';
  if (schemaVersion !== '0.1' && schemaVersion !== '0.2' && schemaVersion !== '0.3') {
    meta?.fail('schema-version', `${JSON.stringify(schemaVersion)} is not supported (0.1, 0.2 or 0.3)`);
    throw new BuildpacksError('KLN0901', `${file}: unsupported schema version`);
  }
  let section: Fields;
  let env: [string, string][];
  let pre: ProjectBuildpack[] = [];
  let post: ProjectBuildpack[] = [];
  let group: ProjectBuildpack[];
  let builder: string | undefined;
  if (schemaVersion === '0.1') {
    section = root.subtable('build') ?? new Fields(file, {}, 'build');
    group = readBuildpacks(section.tables('buildpacks'));
    env = readEnv(section.tables('env'));
    builder = section.string('builder');
  } else {
    section = root.subtable('io')?.subtable('buildpacks') ?? new Fields(file, {}, 'io.buildpacks');
    group = readBuildpacks(section.tables('group'));
    pre = readBuildpacks(section.subtable('pre')?.tables('group') ?? []);
    post = readBuildpacks(section.subtable('post')?.tables('group') ?? []);
    env = readEnv(section.subtable('build')?.tables('env') ?? []);
    builder = section.string('builder');
  }
  const include = section.strings('include') ?? [];
  const exclude = section.strings('exclude') ?? [];
  if (include.length > 0 && exclude.length > 0) section.fail('include', 'and exclude cannot both be set');
  const project = schemaVersion === '0.1' ? root.subtable('project')?.table : meta?.table;
  const known: readonly string[] = schemaVersion === '0.1' ? SECTION_KEYS['0.1'] : SECTION_KEYS.later;
  const ignoredKeys = Object.keys(section.table)
    .filter((k) => !known.includes(k))
    .map((k) => {
      const near = suggest(k, known);
      return `${section.path}.${k}${near === undefined ? '' : ` (did you mean ${near}?)`}`;
    });
  // A table of the other schema's layout, as pack warns about keys its schema leaves undecoded:
  // a 0.1-style [[build.env]] in a 0.2 file set no env, silently. (Other top-level tables are
  // other tools' reverse-DNS namespaces, [com.example], and theirs to read; a [_] that declares
  // schema-version = "0.1" is that declaration.)
  const otherLayout: Readonly<Record<string, string>> =
    schemaVersion === '0.1'
      ? { ...(declared === undefined ? { _: 'a schema 0.2 table: declare [_] schema-version = "0.2"' } : {}), ...(isTableOf(root.table['io'], 'buildpacks') ? { io: 'a schema 0.2 table: declare [_] schema-version = "0.2"' } : {}) }
      : { build: `the schema 0.1 layout: in ${schemaVersion}, [build] keys go under [io.buildpacks], e.g. [[io.buildpacks.build.env]]`, project: `the schema 0.1 layout: in ${schemaVersion}, [project] is [_]`, metadata: `the schema 0.1 layout: in ${schemaVersion}, [metadata] is [_.metadata]` };
  for (const k of Object.keys(root.table)) {
    const why = otherLayout[k];
    if (why !== undefined) ignoredKeys.push(`${k} (${why})`);
  }
  return { schemaVersion, include, exclude, group, pre, post, env, ...(builder === undefined ? {} : { builder }), project: project ?? {}, ignoredKeys };
}

const isTableOf = (v: unknown, key: string): boolean => typeof v === 'object' && v !== null && key in v;

/**
 * Translates gitignore-style patterns (project.toml include/exclude) into kiln's local-source
 * patterns (moby patternmatcher), matching what pack's go-gitignore matcher selects: a pattern
 * matches at any depth (`*.go` → `**\/*.go`, `a/b` → `**\/a/b`) unless a leading `/` anchors
 * it to the app root (or it has go-gitignore's `dir/*.ext` form); a trailing `/` is dropped (a
 * directory matches with its contents); `?` is literal.
 */
export function gitignoreToPatterns(patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of patterns) {
    let p = raw.trim();
    if (p === '' || p.startsWith('#')) continue;
    const negate = p.startsWith('!');
    if (negate) p = p.slice(1);
    if (p.endsWith('/')) p = p.slice(0, -1);
    // go-gitignore (pack's matcher) anchors a pattern with a leading `/`, or of the form
    // `dir/…*.ext`; any other pattern matches at any depth, a slash inside it or not
    const anchored = p.startsWith('/') || /([^/+])\/.*\*\./.test(p);
    // go-gitignore escapes `?`: a literal character, not a wildcard
    p = p.replace(/^\/+/, '').replace(/\?/g, '\\?');
    const pattern = anchored ? p : `**/${p}`;
    out.push(negate ? `!${pattern}` : pattern);
  }
  return out;
}
