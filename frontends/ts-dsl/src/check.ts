/**
 * Type-checking a build file (`kiln check`): the TypeScript compiler (5.x, pinned by this
 * package; npm's `typescript@7` is the native port with another API) checks the entry file and
 * its relative imports under strict settings, with `kiln` and `kiln/ts` mapped to the DSL's
 * declarations, as `tsc --noEmit` would with such a tsconfig. Bundling strips types without
 * checking them; this is where they are checked.
 */
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import type * as TS from 'typescript';
import { TsDslError } from './errors.js';
import { packageSrcRoot, requirePackage } from './load/package-files.js';
import { targetsExportAt } from './eval/targets.js';

/** One compiler diagnostic in a build file (1-based line and column). */
export interface CheckDiagnostic {
  /** The file's absolute path. */
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly category: 'error' | 'warning';
  /** TypeScript's code (`2322` prints as `TS2322`). */
  readonly code: number;
  /** The message, nested chains flattened onto indented lines. */
  readonly message: string;
}

/** The globals a build file has besides ES2022: the evaluator's console and timers, no Node or DOM. */
const GLOBALS = `declare var console: {
  log(...data: unknown[]): void; error(...data: unknown[]): void; warn(...data: unknown[]): void;
  info(...data: unknown[]): void; debug(...data: unknown[]): void;
};
declare function setTimeout(handler: (...args: unknown[]) => void, ms?: number): unknown;
declare function clearTimeout(id: unknown): void;
declare class TextEncoder { encode(input?: string): Uint8Array; }
declare class TextDecoder { constructor(label?: string); decode(input?: Uint8Array): string; }
`;

/**
 * Checks the build file's `targets` export (if any) against the DSL's `Targets`, so a file that
 * does not annotate it is checked as the evaluator will take it.
 */
const targetsShape = (entry: string): string => `import type { Targets } from "kiln";
import type * as build from ${JSON.stringify(entry)};
type TargetsOf<M> = M extends { readonly targets: infer T } ? T : Targets;
declare const targets: TargetsOf<typeof build>;
export const checked: Targets = targets;
`;

type Ts = typeof TS;
let typescript: Ts | undefined;
// not inlined in the CLI's one-file bundle (9 MB)
const loadTypescript = (): Ts => (typescript ??= requirePackage<Ts>('typescript'));

/** The DSL's declarations (dist `.d.ts`; the `.ts` sources when running from src under vitest). */
function dslDeclarations(): string {
  const root = packageSrcRoot();
  return root.endsWith('/src') ? join(root, 'dsl', 'index.ts') : join(root, 'dsl', 'index.d.ts');
}

/** Type-checks `file` (an absolute path) and the files it imports; returns the diagnostics in them. */
export function checkBuildFile(file: string): readonly CheckDiagnostic[] {
  if (!isAbsolute(file)) throw new TsDslError('KLN0805', `checkBuildFile needs an absolute path, not ${file}`);
  const ts = loadTypescript();
  const dsl = dslDeclarations();
  const globals = join(dirname(file), '__kiln_globals__.d.ts');
  // the `targets` export's shape, checked whether or not the file annotates it (satisfies Targets)
  const shape = join(dirname(file), '__kiln_targets__.ts');
  // A build file named otherwise (`build.kiln` with `// syntax=kiln/ts`) is checked as `<name>.ts`
  // next to it, so its relative imports resolve the same; diagnostics name the real file.
  const root = /\.[mc]?tsx?$|\.[mc]?js$/.test(file) ? file : `${file}.ts`;
  const host = ts.createCompilerHost({});
  const exists = host.fileExists.bind(host);
  const read = host.readFile.bind(host);
  const getSource = host.getSourceFile.bind(host);
  const shapeText = targetsShape(`./${basename(root)}`);
  host.fileExists = (f) => f === globals || f === shape || exists(f === root ? file : f);
  host.readFile = (f) => (f === globals ? GLOBALS : f === shape ? shapeText : read(f === root ? file : f));
  host.getSourceFile = (f, lang, onError, fresh) => {
    if (f === globals) return ts.createSourceFile(f, GLOBALS, lang);
    if (f === shape) return ts.createSourceFile(f, shapeText, lang);
    if (f !== root || root === file) return getSource(f, lang, onError, fresh);
    const text = read(file);
    return text === undefined ? undefined : ts.createSourceFile(f, text, lang);
  };
  if (!exists(file)) throw new TsDslError('KLN0805', `${file}: no such file`, { hint: 'kiln check FILE.ts (default: kiln.build.ts)' });
  const program = ts.createProgram({
    rootNames: [root, globals, shape],
    options: {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2022.d.ts'],
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      allowImportingTsExtensions: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      noFallthroughCasesInSwitch: true,
      noImplicitOverride: true,
      // esbuild compiles each file alone (isolatedModules); it drops imports used only as types,
      // so verbatimModuleSyntax would flag files that build fine
      isolatedModules: true,
      // the DSL's own declarations are checked by its build; a build file's errors are what matter
      skipLibCheck: true,
      types: [],
      paths: { kiln: [dsl], 'kiln/ts': [dsl] },
    },
    host,
  });
  const dslRoot = dirname(dirname(dsl));
  const out: CheckDiagnostic[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.category !== ts.DiagnosticCategory.Error && d.category !== ts.DiagnosticCategory.Warning) continue;
    // a diagnostic inside the DSL's sources (running from src) is not the build file's
    if (d.file !== undefined && !relative(dslRoot, d.file.fileName).startsWith('..')) continue;
    let pos = d.file !== undefined && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : { line: 0, character: 0 };
    if (d.file?.fileName === shape) {
      // a targets export that is no Targets, reported at the export; nothing else of this file is the user's
      if (d.code !== 2322) continue;
      const at = targetsExportAt(file, read(file));
      pos = { line: at.line - 1, character: at.column - 1 };
    }
    out.push({
      file: d.file === undefined || d.file.fileName === root || d.file.fileName === shape ? file : d.file.fileName,
      line: pos.line + 1,
      column: pos.character + 1,
      category: d.category === ts.DiagnosticCategory.Error ? 'error' : 'warning',
      code: d.code,
      message: nodeHint(d.code, ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    });
  }
  return out;
}

/**
 * TypeScript suggests installing @types/node for `process`, `require`, `Buffer`… (TS2580,
 * TS2591, TS2592); a build file has no Node globals at all, so say that instead.
 */
function nodeHint(code: number, message: string): string {
  if (code !== 2580 && code !== 2591 && code !== 2592) return message;
  const name = /Cannot find name '([^']+)'/.exec(message)?.[1] ?? 'it';
  return `Cannot find name '${name}': a build file runs without Node's globals and modules (it sees its inputs through ctx).`;
}

/** `file:line:col: error TSxxxx: message` (file relative to `base`), as tsc prints with `--pretty false`. */
export function formatCheckDiagnostic(d: CheckDiagnostic, base: string): string {
  return `${relative(base, d.file)}:${d.line}:${d.column}: ${d.category} TS${d.code}: ${d.message}`;
}
