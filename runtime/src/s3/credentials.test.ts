import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { defaultAwsCredentials } from './credentials.js';

// The AWS SDK for Go v2's chain as BuildKit's s3 cache gets it (config.LoadDefaultConfig), without network.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-aws-'));
  await writeFile(join(dir, 'credentials'), '[default]\naws_access_key_id = DEFAULTID\naws_secret_access_key = defaultsecret\n\n[ci]\naws_access_key_id = CIID\naws_secret_access_key = cisecret\n');
  await writeFile(join(dir, 'config'), '[profile cfg]\naws_access_key_id = CFGID\naws_secret_access_key = cfgsecret\naws_session_token = cfgtoken\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const files = (env: Record<string, string> = {}): Record<string, string> => ({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), ...env });
const creds = (env: Record<string, string>) => defaultAwsCredentials({ env, home: dir, cwd: dir });

describe('default AWS credentials', () => {
  test('the environment before the files; AWS_PROFILE, then AWS_DEFAULT_PROFILE, then default', async () => {
    expect(await creds(files({ AWS_ACCESS_KEY_ID: 'ENVID', AWS_SECRET_ACCESS_KEY: 'envsecret', AWS_PROFILE: 'ci' }))).toEqual({ accessKeyId: 'ENVID', secretAccessKey: 'envsecret' });
    expect((await creds(files())).accessKeyId).toBe('DEFAULTID');
    expect((await creds(files({ AWS_PROFILE: 'ci', AWS_DEFAULT_PROFILE: 'cfg' }))).accessKeyId).toBe('CIID');
    // envconfig reads AWS_DEFAULT_PROFILE when AWS_PROFILE is not set.
    expect(await creds(files({ AWS_DEFAULT_PROFILE: 'cfg' }))).toEqual({ accessKeyId: 'CFGID', secretAccessKey: 'cfgsecret', sessionToken: 'cfgtoken' });
    // One key alone in the environment is not a credential: the files are read.
    expect((await creds(files({ AWS_ACCESS_KEY_ID: 'ENVID' }))).accessKeyId).toBe('DEFAULTID');
    await expect(creds(files({ AWS_PROFILE: 'none' }))).rejects.toMatchObject({ code: 'S3_CREDENTIALS' });
  });

  test('a profile with a role, SSO or a credential process: the error says kiln does not read it and how to export them', async () => {
    const config = join(dir, 'config-sso');
    await writeFile(config, '[profile dev]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Dev\n[profile ops]\nrole_arn = arn:aws:iam::123456789012:role/ops\nsource_profile = default\n');
    const env = (p: string) => ({ AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_CONFIG_FILE: config, AWS_PROFILE: p });
    await expect(creds(env('dev'))).rejects.toMatchObject({ code: 'S3_CREDENTIALS', message: expect.stringContaining('through sso_session'), hint: expect.stringContaining('aws configure export-credentials --profile dev') });
    await expect(creds(env('ops'))).rejects.toMatchObject({ message: expect.stringContaining('through role_arn') });
    // A role beside keys: the SDK assumes the role, so the keys alone are not what BuildKit would use.
    await writeFile(config, '[profile both]\naws_access_key_id = BID\naws_secret_access_key = bsecret\nrole_arn = arn:aws:iam::123456789012:role/ops\n');
    await expect(creds(env('both'))).rejects.toMatchObject({ message: expect.stringContaining('through role_arn') });
  });

  test('the config file\'s default profile is [default] or [profile default] (which wins)', async () => {
    const config = join(dir, 'config-default');
    const env = { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_CONFIG_FILE: config };
    await writeFile(config, '[profile default]\naws_access_key_id = PDID\naws_secret_access_key = pdsecret\n');
    expect((await creds(env)).accessKeyId).toBe('PDID');
    await writeFile(config, '[default]\naws_access_key_id = DID\naws_secret_access_key = dsecret\n[profile default]\naws_access_key_id = PDID\naws_secret_access_key = pdsecret\n');
    expect((await creds(env)).accessKeyId).toBe('PDID');
    await writeFile(config, '[default]\naws_access_key_id = DID\naws_secret_access_key = dsecret\n');
    expect((await creds(env)).accessKeyId).toBe('DID');
  });
});
