/**
 * `--call=NAME[,format=json]`, as buildx's ParseCallFunc reads it: a frontend subrequest
 * instead of the build, and how its answer is printed (buildx's printResult).
 */
import { DESCRIBE_REQUEST, LINT_REQUEST, OUTLINE_REQUEST, TARGETS_REQUEST, printDescribe, printOutline, printTargets } from '@kiln/dockerfile';
import { EngineError } from './errors.js';

/** The subrequests `--call` names (`build` is no subrequest). */
export const CALLS = ['build', 'check', 'outline', 'targets', 'subrequests.describe'] as const;
/** A subrequest `--call` names. */
export type CallName = Exclude<(typeof CALLS)[number], 'build'>;
/** Other names of a call: buildx's ParseCallFunc takes `lint` (the wire name) as well as `check`. */
const CALL_ALIASES: Readonly<Record<string, CallName>> = { lint: 'check' };
/** The `format=` values: buildx prints the frontend's `result.json` as it is. */
const CALL_FORMATS = ['json'] as const;

/** A parsed `--call`. */
export interface CallSpec {
  readonly name: CallName;
  readonly format?: (typeof CALL_FORMATS)[number];
  /** `ignorestatus=true`: exit 0 whatever `result.statuscode` says (buildx's printResult). */
  readonly ignoreStatus?: true;
}

/** Go's strconv.ParseBool, as buildx reads `ignorestatus=`. */
function goBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** The `requestid` frontend option of each call. */
export const CALL_REQUESTS: Readonly<Record<CallName, string>> = { check: LINT_REQUEST, outline: OUTLINE_REQUEST, targets: TARGETS_REQUEST, 'subrequests.describe': DESCRIBE_REQUEST };

/**
 * Parses a `--call` value; `--check` is `--call=check` (keeping a `format=` given with
 * `--call=check`). Undefined means a build. A bad name, field or format is KLN0702 naming the
 * value and the choices.
 */
export function parseCall(value: string | undefined, check = false, flag = '--call'): CallSpec | undefined {
  if (value === undefined || value === '') return check ? { name: 'check' } : undefined;
  let name: string | undefined;
  let format: string | undefined;
  let ignoreStatus = false;
  const usage = `${flag}=NAME[,format=json][,ignorestatus=true] with NAME one of ${CALLS.join(', ')}, lint`;
  for (const field of value.split(',')) {
    const eq = field.indexOf('=');
    if (eq < 0) {
      if (name !== undefined) throw new EngineError('KLN0702', `invalid ${flag} value ${JSON.stringify(value)}: it names two calls (${name}, ${field})`, { hint: `use ${usage}` });
      name = field.trim();
      continue;
    }
    const key = field.slice(0, eq).trim();
    if (key === 'ignorestatus') {
      const b = goBool(field.slice(eq + 1).trim());
      if (b === undefined) throw new EngineError('KLN0702', `invalid ${flag} ignorestatus value ${JSON.stringify(field.slice(eq + 1))}: true or false`, { hint: `use ${usage}` });
      ignoreStatus = b;
      continue;
    }
    if (key !== 'format') throw new EngineError('KLN0702', `invalid ${flag} field ${JSON.stringify(field)} in ${JSON.stringify(value)}: the fields are format and ignorestatus`, { hint: `use ${usage}` });
    format = field.slice(eq + 1).trim();
  }
  if (format !== undefined && format !== '' && !(CALL_FORMATS as readonly string[]).includes(format)) {
    throw new EngineError('KLN0702', `invalid ${flag} format ${JSON.stringify(format)}: the formats are ${CALL_FORMATS.join(', ')} (text when none is given)`, { hint: `use ${usage}` });
  }
  const given = name ?? (check ? 'check' : '');
  const n = CALL_ALIASES[given] ?? given;
  if (!(CALLS as readonly string[]).includes(n)) {
    throw new EngineError('KLN0702', `unknown ${flag} ${JSON.stringify(n)}: the calls are ${CALLS.join(', ')} (lint is another name for check)`, { hint: `use ${usage}` });
  }
  if (check && n !== 'check' && n !== 'build') throw new EngineError('KLN0702', `--check cannot be used with ${flag}=${n}: --check is ${flag}=check`, { hint: 'drop one of them' });
  const ignore = ignoreStatus ? { ignoreStatus: true as const } : {};
  if (n === 'build') return check ? { name: 'check', ...ignore } : undefined;
  return { name: n as CallName, ...(format === 'json' ? { format: 'json' as const } : {}), ...ignore };
}

/** The text a call prints, and whether it exits 1 (`result.statuscode` other than 0, unless `ignorestatus=true`). */
export interface CallAnswer {
  readonly text: string;
  readonly failed: boolean;
}

/** buildx's printers of `result.json`, by call (its printResult: PrintOutline, PrintTargets, PrintDescribe). */
const PRINTERS: Partial<Readonly<Record<CallName, (json: string) => string>>> = { outline: printOutline, targets: printTargets, 'subrequests.describe': printDescribe };

/**
 * What buildx prints for a subrequest's answer: with `format=json` the frontend's `result.json`;
 * for outline, targets and subrequests.describe the text buildx renders from `result.json` itself
 * (so a frontend image that sends only JSON is printed the same), unless the answer's `version` is
 * newer than 1.0.0; otherwise `result.txt`. Undefined when the frontend sent nothing printable.
 */
export function callAnswer(call: CallSpec, metadata: ReadonlyMap<string, Uint8Array>): CallAnswer | undefined {
  const get = (k: string): string | undefined => {
    const v = metadata.get(k);
    return v === undefined ? undefined : new TextDecoder().decode(v);
  };
  const json = get('result.json');
  const txt = get('result.txt');
  const status = get('result.statuscode');
  const failed = call.ignoreStatus !== true && status !== undefined && status.trim() !== '0';
  if (call.format === 'json') return json === undefined ? undefined : { text: `${json}\n`, failed };
  const version = get('version');
  const known = version === undefined || version === '' || compareVersions(version, '1.0.0') <= 0;
  const printer = PRINTERS[call.name];
  if (printer !== undefined && json !== undefined && (known || txt === undefined || txt === '')) {
    try {
      return { text: printer(json), failed };
    } catch {
      // not the JSON buildx knows: fall back to the frontend's own text
    }
  }
  return txt === undefined ? undefined : { text: txt, failed };
}

/** Dotted numeric version comparison (buildx uses docker's versions.LessThan). */
function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
