import { describe, expect, test } from 'vitest';
import { authSecretNames, authorization, credentialRewrite, storedRemote, urlCredentials } from './git.js';

// BuildKit's git source (source/git authSecretNames / getAuthToken): which secrets authenticate an
// http(s) fetch, in which order, and the Authorization value each gives.

const spec = (remote: string) => ({ remote, authHeaderSecret: 'GIT_AUTH_HEADER', authTokenSecret: 'GIT_AUTH_TOKEN' });
const secrets = (m: Record<string, string>) => (id: string): Uint8Array | undefined => (m[id] === undefined ? undefined : new TextEncoder().encode(m[id]));
const basic = (s: string): string => `basic ${Buffer.from(s).toString('base64')}`;

describe('authSecretNames', () => {
  test('header, then token, for the host (with its port, without user info), then without a host', () => {
    expect(authSecretNames(spec('https://user:pw@git.example.com:8443/org/app.git')).map((s) => s.name)).toEqual([
      'GIT_AUTH_HEADER.git.example.com:8443',
      'GIT_AUTH_TOKEN.git.example.com:8443',
      'GIT_AUTH_HEADER',
      'GIT_AUTH_TOKEN',
    ]);
    expect(authSecretNames(spec('http://[::1]:9000/app.git')).map((s) => s.name)[0]).toBe('GIT_AUTH_HEADER.[::1]:9000');
  });

  test('custom secret names (llb.AuthTokenSecret/AuthHeaderSecret); an empty one is left out', () => {
    expect(authSecretNames({ remote: 'https://h/app.git', authHeaderSecret: '', authTokenSecret: 'MY_TOKEN' }).map((s) => s.name)).toEqual(['MY_TOKEN.h', 'MY_TOKEN']);
  });

  test('an scp-style remote is no URL: no secret is asked for (Go url.Parse fails on it)', () => {
    expect(authSecretNames(spec('git@github.com:org/app.git'))).toEqual([]);
  });
});

describe('authorization', () => {
  test('a token is Basic of x-access-token:TOKEN; a header is sent as it is', () => {
    expect(authorization(spec('https://h/app.git'), secrets({ GIT_AUTH_TOKEN: 'tok' }))).toBe(basic('x-access-token:tok'));
    expect(authorization(spec('https://h/app.git'), secrets({ GIT_AUTH_HEADER: 'Bearer xyz' }))).toBe('Bearer xyz');
  });

  test('the first present wins: a host\'s token over any header without a host', () => {
    const all = { GIT_AUTH_HEADER: 'Bearer generic', GIT_AUTH_TOKEN: 'generic', 'GIT_AUTH_TOKEN.h:1': 'for-h', 'GIT_AUTH_TOKEN.other': 'x' };
    expect(authorization(spec('http://h:1/app.git'), secrets(all))).toBe(basic('x-access-token:for-h'));
    expect(authorization(spec('http://h:1/app.git'), secrets({ ...all, 'GIT_AUTH_HEADER.h:1': 'Bearer for-h' }))).toBe('Bearer for-h');
    expect(authorization(spec('http://g/app.git'), secrets(all))).toBe('Bearer generic');
    expect(authorization(spec('http://g/app.git'), secrets({}))).toBeUndefined();
  });
});

describe('a secret with a line break', () => {
  test('is refused naming the secret, never its value: BuildKit would send it (401, or a header cut short)', () => {
    for (const [id, value] of [['GIT_AUTH_TOKEN', 'tok-123\n'], ['GIT_AUTH_HEADER.h', 'Bearer tok-123\r\n'], ['GIT_AUTH_TOKEN.h', 'tok\n-123']] as const) {
      let err: unknown;
      try {
        authorization(spec('https://h/app.git'), secrets({ [id]: value }));
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'SOLVER_GIT_FAILED' });
      const text = `${(err as Error).message} ${JSON.stringify(err)}`;
      expect(text).toContain(`the secret ${id} (auth for https://h/app.git) holds a line break`);
      expect(text).not.toContain('123');
    }
  });
});

describe('urlCredentials (what the credential helper answers)', () => {
  test('user and password of an http(s) URL, percent-decoded as git decodes them', () => {
    expect(urlCredentials('https://user:p%40ss@h:8443/org/app.git')).toEqual({ username: 'user', password: 'p@ss' });
    expect(urlCredentials('http://u:a@b@[::1]:9000/app.git')).toEqual({ username: 'u', password: 'a@b' });
    // a token as the user: git sends `TOKEN:` for it
    expect(urlCredentials('https://ghp_tok@github.com/org/app.git')).toEqual({ username: 'ghp_tok', password: '' });
  });

  test('none without user info, nor for git:// and ssh:// (no http auth there)', () => {
    for (const remote of ['https://h/org/@scope/app.git', 'git://u:p@h/app.git', 'ssh://git@h/app.git', 'git@h:app.git']) expect(urlCredentials(remote)).toBeUndefined();
  });
});

describe('credentialRewrite', () => {
  test('the stored remote leaves out the credentials; git maps the host back to them', () => {
    expect(credentialRewrite('https://user:p@ss@h:8443/org/app.git')).toEqual({ real: 'https://user:p@ss@h:8443/', stored: 'https://h:8443/' });
    expect(storedRemote('https://user:p@ss@h:8443/org/app.git')).toBe('https://h:8443/org/app.git');
    expect(storedRemote('http://ghp_tok@h/app.git')).toBe('http://h/app.git');
    expect(storedRemote('git://user:s3cret@h/app.git')).toBe('git://h/app.git');
  });

  test('nothing to map without credentials: no user info, an ssh user alone, an scp-style remote', () => {
    for (const remote of ['https://h/org/@scope/app.git', 'ssh://git@h:2222/app.git', 'git@h:org/app.git']) {
      expect(credentialRewrite(remote)).toBeUndefined();
      expect(storedRemote(remote)).toBe(remote);
    }
  });
});
