/**
 * `frontend.lint`: the subrequest `buildx build --check` (`kiln build --check`) sends instead of a
 * build. The Dockerfile is converted as for a build, so every check runs, but nothing is solved.
 */
import type { FrontendResult } from '@kiln/llb-core';
import { KilnError } from '../errors.js';
import { convertDockerfile } from '../convert/convert.js';
import type { ConvertOptions } from '../convert/options.js';
import { formatCheckWarning, type CheckWarning } from './linter.js';

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
  for (const p of platforms.length === 0 ? [undefined] : platforms) {
    const onWarning = (w: CheckWarning): void => {
      const key = `${w.location.line}:${w.location.column}:${formatCheckWarning(w)}`;
      if (seen.has(key)) return;
      seen.add(key);
      warnings.push(w);
    };
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
