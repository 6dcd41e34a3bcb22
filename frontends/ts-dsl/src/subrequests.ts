/**
 * Subrequests of the kiln/ts frontend: what `kiln build --call=targets` (buildx `--call targets`,
 * BuildKit's `requestid=frontend.targets`) asks instead of a build. The answer is metadata only,
 * in the Dockerfile frontend's format (`result.json`, `result.txt`, `result.statuscode`).
 */
import type { FrontendResult } from '@kiln/llb-core';
import { TsDslError } from './errors.js';
import type { WireTarget } from './eval/protocol.js';

/** The `requestid` frontend option that asks for the build's targets (BuildKit's wire name). */
export const TARGETS_REQUEST = 'frontend.targets';

/** The targets list as result metadata: a JSON list and buildx's TARGET/DESCRIPTION table. */
export function targetsResult(targets: readonly WireTarget[]): FrontendResult {
  const names = targets.map((t) => (t.default === true ? (t.name === '' ? '(default)' : `${t.name} (default)`) : t.name));
  const width = Math.max('TARGET'.length, ...names.map((n) => n.length));
  // As Go's tabwriter: a name without a description keeps its padding (the Dockerfile frontend's table).
  const rows = [`${'TARGET'.padEnd(width)} DESCRIPTION`, ...targets.map((t, i) => `${(names[i] ?? '').padEnd(width)} ${t.description ?? ''}`)];
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(JSON.stringify({ targets }))],
      // PrintTargets' words for a build file with none (targets = {} and no default export)
      ['result.txt', enc.encode(targets.length === 0 ? 'No targets\n' : `${rows.join('\n')}\n`)],
      ['result.statuscode', enc.encode('0')],
    ]),
  };
}

/** The `requestid` frontend option that lists the subrequests a frontend answers. */
export const DESCRIBE_REQUEST = 'frontend.subrequests.describe';

const RESULT_META = [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }];
/**
 * What kiln/ts answers, as dockerui's describe lists a frontend's handlers: BuildKit's targets
 * definition (this frontend's ListTargets), then the describe definition itself. Members in the
 * field order of subrequests.Request; JSON.stringify's 2-space layout is Go's MarshalIndent for
 * this ASCII text.
 */
const DEFINITIONS = [
  { name: TARGETS_REQUEST, version: '1.0.0', type: 'rpc', description: 'List all targets current build supports', opts: [], inputs: null, metadata: RESULT_META, refs: null },
  { name: DESCRIBE_REQUEST, version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, inputs: null, metadata: RESULT_META, refs: null },
];

/** `--call=subrequests.describe`: result.json, PrintDescribe's table as result.txt, and version. */
export function describeResult(): FrontendResult {
  const names = DEFINITIONS.map((d) => d.name.replace(/^frontend\./, ''));
  const width = Math.max('NAME'.length, ...names.map((n) => n.length));
  const rows = [`${'NAME'.padEnd(width)} VERSION DESCRIPTION`, ...DEFINITIONS.map((d, i) => `${(names[i] ?? '').padEnd(width)} ${d.version.padEnd('VERSION'.length)} ${d.description}`)];
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(JSON.stringify(DEFINITIONS, null, 2))],
      ['result.txt', enc.encode(`${rows.join('\n')}\n`)],
      ['version', enc.encode('1.0.0')],
    ]),
  };
}

/**
 * Answers `--call=subrequests.describe` and refuses a subrequest the frontend does not answer,
 * before anything is built (a build made for `--check` ran every step and then failed for want
 * of an answer). Undefined for a build or `--call=targets` (answered by evaluating the file).
 */
export function checkRequest(requestid: string | undefined): FrontendResult | undefined {
  if (requestid === DESCRIBE_REQUEST) return describeResult();
  if (requestid === undefined || requestid === '' || requestid === TARGETS_REQUEST) return undefined;
  const lint = requestid === 'frontend.lint';
  const flag = lint ? '--check (--call=check)' : requestid === 'frontend.outline' ? '--call=outline' : `requestid ${requestid}`;
  throw new TsDslError('KLN0805', `the kiln/ts frontend does not answer ${flag}${lint ? ': a build file has no Dockerfile build checks' : ''}`, {
    hint: 'kiln check FILE type-checks a build file; --call=targets lists its targets (--call=subrequests.describe: what kiln/ts answers)',
  });
}
