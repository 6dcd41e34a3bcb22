import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { S3Error } from './errors.js';
import type { AwsCredentials } from './sigv4.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Where {@link defaultAwsCredentials} looks: a caller's environment and home directory. */
export interface AwsCredentialContext {
  readonly env: Env;
  /** The caller's home (`~/.aws/…`). */
  readonly home: string;
  /** Relative file names in the environment are taken from here. */
  readonly cwd: string;
}

const set = (v: string | undefined): v is string => v !== undefined && v !== '';

/**
 * The AWS SDK for Go v2's default credential chain as far as it needs no network: the
 * environment (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, or the older `AWS_ACCESS_KEY`/
 * `AWS_SECRET_KEY`, with `AWS_SESSION_TOKEN`), then profile `AWS_PROFILE` (else `AWS_DEFAULT_PROFILE`, else `default`) of the
 * shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) and of the
 * shared config file (`AWS_CONFIG_FILE`, else `~/.aws/config`, section `[profile NAME]`), the
 * credentials file's keys first. Web identity, SSO, `credential_process` and the instance metadata
 * service are not consulted: without keys this fails with S3_CREDENTIALS, naming what to set.
 */
export async function defaultAwsCredentials(ctx: AwsCredentialContext): Promise<AwsCredentials> {
  const { env } = ctx;
  const id = set(env['AWS_ACCESS_KEY_ID']) ? env['AWS_ACCESS_KEY_ID'] : env['AWS_ACCESS_KEY'];
  const secret = set(env['AWS_SECRET_ACCESS_KEY']) ? env['AWS_SECRET_ACCESS_KEY'] : env['AWS_SECRET_KEY'];
  if (set(id) && set(secret)) return { accessKeyId: id, secretAccessKey: secret, ...(set(env['AWS_SESSION_TOKEN']) ? { sessionToken: env['AWS_SESSION_TOKEN'] } : {}) };
  // envconfig's profileEnvKeys: AWS_PROFILE, then AWS_DEFAULT_PROFILE.
  const profile = set(env['AWS_PROFILE']) ? env['AWS_PROFILE'] : set(env['AWS_DEFAULT_PROFILE']) ? env['AWS_DEFAULT_PROFILE'] : 'default';
  const path = (v: string | undefined, def: string): string => (set(v) ? (isAbsolute(v) ? v : resolve(ctx.cwd, v.replace(/^~(?=\/)/, ctx.home))) : join(ctx.home, '.aws', def));
  const credsFile = path(env['AWS_SHARED_CREDENTIALS_FILE'], 'credentials');
  const configFile = path(env['AWS_CONFIG_FILE'], 'config');
  const fromCreds = (await readIni(credsFile)).get(profile);
  // The config file names profiles `[profile NAME]`; `[default]` too, which a `[profile default]` overrides (the SDK's renameProfileSection).
  const config = await readIni(configFile);
  const fromConfig = config.get(`profile ${profile}`) ?? (profile === 'default' ? config.get('default') : undefined);
  const key = (k: string): string | undefined => (set(fromCreds?.get(k)) ? fromCreds?.get(k) : fromConfig?.get(k));
  const fid = key('aws_access_key_id');
  const fsecret = key('aws_secret_access_key');
  // The SDK assumes a profile's role_arn (STS) even over keys beside it; keys used as they are would be another identity.
  const unread = (k: string): S3Error =>
    new S3Error('S3_CREDENTIALS', `no AWS credentials: profile "${profile}" of ${configFile} gets them through ${k}, which kiln does not read (it asks no service for credentials)`, {
      hint: `export them first: eval "$(aws configure export-credentials --profile ${profile} --format env)", or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    });
  if (set(key('role_arn'))) throw unread('role_arn');
  if (set(fid) && set(fsecret)) {
    const token = key('aws_session_token');
    return { accessKeyId: fid, secretAccessKey: fsecret, ...(set(token) ? { sessionToken: token } : {}) };
  }
  // A profile that gets its credentials another way (SSO, a process, web identity): say which.
  const other = ['sso_session', 'sso_start_url', 'credential_process', 'web_identity_token_file'].find((k) => set(key(k)));
  if (other !== undefined) throw unread(other);
  throw new S3Error('S3_CREDENTIALS', `no AWS credentials: neither AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set nor does profile "${profile}" of ${credsFile} or ${configFile} have keys`, {
    hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or pass access_key_id=…,secret_access_key=… in the cache attributes',
  });
}

/** An INI file's sections (`[name]`) and their `key = value` pairs; a missing file is empty. */
async function readIni(file: string): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  const text = await readFile(file, 'utf8').catch(() => '');
  let section: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (head !== null) {
      const name = (head[1] as string).replace(/\s+/g, ' ');
      section = out.get(name) ?? new Map<string, string>();
      out.set(name, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq < 0) continue;
    section.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
  }
  return out;
}
