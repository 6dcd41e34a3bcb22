import { AsyncLocalStorage } from 'node:async_hooks';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { dockerConfigCredentials, type CredentialProvider } from '@kiln/runtime/registry';
import { callerEnv, callerPath, type CliIo } from '../io.js';
import { dockerCredentialsWithHelpers } from './credential-helpers.js';

/**
 * The Docker config whose `auths` a caller's registry requests use, as the docker CLI and buildx
 * find it: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` of the caller's HOME.
 */
export function dockerConfigPath(env: Readonly<Record<string, string | undefined>>): string {
  const dir = env['DOCKER_CONFIG'];
  if (dir !== undefined && dir !== '') return join(dir, 'config.json');
  return join(env['HOME'] ?? homedir(), '.docker', 'config.json');
}

/**
 * Registry credentials of the command's caller: its environment decides which config file, and
 * its credential helpers (`credsStore`, `credHelpers`) run with that environment.
 */
export function callerCredentials(io: CliIo): CredentialProvider {
  const env = callerEnv(io);
  const path = callerPath(io, dockerConfigPath(env));
  return dockerCredentialsWithHelpers(path, env, dockerConfigCredentials(path));
}

/**
 * Registry credentials per build on one shared engine: pulls, pushes and image lookups made while
 * a build runs inside {@link CallerCredentials.run} use that build's provider (the daemon serves
 * clients with different Docker configs). Outside any build, the engine's default applies.
 */
export class CallerCredentials {
  readonly #scope = new AsyncLocalStorage<CredentialProvider>();
  readonly #fallback: CredentialProvider | undefined;

  constructor(fallback?: CredentialProvider) {
    this.#fallback = fallback;
  }

  /** The provider to give the registry client. */
  readonly provider: CredentialProvider = (host) => {
    const p = this.#scope.getStore() ?? this.#fallback;
    return p === undefined ? Promise.resolve(undefined) : p(host);
  };

  /** Runs `fn` with `credentials` for every registry request it makes. */
  run<T>(credentials: CredentialProvider, fn: () => Promise<T>): Promise<T> {
    return this.#scope.run(credentials, fn);
  }
}
