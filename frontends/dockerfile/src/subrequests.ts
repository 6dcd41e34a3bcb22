/**
 * Subrequests: what `buildx build --call=…` (`kiln build --check`, `--call=targets`) asks the
 * frontend instead of a build. Each answers with metadata only (`result.json`, `result.txt`,
 * `result.statuscode`); nothing is solved.
 */
import type { FrontendResult } from '@kiln/llb-core';
import { KilnError } from './errors.js';
import { convertDockerfile } from './convert/convert.js';
import type { ConvertOptions } from './convert/options.js';
import { parseDockerfile } from './instructions/parse.js';
import { checkWarningKey, type CheckWarning } from './lint/linter.js';

/** The `requestid` frontend option that asks for the checks instead of a build. */
export const LINT_REQUEST = 'frontend.lint';

/**
 * Converts the Dockerfile for each platform and answers with metadata only: the warnings and the
 * first conversion error, if any, as JSON (`result.json`) and as text (`result.txt`), and
 * `result.statuscode` 1 when there is either, else 0.
 */
export async function lint(dockerfile: Uint8Array, base: ConvertOptions, platforms: readonly string[], filename: string): Promise<FrontendResult> {
  const warnings: CheckWarning[] = [];
  const seen = new Set<string>();
  let error: KilnError | undefined;
  const source = new TextDecoder().decode(dockerfile);
  const onWarning = (w: CheckWarning): void => {
    const key = checkWarningKey(w);
    if (seen.has(key)) return;
    seen.add(key);
    warnings.push(w);
  };
  for (const p of platforms.length === 0 ? [undefined] : platforms) {
    try {
      await convertDockerfile(dockerfile, { ...base, onWarning, ...(p === undefined ? {} : { targetPlatform: p, multiPlatform: platforms.length > 1 }) });
    } catch (e) {
      // check=error=true fails the conversion for the warnings themselves: they are the result
      if (e instanceof KilnError && e.code === 'KLN0509') continue;
      if (!(e instanceof KilnError)) throw e;
      error = e;
      break;
    }
  }
  const enc = new TextEncoder();
  const json = {
    warnings: warnings.map((w) => ({ rule: w.rule, description: w.description, url: w.url, message: w.message, location: w.location })),
    ...(error === undefined ? {} : { error: { code: error.code, message: error.message, ...(error.location === undefined ? {} : { location: error.location }) } }),
  };
  return {
    metadata: new Map([
      ['result.json', enc.encode(JSON.stringify(json))],
      ['result.txt', enc.encode(lintText(warnings, error, source, filename))],
      ['result.statuscode', enc.encode(warnings.length > 0 || error !== undefined ? '1' : '0')],
    ]),
  };
}

/** `buildx build --check`'s report: each warning with its rule, page, message and source lines. */
function lintText(warnings: readonly CheckWarning[], error: KilnError | undefined, source: string, filename: string): string {
  const lines = source.replace(/\n$/, '').split('\n');
  const excerpt = (line: number): string => {
    const out = ['--------------------'];
    for (let n = Math.max(1, line - 2); n <= Math.min(lines.length, line + 2); n++) {
      out.push(`${String(n).padStart(4)} | ${n === line ? '>>>' : '   '} ${(lines[n - 1] ?? '').replace(/\r$/, '')}`);
    }
    out.push('--------------------');
    return out.join('\n');
  };
  const parts: string[] = [];
  for (const w of warnings) {
    parts.push(`WARNING: ${w.rule} - ${w.url}\n${w.message}\n${w.location.file || filename}:${w.location.line}\n${excerpt(w.location.line)}\n`);
  }
  if (error !== undefined) {
    const at = error.location === undefined ? '' : `${error.location.file || filename}:${error.location.line}\n${excerpt(error.location.line)}\n`;
    parts.push(`ERROR: ${error.message} [${error.code}]\n${at}`);
  }
  const n = warnings.length;
  parts.push(n === 0 ? (error === undefined ? 'Check complete, no warnings found.\n' : 'Check complete, with an error.\n') : `Check complete, ${n} ${n === 1 ? 'warning has' : 'warnings have'} been found!\n`);
  return parts.join('\n');
}

/** The `requestid` frontend option that asks for the build stages (`--call=targets`). */
export const TARGETS_REQUEST = 'frontend.targets';

/**
 * The stages a build can target, as BuildKit's targets subrequest lists them: name, the comment
 * above FROM that starts with the name (its description), base, platform, and which one is the
 * default (the last).
 */
export function targets(dockerfile: Uint8Array, filename: string): FrontendResult {
  const parsed = parseDockerfile(new TextDecoder().decode(dockerfile), { file: filename });
  const last = parsed.stages.length - 1;
  const list = parsed.stages.map((s, i) => ({
    name: s.name,
    ...(s.comment === '' ? {} : { description: s.comment }),
    ...(i === last ? { default: true } : {}),
    base: s.baseName,
    ...(s.platform === '' ? {} : { platform: s.platform }),
    location: { file: filename, line: s.location.start.line },
  }));
  const names = list.map((t) => (t.default === true ? (t.name === '' ? '(default)' : `${t.name} (default)`) : t.name));
  const width = Math.max('TARGET'.length, ...names.map((n) => n.length));
  const rows = [`${'TARGET'.padEnd(width)} DESCRIPTION`, ...list.map((t, i) => `${(names[i] ?? '').padEnd(width)} ${t.description ?? ''}`.trimEnd())];
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(JSON.stringify({ targets: list }))],
      ['result.txt', enc.encode(`${rows.join('\n')}\n`)],
      ['result.statuscode', enc.encode('0')],
    ]),
  };
}
