/**
 * BuildKit's urlutil.RedactCredentials (v0.11.4+, GHSA-gc89-7gcr-jxqc, applied to git and http
 * materials, the configSource URI and vcs:source): a URL's user name and password each become
 * `xxxxx`. Only the authority's userinfo is touched (up to its last `@`); a string that is not a
 * `scheme://` URL (an scp-style `git@host:path`) stays as it is.
 */
export function redactCredentials(s: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/.exec(s);
  if (m === null) return s;
  const userinfo = m[2] ?? '';
  const colon = userinfo.indexOf(':');
  const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const redacted = `${user === '' ? '' : 'xxxxx'}${colon < 0 ? '' : ':xxxxx'}`;
  return `${m[1] ?? ''}${redacted}@${s.slice(m[0].length)}`;
}

/**
 * The predefined proxy build args (dockerfile2llb's): RUN steps get them without the image, its
 * history or the cache key seeing them. Their values may hold a user and password, which the
 * records kiln keeps of a build (provenance, build history) show as `xxxxx` (BuildKit keeps them).
 */
const PROXY_ARGS: ReadonlySet<string> = new Set(['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY'].flatMap((n) => [n, n.toLowerCase()]));

/** Whether `name` (a build arg's name, or `build-arg:NAME` as a frontend option) is a proxy arg. */
export function isProxyArg(name: string): boolean {
  return PROXY_ARGS.has(name.startsWith('build-arg:') ? name.slice('build-arg:'.length) : name);
}

/**
 * A proxy value without its user and password: a URL as {@link redactCredentials}, and also the
 * form without a scheme (`user:pass@proxy:3128`), which Go's httpproxy and kiln read as http://.
 */
export function redactProxy(v: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(v)) return redactCredentials(v);
  const at = /^([^/?#@]*)@/.exec(v);
  return at === null ? v : redactCredentials(`http://${v}`).slice('http://'.length);
}
