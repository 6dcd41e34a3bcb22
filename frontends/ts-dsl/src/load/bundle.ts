/**
 * Bundling a build file: esbuild turns the entry file and its relative imports into one ESM
 * file (types stripped, not checked), with `kiln` and `kiln/ts` mapped to the DSL and the
 * evaluator as the entry point. Build files are read through a {@link SourceReader} (the
 * gateway's solved input, or the disk for `kiln llb`), never from the host directly. Node
 * built-ins and npm packages are rejected: a build is a pure function of its inputs.
 */
import { builtinModules } from 'node:module';
import { posix, resolve } from 'node:path';
import type { Message, Plugin, PluginBuild } from 'esbuild';
import { suggest } from '@kiln/llb-core';
import * as dslApi from '../dsl/index.js';
import { TsDslError } from '../errors.js';
import { packageModule, requirePackage } from './package-files.js';

/** Reads build files by path relative to the entry file's directory; undefined when missing. */
export interface SourceReader {
  read(path: string): Promise<Uint8Array | undefined>;
}

/** A bundled build: one ESM file with an inline source map. */
export interface Bundle {
  readonly code: string;
  /** The entry file's name as the user wrote it (shown in locations). */
  readonly entry: string;
  /** The build files bundled (entry and imports), by path: the op source maps quote them. */
  readonly sources: Readonly<Record<string, string>>;
  /**
   * The modules the bundle itself imports (Node built-ins of the DSL and the evaluator): the
   * evaluator's import policy allows these and nothing else, so build code cannot `import()` a
   * Node module at run time.
   */
  readonly imports: readonly string[];
}

/** Namespace of the user's files: paths are relative to the entry file's directory. */
export const BUILD_NAMESPACE = 'kiln-build';
const INTERNAL = 'kiln-internal';
const DSL_SPECIFIERS = new Set(['kiln', 'kiln/ts']);
const BUILTINS = new Set(builtinModules);
const EXTENSIONS = ['', '.ts', '.mts', '.js', '.mjs', '/index.ts', '/index.js'];

function loaderOf(path: string): 'ts' | 'js' | 'json' {
  if (path.endsWith('.json')) return 'json';
  return path.endsWith('.js') || path.endsWith('.mjs') ? 'js' : 'ts';
}

async function resolveRelative(reader: SourceReader, importer: string, spec: string): Promise<string | undefined> {
  const joined = posix.normalize(posix.join(posix.dirname(importer), spec));
  if (joined.startsWith('../') || joined === '..') return undefined;
  // TypeScript's NodeNext style: `./lib.js` names `./lib.ts`.
  const bases = /\.m?js$/.test(joined) ? [joined, joined.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts')] : [joined];
  for (const base of bases) {
    for (const ext of base === joined ? EXTENSIONS : ['']) {
      if ((await reader.read(base + ext)) !== undefined) return base + ext;
    }
  }
  return undefined;
}

/** One read per path: resolving an import reads the file (and its extension probes), loading it reads it again. */
function cachedReader(reader: SourceReader): SourceReader {
  const reads = new Map<string, Promise<Uint8Array | undefined>>();
  return {
    read(path) {
      let r = reads.get(path);
      if (r === undefined) reads.set(path, (r = reader.read(path)));
      return r;
    },
  };
}

function buildFilePlugin(reader: SourceReader, entry: string, dsl: string, evaluator: string, prelude: string, sources: Record<string, string>): Plugin {
  return {
    name: 'kiln-build-files',
    setup(b: PluginBuild) {
      b.onResolve({ filter: /^kiln-entry$/ }, () => ({ path: 'entry', namespace: INTERNAL }));
      b.onLoad({ filter: /.*/, namespace: INTERNAL }, () => ({
        // the prelude first: it runs before any module of the build
        contents: `import ${JSON.stringify(prelude)};\nimport * as build from ${JSON.stringify(`${BUILD_NAMESPACE}:${entry}`)};\nimport { runEvaluator } from ${JSON.stringify(evaluator)};\nrunEvaluator(build, ${JSON.stringify(entry)});\n`,
        loader: 'js',
        resolveDir: posix.dirname(evaluator),
      }));
      b.onResolve({ filter: /^kiln-build:/, namespace: INTERNAL }, (a) => ({ path: a.path.slice(BUILD_NAMESPACE.length + 1), namespace: BUILD_NAMESPACE }));
      b.onResolve({ filter: /.*/, namespace: BUILD_NAMESPACE }, async (a) => {
        if (DSL_SPECIFIERS.has(a.path)) return { path: dsl };
        const bare = a.path.startsWith('node:') ? a.path.slice(5) : a.path;
        if (a.path.startsWith('node:') || BUILTINS.has(bare) || BUILTINS.has(bare.split('/')[0] ?? '')) {
          return { errors: [{ text: `Node built-in "${a.path}" is not available in a build file`, detail: 'builtin' }] };
        }
        if (a.path.startsWith('./') || a.path.startsWith('../')) {
          const p = await resolveRelative(reader, a.importer, a.path);
          if (p !== undefined) return { path: p, namespace: BUILD_NAMESPACE };
          return { errors: [{ text: `cannot find "${a.path}" next to ${a.importer} (imports must stay inside the build file's directory)`, detail: 'missing' }] };
        }
        return { errors: [{ text: `"${a.path}" cannot be imported: a build file imports only "kiln" and relative files`, detail: 'package' }] };
      });
      b.onLoad({ filter: /.*/, namespace: BUILD_NAMESPACE }, async (a) => {
        const data = await reader.read(a.path);
        if (data === undefined) return { errors: [{ text: `cannot read ${a.path}` }] };
        sources[a.path] = new TextDecoder().decode(data);
        return { contents: data, loader: loaderOf(a.path) };
      });
    },
  };
}

function toError(m: Message | undefined, entry: string, dsl: string): TsDslError {
  const loc = m?.location;
  const noExport = dslImportError(m?.text, dsl);
  if (noExport !== undefined) {
    return new TsDslError('KLN0801', noExport.message, { location: loc ? { file: loc.file.replace(`${BUILD_NAMESPACE}:`, ''), line: loc.line, column: loc.column + 1 } : { file: entry, line: 1, column: 1 }, hint: noExport.hint });
  }
  const text = m?.text ?? 'the build file does not compile';
  const detail: unknown = m?.detail;
  const forbidden = detail === 'builtin' || detail === 'package';
  const missing = detail === 'missing';
  return new TsDslError(forbidden || missing ? 'KLN0802' : 'KLN0801', text, {
    ...(loc ? { location: { file: loc.file.replace(`${BUILD_NAMESPACE}:`, ''), line: loc.line, column: loc.column + 1 } } : { location: { file: entry, line: 1, column: 1 } }),
    ...(forbidden ? { hint: 'builds see only their inputs: read files with ctx.solve(state).readFile(path)' } : {}),
    ...(missing ? { hint: 'a relative import names a .ts/.js file next to the build file or below it ("./lib.js" finds lib.ts)' } : {}),
  });
}

/**
 * esbuild's `No matching export in "<path of the DSL in kiln's install>" for import "imgae"`,
 * said as the build file sees it: "kiln" has no export "imgae", and the closest one it has.
 */
function dslImportError(text: string | undefined, dsl: string): { message: string; hint: string } | undefined {
  const m = /^No matching export in "([^"]+)" for import "([^"]+)"$/.exec(text ?? '');
  if (m === null || resolve(m[1] ?? '') !== dsl) return undefined;
  const name = m[2] ?? '';
  const near = suggest(name, Object.keys(dslApi));
  return {
    message: `"kiln" has no export "${name}"${near === undefined ? '' : ` (did you mean ${near}?)`}`,
    hint: near === undefined ? 'docs/ts-dsl.md lists what "kiln" exports' : `import { ${near} } from "kiln"`,
  };
}

type Esbuild = typeof import('esbuild');

// not inlined in the CLI's one-file bundle: esbuild's JS API starts the native binary next to its own package
let esbuild: Esbuild | undefined;
const loadEsbuild = (): Esbuild => (esbuild ??= requirePackage<Esbuild>('esbuild'));

/** Bundles `entry` (a path relative to the reader's root) with the DSL and the evaluator. */
export async function bundleBuildFile(entry: string, reader: SourceReader): Promise<Bundle> {
  const { build } = loadEsbuild();
  const dsl = packageModule('dsl/index');
  const evaluator = packageModule('eval/child');
  const prelude = packageModule('eval/prelude');
  const sources: Record<string, string> = {};
  try {
    const out = await build({
      entryPoints: ['kiln-entry'],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      sourcesContent: false,
      logLevel: 'silent',
      outfile: 'build.mjs',
      metafile: true,
      plugins: [buildFilePlugin(cachedReader(reader), posix.normalize(entry), dsl, evaluator, prelude, sources)],
    });
    const file = out.outputFiles[0];
    if (file === undefined) throw new TsDslError('KLN0801', 'esbuild produced no output', { location: { file: entry, line: 1, column: 1 } });
    const imports = new Set(Object.values(out.metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)));
    return { code: file.text, entry, sources, imports: [...imports].sort() };
  } catch (e) {
    if (e instanceof TsDslError) throw e;
    const errors = (e as { errors?: Message[] }).errors;
    if (Array.isArray(errors)) throw toError(errors[0], entry, dsl);
    throw new TsDslError('KLN0801', `cannot bundle ${entry}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
