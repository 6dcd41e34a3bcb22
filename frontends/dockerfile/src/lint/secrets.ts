/**
 * SecretsUsedInArgOrEnv's notion of a secret-looking name (BuildKit's getSecretsRegex): one of
 * the tokens below as the whole name or as an `_`-separated word of it (`GITHUB_TOKEN`,
 * `db_password`, `AUTH`), case-insensitive, unless a `public` word says otherwise.
 */
const SECRET_TOKENS = ['apikey', 'auth', 'credential', 'credentials', 'key', 'password', 'pword', 'passwd', 'secret', 'token'];
const DENY = new RegExp(`(?:_|^)(?:${SECRET_TOKENS.join('|')})(?:_|$)`, 'i');
const ALLOW = /(?:_|^)public(?:_|$)/i;

/** Whether an ARG or ENV name looks like it holds sensitive data. */
export function isSecretName(name: string): boolean {
  return DENY.test(name) && !ALLOW.test(name);
}
