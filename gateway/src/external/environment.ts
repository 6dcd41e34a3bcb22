/**
 * How buildkitd starts a frontend image (frontend/gateway/gateway.go Solve): its argv, environment,
 * working directory and network, and the capability check against its label.
 */
import { type ImageConfig, type Platform } from '@kiln/llb-core';
import { parseGoBool } from '@kiln/dockerfile';
import { GatewayError } from '../errors.js';
import { FRONTEND_OPT_ENV_PREFIX } from '../llbbridge/connect.js';

/** Image label listing the frontend capabilities an image supports (comma separated). */
export const FRONTEND_CAPS_LABEL = 'moby.buildkit.frontend.caps';
/** Image label that turns the frontend container's network off (`true`, Go ParseBool). */
export const FRONTEND_NETWORK_NONE_LABEL = 'moby.buildkit.frontend.network.none';
/** Frontend option naming the capabilities the caller needs of the frontend image. */
export const FRONTEND_CAPS_OPT = 'frontend.caps';
/** The capability a frontend needs when the request carries inputs. */
export const FRONTEND_INPUTS_CAP = 'moby.buildkit.frontend.inputs';
/** Where the frontend's own Definition is mounted (read-only). */
export const FRONTEND_METADATA_PATH = '/run/config/buildkit/metadata/frontend.bin';
/** `apicaps.ExportedProduct` of buildkitd. */
const EXPORTED_PRODUCT = 'buildkit';

/** How to run one frontend container. */
export interface FrontendProcess {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly network: 'host' | 'none';
}

/** A worker as `BUILDKIT_WORKERS` lists it (Go client.WorkerInfo's JSON). */
export interface WorkerInfo {
  readonly id: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly platforms: readonly Platform[];
}

/**
 * The frontend's process: argv = Entrypoint, else `/run` (buildkitd ignores Cmd); cwd =
 * WorkingDir, else `/`; env = the image's Env, then `BUILDKIT_FRONTEND_OPT_<i>=<key>=<value>` for
 * every option (in map order; buildkitd's is Go map order), `BUILDKIT_SESSION_ID`,
 * `BUILDKIT_WORKERS` (JSON) and `BUILDKIT_EXPORTEDPRODUCT=buildkit`; network on unless the image
 * sets `moby.buildkit.frontend.network.none` to a true value.
 */
export function frontendProcess(
  config: ImageConfig | undefined,
  opts: ReadonlyMap<string, string>,
  session: { readonly sessionId: string; readonly workers: readonly WorkerInfo[] },
): FrontendProcess {
  const c = config?.config;
  const args = c?.Entrypoint !== undefined && c.Entrypoint !== null ? [...c.Entrypoint] : ['/run'];
  const cwd = c?.WorkingDir !== undefined && c.WorkingDir !== '' ? c.WorkingDir : '/';
  const env = [...(c?.Env ?? [])];
  let i = 0;
  for (const [k, v] of opts) env.push(`${FRONTEND_OPT_ENV_PREFIX}${i++}=${k}=${v}`);
  env.push(`BUILDKIT_SESSION_ID=${session.sessionId}`);
  env.push(`BUILDKIT_WORKERS=${JSON.stringify(session.workers)}`);
  env.push(`BUILDKIT_EXPORTEDPRODUCT=${EXPORTED_PRODUCT}`);
  const networkNone = c?.Labels?.[FRONTEND_NETWORK_NONE_LABEL];
  const none = networkNone !== undefined && parseGoBool(networkNone) === true;
  return { args, env, cwd, network: none ? 'none' : 'host' };
}

/** The capability names of a caps list (buildkitd getCaps: comma separated, `+suffix` dropped). */
export function parseCaps(list: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const c of (list ?? '').split(',')) {
    const name = c.split('+', 1)[0] ?? '';
    if (name !== '') out.add(name);
  }
  return out;
}

/**
 * Refuses a frontend image that lacks a capability the request needs: every cap of option
 * `frontend.caps`, plus `moby.buildkit.frontend.inputs` when the request carries inputs, must be
 * in the image's `moby.buildkit.frontend.caps` label (BuildKit's UnsupportedFrontendCapError).
 */
export function checkFrontendCaps(config: ImageConfig | undefined, opts: ReadonlyMap<string, string>, hasInputs: boolean, ref: string): void {
  const have = parseCaps(config?.config?.Labels?.[FRONTEND_CAPS_LABEL]);
  const need = parseCaps(opts.get(FRONTEND_CAPS_OPT));
  if (hasInputs) need.add(FRONTEND_INPUTS_CAP);
  for (const cap of [...need].sort()) {
    if (!have.has(cap)) {
      throw new GatewayError('KLN0606', `frontend ${ref} does not support capability ${cap}`, {
        hint: `the frontend image must list it in its ${FRONTEND_CAPS_LABEL} label`,
      });
    }
  }
}
