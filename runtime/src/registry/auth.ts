import { readFile } from 'node:fs/promises';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN } from './reference.js';

/** Credentials for one registry. Never logged or put into error messages. */
export type RegistryCredentials =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'token'; readonly identityToken: string; readonly username?: string | undefined };

/** Looks up credentials for a registry host (`docker.io`, `localhost:5000`). */
export type CredentialProvider = (host: string) => Promise<RegistryCredentials | undefined>;

/** One parsed `WWW-Authenticate` challenge. */
export interface AuthChallenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Parses a `WWW-Authenticate` header (`Bearer realm="…",service="…",scope="…"`, `Basic realm="…"`),
 * including several challenges in one header and quoted values containing commas.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  const n = header.length;
  let i = 0;
  const skip = (chars: string): void => {
    while (i < n && chars.includes(header[i] as string)) i++;
  };
  const token = (): string => {
    const st = i;
    while (i < n && /[\w!#$%&'*+.^`|~/-]/.test(header[i] as string)) i++;
    return header.slice(st, i);
  };
  while (i < n) {
    skip(' ,\t');
    const word = token();
    if (word === '') {
      i++;
      continue;
    }
    skip(' \t');
    if (header[i] === '=') {
      i++;
      skip(' \t');
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\') i++;
          value += header[i] ?? '';
          i++;
        }
        i++;
      } else {
        const st = i;
        while (i < n && header[i] !== ',' && header[i] !== ' ') i++;
        value = header.slice(st, i);
      }
      const cur = out[out.length - 1];
      if (cur !== undefined) cur.params[word.toLowerCase()] = value;
    } else {
      out.push({ scheme: word.toLowerCase(), params: {} });
    }
  }
  return out;
}

interface DockerConfigAuth {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

/** Keys Docker may store a host's credentials under in `config.json` `auths`. */
function candidateKeys(host: string): string[] {
  if (host === DOCKER_HUB_DOMAIN || host === DOCKER_HUB_API_HOST || host === 'index.docker.io') {
    return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1'];
  }
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`, `http://${host}/v1/`, `http://${host}/v2/`];
}

/**
 * Reads credentials from a Docker `config.json` (`auths` entries with `auth` = base64 `user:pass`,
 * or `username`/`password`, or `identitytoken`). The path is passed in (usually
 * `~/.docker/config.json`, or `$DOCKER_CONFIG/config.json`); a missing file means no credentials.
 * This function reads only `auths`: it runs no credential helper (`credsStore`, `credHelpers`).
 * The kiln CLI layers the helpers on top of it (cli/src/engine/credential-helpers.ts), so
 * `kiln build` does use them; other callers of the runtime get `auths` alone.
 */
export function dockerConfigCredentials(configPath: string): CredentialProvider {
  let loaded: Promise<Record<string, DockerConfigAuth>> | undefined;
  const load = async (): Promise<Record<string, DockerConfigAuth>> => {
    try {
      const v = JSON.parse(await readFile(configPath, 'utf8')) as { auths?: Record<string, DockerConfigAuth> };
      return typeof v.auths === 'object' && v.auths !== null ? v.auths : {};
    } catch {
      return {};
    }
  };
  return async (host) => {
    loaded ??= load();
    const auths = await loaded;
    for (const k of candidateKeys(host)) {
      const a = auths[k];
      if (a === undefined) continue;
      if (typeof a.identitytoken === 'string' && a.identitytoken !== '') {
        return { kind: 'token', identityToken: a.identitytoken, username: typeof a.username === 'string' ? a.username : undefined };
      }
      if (typeof a.auth === 'string' && a.auth !== '') {
        const dec = Buffer.from(a.auth, 'base64').toString('utf8');
        const i = dec.indexOf(':');
        if (i > 0) return { kind: 'basic', username: dec.slice(0, i), password: dec.slice(i + 1) };
      }
      if (typeof a.username === 'string' && typeof a.password === 'string') return { kind: 'basic', username: a.username, password: a.password };
    }
    return undefined;
  };
}

/** A fixed map of host → credentials (tests, `--registry-auth`). */
export function staticCredentials(map: Readonly<Record<string, RegistryCredentials>>): CredentialProvider {
  return async (host) => map[host];
}

/** `Authorization: Basic …` */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
