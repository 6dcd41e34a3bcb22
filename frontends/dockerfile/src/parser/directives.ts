/**
 * Parser directives (`# syntax=`, `# escape=`, `# check=`) and syntax detection, as BuildKit's
 * `parser/directives.go`.
 */
import { KilnError } from '../errors.js';
import type { Range } from './ast.js';

/** Keys that are parser directives (lower case). */
export const DIRECTIVE_KEYS = ['syntax', 'escape', 'check'] as const;
/** A directive key. */
export type DirectiveKey = (typeof DIRECTIVE_KEYS)[number];

/** One parsed directive. `location` is its 1-based line (column 1). */
export interface Directive {
  readonly name: DirectiveKey;
  readonly value: string;
  readonly location: Range;
}

/**
 * Stateful directive scanner: feed lines in order; it stops at the first line that is not a
 * directive. Duplicate keys are an error (KLN0102).
 */
export class DirectiveParser {
  private done = false;
  private line: number;
  private readonly seen = new Set<string>();
  private readonly re: RegExp;
  readonly parsed: Directive[] = [];

  /** @param startLine number of lines already consumed (a `#!` line); @param comment the comment prefix */
  constructor(startLine = 0, comment = '#') {
    this.line = startLine;
    const c = comment.replace(/[/#]/g, (m) => `\\${m}`);
    this.re = new RegExp(`^${c}\\s*([a-zA-Z][a-zA-Z0-9]*)\\s*=\\s*(.+?)\\s*$`);
  }

  /** Whether the scan has ended. */
  get finished(): boolean {
    return this.done;
  }

  /** Look at one line (without its newline). Returns the directive it holds, if any. */
  parseLine(text: string): Directive | undefined {
    this.line++;
    if (this.done) return undefined;
    const m = this.re.exec(text);
    if (m === null) {
      this.done = true;
      return undefined;
    }
    const k = (m[1] ?? '').toLowerCase();
    if (!(DIRECTIVE_KEYS as readonly string[]).includes(k)) {
      this.done = true;
      return undefined;
    }
    if (this.seen.has(k)) {
      throw new KilnError('KLN0102', `only one ${k} parser directive can be used`, {
        location: { file: '', line: this.line, column: 1 },
      });
    }
    this.seen.add(k);
    const d: Directive = {
      name: k as DirectiveKey,
      value: m[2] ?? '',
      location: { start: { line: this.line, column: 1 }, end: { line: this.line, column: text.length + 1 } },
    };
    this.parsed.push(d);
    return d;
  }

  /** Scan a whole text (BuildKit's ParseAll). */
  parseAll(text: string): Directive[] {
    for (const line of text.split('\n')) {
      if (this.done) break;
      this.parseLine(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    return this.parsed;
  }
}

/** Result of {@link detectSyntax}. */
export interface DetectedSyntax {
  /** The frontend reference: the value up to the first space. */
  readonly ref: string;
  /** The whole directive value. */
  readonly cmdline: string;
  /** Where the directive is (1-based line). */
  readonly location: Range;
}

/** Remove a leading UTF-8 byte order mark. */
export function discardBOM(text: string): string {
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/**
 * Find the `syntax` directive of any entry file (BuildKit's DetectSyntax): drop the BOM, skip a
 * `#!` first line, scan the leading `#` directive lines, then retry with `//`, then a JSON
 * object `{"syntax": "..."}`. Returns undefined when there is none.
 */
export function detectSyntax(text: string): DetectedSyntax | undefined {
  return parseDirective('syntax', text);
}

/** Like {@link detectSyntax} for any directive key (BuildKit's ParseDirective). */
export function parseDirective(key: DirectiveKey, text: string): DetectedSyntax | undefined {
  let dt = discardBOM(text);
  let line = 0;
  const nl = dt.indexOf('\n');
  const first = nl < 0 ? dt : dt.slice(0, nl);
  if (first.startsWith('#!')) {
    dt = nl < 0 ? '' : dt.slice(nl + 1);
    line = 1;
  }
  for (const prefix of ['#', '//']) {
    const parser = new DirectiveParser(line, prefix);
    try {
      parser.parseAll(dt);
    } catch {
      // a duplicate ends the scan; what was parsed before it still counts
    }
    const d = parser.parsed.find((x) => x.name === key);
    if (d !== undefined) {
      const sp = d.value.indexOf(' ');
      return { ref: sp < 0 ? d.value : d.value.slice(0, sp), cmdline: d.value, location: d.location };
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(dt);
  } catch {
    return undefined;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const entries = Object.entries(json);
  if (!entries.every(([, v]) => typeof v === 'string')) return undefined;
  const v = (json as Record<string, string>)[key];
  if (v === undefined) return undefined;
  const l = line + 1;
  return { ref: v, cmdline: v, location: { start: { line: l, column: 1 }, end: { line: l, column: 1 } } };
}

/** The `# check=` directive (BuildKit's linter.Config). */
export interface CheckConfig {
  /** Rule names to skip (`skip=A,B`). */
  readonly skip: readonly string[];
  /** `skip=all`. */
  readonly skipAll: boolean;
  /** Experimental rules to enable. */
  readonly experimental: readonly string[];
  /** `experimental=all`. */
  readonly experimentalAll: boolean;
  /** `error=true`: lint warnings fail the build. */
  readonly error: boolean;
}

/**
 * Parse a `# check=` value (`skip=JSONArgsRecommended,StageNameCasing;error=true`), as
 * BuildKit's linter.ParseLintOptions. Throws KilnError KLN0102 on an invalid option.
 */
export function parseCheckDirective(value: string): CheckConfig {
  const out = { skip: [] as string[], skipAll: false, experimental: [] as string[], experimentalAll: false, error: false };
  const v = value.trim();
  if (v === '') return out;
  const parts = v.split(';');
  const limited = parts.length > 3 ? [...parts.slice(0, 2), parts.slice(2).join(';')] : parts;
  for (const p of limited) {
    const eq = p.indexOf('=');
    if (eq < 0) throw new KilnError('KLN0102', `invalid check option ${JSON.stringify(p)}`, { hint: 'use skip=RULE,…;error=true' });
    const k = p.slice(0, eq).trim();
    const val = p.slice(eq + 1).trim();
    switch (k) {
      case 'skip':
      case 'experimental': {
        const all = val === 'all';
        const list = all ? [] : val.split(',').map((r) => r.trim());
        if (k === 'skip') {
          out.skipAll = all;
          out.skip = list;
        } else {
          out.experimentalAll = all;
          out.experimental = list;
        }
        break;
      }
      case 'error': {
        const b = ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(val) ? true : ['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(val) ? false : undefined;
        if (b === undefined) throw new KilnError('KLN0102', `failed to parse check option ${JSON.stringify(p)}: invalid syntax`);
        out.error = b;
        break;
      }
      default:
        throw new KilnError('KLN0102', `invalid check option ${JSON.stringify(k)}`, { hint: 'options are skip, experimental, error' });
    }
  }
  return out;
}
