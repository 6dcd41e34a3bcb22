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

/**
 * Refuses a subrequest the frontend does not answer, before anything is built (a build made
 * for `--check` ran every step and then failed for want of an answer).
 */
export function checkRequest(requestid: string | undefined): void {
  if (requestid === undefined || requestid === '' || requestid === TARGETS_REQUEST) return;
  const lint = requestid === 'frontend.lint';
  const flag = lint ? '--check (--call=check)' : requestid === 'frontend.outline' ? '--call=outline' : `requestid ${requestid}`;
  throw new TsDslError('KLN0805', `the kiln/ts frontend does not answer ${flag}${lint ? ': a build file has no Dockerfile build checks' : ''}`, {
    hint: 'kiln check FILE type-checks a build file; --call=targets lists its targets',
  });
}
