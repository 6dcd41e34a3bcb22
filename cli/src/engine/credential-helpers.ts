import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { findJsonSyntaxError } from '@kiln/llb-core';
import type { CredentialProvider, RegistryCredentials } from '@kiln/runtime/registry';
import { CliError } from '../io.js';

/** What kiln reads of a Docker config.json besides `auths` (which the runtime reads). */
interface HelperConfig {
  readonly credsStore?: string;
  readonly credHelpers?: Readonly<Record<string, string>>;
}

/** Docker Hub's names, as the docker CLI keys its credentials (`https://index.docker.io/v1/`). */
const HUB_SERVER = 'https://index.docker.io/v1/';
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** How long a helper may take (a keychain prompt, a cloud login) before the pull fails. */
const HELPER_TIMEOUT_MS = 60_000;

async function readHelperConfig(path: string): Promise<HelperConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    // no config (or unreadable): no credentials, as the docker CLI
    return {};
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    // As the docker CLI: a broken config is an error, not silently anonymous. Where it is broken,
    // not JSON.parse's message: V8 quotes up to 20 characters around the fault in some (`..."ytoken":
    // CANARYIDTO"...`), which can be part of an auth or identitytoken value.
    const at = findJsonSyntaxError(text);
    const where = at === undefined ? '' : ` at line ${at.line}, column ${at.column}: ${at.message}`;
    throw new CliError('KLN_CLI_CREDS', `${path}: not valid JSON${where}`, 'fix or remove the Docker config file, or point DOCKER_CONFIG elsewhere');
  }
  if (typeof v !== 'object' || v === null) return {};
  const o = v as Record<string, unknown>;
  const helpers: Record<string, string> = {};
  if (typeof o['credHelpers'] === 'object' && o['credHelpers'] !== null) {
    for (const [k, h] of Object.entries(o['credHelpers'] as Record<string, unknown>)) if (typeof h === 'string' && h !== '') helpers[k] = h;
  }
  return {
    ...(typeof o['credsStore'] === 'string' && o['credsStore'] !== '' ? { credsStore: o['credsStore'] } : {}),
    credHelpers: helpers,
  };
}

/**
 * The docker CLI's choice of credential helper for a registry: `credHelpers[host]`, else
 * `credsStore` (which then answers for every registry, instead of `auths`), else none.
 */
export function helperFor(cfg: HelperConfig, host: string): { helper: string; server: string } | undefined {
  const hub = HUB_HOSTS.has(host);
  const server = hub ? HUB_SERVER : host;
  const keys = hub ? [HUB_SERVER, 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [host, `https://${host}`, `http://${host}`];
  for (const k of keys) {
    const h = cfg.credHelpers?.[k];
    if (h !== undefined) return { helper: h, server };
  }
  return cfg.credsStore === undefined ? undefined : { helper: cfg.credsStore, server };
}

/**
 * Asks `docker-credential-<helper> get` for a registry's credentials (the docker-credential-helpers
 * protocol: the server address on stdin, `{"ServerURL","Username","Secret"}` on stdout; a
 * Username of `<token>` makes the Secret an identity token). "Not found" means anonymous.
 * The helper runs with the caller's environment: its PATH, HOME and keychain session.
 */
export async function runCredentialHelper(helper: string, server: string, env: Readonly<Record<string, string | undefined>>, configPath: string): Promise<RegistryCredentials | undefined> {
  if (!/^[\w.-]+$/.test(helper)) {
    throw new CliError('KLN_CLI_CREDS', `invalid credential helper name ${JSON.stringify(helper)} in ${configPath}`, 'credsStore and credHelpers name a docker-credential-<name> program');
  }
  const program = `docker-credential-${helper}`;
  const { code, stdout, stderr, error } = await new Promise<{ code: number | null; stdout: string; stderr: string; error?: NodeJS.ErrnoException }>((resolve) => {
    const child = spawn(program, ['get'], { env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    // Not spawn's `timeout` option: its timer outlives a helper that never started (ENOENT) and
    // kept a failed build's process alive for the whole timeout.
    const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: out, stderr: err, error: e });
    });
    child.once('close', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stdout: out, stderr: err });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(server);
  });
  if (error !== undefined) {
    const hint = `install ${program}, or remove it from "credsStore"/"credHelpers" in ${configPath}`;
    if (error.code === 'ENOENT') throw new CliError('KLN_CLI_CREDS', `credential helper ${program} not found in PATH`, hint);
    throw new CliError('KLN_CLI_CREDS', `credential helper ${program} failed: ${error.message}`, hint);
  }
  // The protocol's "not found" answer (helpers print it and exit 1): no credentials, anonymous.
  if (code !== 0 && /credentials not found/i.test(stdout + stderr)) return undefined;
  if (code !== 0) {
    // Helpers print their error on stdout; it never holds the secret they failed to return.
    const why = (stdout.trim() || stderr.trim() || `exit status ${String(code)}`).split('\n')[0];
    throw new CliError('KLN_CLI_CREDS', `credential helper ${program} get for ${server}: ${why}`, `check ${program} works: echo ${server} | ${program} get`);
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(stdout) as { Username?: unknown; Secret?: unknown };
  } catch {
    throw new CliError('KLN_CLI_CREDS', `credential helper ${program} printed something other than JSON credentials`, `check ${program} works: echo ${server} | ${program} get`);
  }
  const username = typeof answer.Username === 'string' ? answer.Username : '';
  const secret = typeof answer.Secret === 'string' ? answer.Secret : '';
  if (secret === '') return undefined;
  return username === '<token>' ? { kind: 'token', identityToken: secret } : { kind: 'basic', username, password: secret };
}

/**
 * A caller's registry credentials from their Docker config, as the docker CLI reads them:
 * credential helpers (`credHelpers`, `credsStore`) first, `auths` otherwise. Each registry's
 * helper runs at most once per provider (one build), not once per request.
 */
export function dockerCredentialsWithHelpers(configPath: string, env: Readonly<Record<string, string | undefined>>, fromAuths: CredentialProvider): CredentialProvider {
  let cfg: Promise<HelperConfig> | undefined;
  const asked = new Map<string, Promise<RegistryCredentials | undefined>>();
  return async (host) => {
    cfg ??= readHelperConfig(configPath);
    const h = helperFor(await cfg, host);
    if (h === undefined) return fromAuths(host);
    const key = `${h.helper}\0${h.server}`;
    let p = asked.get(key);
    if (p === undefined) {
      p = runCredentialHelper(h.helper, h.server, env, configPath);
      asked.set(key, p);
    }
    return p;
  };
}
