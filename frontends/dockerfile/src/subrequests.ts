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
import { goBytes, goJsonIndent, pbLocation, tabwrite } from './subrequest-format.js';
import { OUTLINE_REQUEST, outline } from './outline.js';

/** The subrequests the Dockerfile frontend answers (buildx `--call=check|outline|targets|subrequests.describe`). */
export const SUBREQUESTS: readonly string[] = ['frontend.lint', 'frontend.outline', 'frontend.targets', 'frontend.subrequests.describe'];

/** The `requestid` frontend option that lists the frontend's subrequests (`--call=subrequests.describe`). */
export const DESCRIBE_REQUEST = 'frontend.subrequests.describe';

/** One entry of the describe answer: BuildKit's subrequests.Request, members in its field order. */
export interface SubrequestDefinition {
  readonly name: string;
  readonly version: string;
  readonly type: 'rpc';
  readonly description: string;
  /** Null where BuildKit's definition leaves the slice nil, `[]` where it sets an empty one. */
  readonly opts: readonly { readonly name: string; readonly description: string }[] | null;
  readonly metadata: readonly { readonly name: string; readonly description: string }[];
}

const RESULT_META = [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }] as const;

/** BuildKit's outline.SubrequestsOutlineDefinition. */
export const OUTLINE_DEFINITION: SubrequestDefinition = { name: 'frontend.outline', version: '1.0.0', type: 'rpc', description: 'List all parameters current build target supports', opts: [{ name: 'target', description: 'Target build stage' }], metadata: RESULT_META };
/** BuildKit's targets.SubrequestsTargetsDefinition. */
export const TARGETS_DEFINITION: SubrequestDefinition = { name: 'frontend.targets', version: '1.0.0', type: 'rpc', description: 'List all targets current build supports', opts: [], metadata: RESULT_META };
/** BuildKit's subrequests.SubrequestsDescribeDefinition. */
export const DESCRIBE_DEFINITION: SubrequestDefinition = { name: DESCRIBE_REQUEST, version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, metadata: RESULT_META };

/**
 * dockerui's describe: the definitions (outline and targets when answered, then describe itself;
 * `frontend.lint` is answered but never listed, as in BuildKit) as `result.json` (Go's
 * MarshalIndent of []subrequests.Request, `inputs` and `refs` nil), `result.txt` and `version`.
 */
export function describeResult(definitions: readonly SubrequestDefinition[] = [OUTLINE_DEFINITION, TARGETS_DEFINITION, DESCRIBE_DEFINITION]): FrontendResult {
  const json = goJsonIndent(definitions.map((d) => ({
    name: d.name,
    version: d.version,
    type: d.type,
    description: d.description,
    opts: d.opts === null ? null : d.opts.map((o) => ({ name: o.name, description: o.description })),
    inputs: null,
    metadata: d.metadata.map((m) => ({ name: m.name, description: m.description })),
    refs: null,
  })));
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(json)],
      ['result.txt', enc.encode(printDescribe(json))],
      ['version', enc.encode(DESCRIBE_DEFINITION.version)],
    ]),
  };
}

/** BuildKit's subrequests.PrintDescribe: NAME (without `frontend.`), VERSION, DESCRIPTION, tabwriter padding 1. */
export function printDescribe(resultJson: string): string {
  const list = JSON.parse(resultJson) as { name?: string; version?: string; description?: string }[] | null;
  const rows = (list ?? []).map((r) => `${(r.name ?? '').replace(/^frontend\./, '')}\t${r.version ?? ''}\t${r.description ?? ''}\n`);
  return tabwrite(`NAME\tVERSION\tDESCRIPTION\n${rows.join('')}`, 1);
}

/**
 * Answers the `requestid` frontend option: undefined for none (a build), the answer for a
 * known subrequest; an unknown one is refused before anything is built, as dockerui does.
 */
export async function subrequest(requestid: string | undefined, dockerfile: Uint8Array, base: ConvertOptions, platforms: readonly string[], filename: string): Promise<FrontendResult | undefined> {
  if (requestid === undefined || requestid === '') return undefined;
  if (requestid === DESCRIBE_REQUEST) return describeResult();
  if (requestid === LINT_REQUEST) return lint(dockerfile, base, platforms, filename);
  if (requestid === TARGETS_REQUEST) return targets(dockerfile, filename);
  if (requestid === OUTLINE_REQUEST) {
    const buildArgs = base.buildArgs instanceof Map ? base.buildArgs : new Map(Object.entries(base.buildArgs ?? {}));
    return outline(dockerfile, {
      file: filename,
      buildArgs,
      ...(base.target === undefined ? {} : { target: base.target }),
      ...(platforms[0] === undefined ? {} : { targetPlatform: platforms[0] }),
      ...(base.buildPlatforms === undefined ? {} : { buildPlatforms: base.buildPlatforms }),
      ...(base.namedContexts === undefined ? {} : { namedContexts: base.namedContexts }),
    });
  }
  throw new KilnError('KLN0504', `unsupported request ${requestid}`, { hint: `the Dockerfile frontend answers ${SUBREQUESTS.join(', ')}` });
}

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
  // BuildKit's lint.LintResults (a warnings list of null when empty, as Go marshals a nil slice);
  // the source has no `definition` (the LLB of the Dockerfile's local source) in kiln.
  const at = (line: number): { start: { line: number }; end: { line: number } } => ({ start: { line }, end: { line } });
  const json = goJsonIndent({
    warnings: warnings.length === 0 ? null : warnings.map((w) => ({
      ruleName: w.rule,
      description: w.description === '' ? undefined : w.description,
      url: w.url === '' ? undefined : w.url,
      detail: w.message === '' ? undefined : w.message,
      location: pbLocation(w.ranges.length > 0 ? w.ranges : [at(w.location.line)]),
    })),
    sources: [{ filename, data: goBytes(dockerfile), language: 'Dockerfile' }],
    buildError: error === undefined ? undefined : { message: error.message, location: pbLocation(error.location === undefined ? [] : [at(error.location.line)]) },
  });
  return {
    metadata: new Map([
      ['result.json', enc.encode(json)],
      ['result.txt', enc.encode(lintText(warnings, error, source, filename))],
      ['result.statuscode', enc.encode(warnings.length > 0 || error !== undefined ? '1' : '0')],
      ['version', enc.encode('1.0.0')],
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
 * The stages a build can target, as BuildKit's ListTargets and targets.List: name, the comment
 * above FROM that starts with the name (its description), whether it is the default (the last),
 * base, platform and location, with the Dockerfile as the one source.
 */
export function targets(dockerfile: Uint8Array, filename: string): FrontendResult {
  const parsed = parseDockerfile(new TextDecoder().decode(dockerfile), { file: filename });
  const last = parsed.stages.length - 1;
  const json = goJsonIndent({
    targets: parsed.stages.map((s, i) => ({
      name: s.name === '' ? undefined : s.name,
      default: i === last ? true : undefined,
      description: s.comment === '' ? undefined : s.comment,
      base: s.baseName === '' ? undefined : s.baseName,
      platform: s.platform === '' ? undefined : s.platform,
      location: pbLocation([s.location]),
    })),
    sources: [goBytes(dockerfile)],
  });
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(json)],
      ['result.txt', enc.encode(printTargets(json))],
      ['result.statuscode', enc.encode('0')],
      ['version', enc.encode('1.0.0')],
    ]),
  };
}

/** BuildKit's targets.PrintTargets, which buildx prints for `--call=targets`. */
export function printTargets(resultJson: string): string {
  const l = JSON.parse(resultJson) as { targets?: { name?: string; default?: boolean; description?: string }[] | null };
  const rows = (l.targets ?? []).map((t) => {
    const name = t.name ?? '';
    const shown = t.default === true ? (name === '' ? '(default)' : `${name} (default)`) : name;
    return `${shown}\t${t.description ?? ''}\n`;
  });
  return tabwrite(`TARGET\tDESCRIPTION\n${rows.join('')}`, 1);
}
