import { describe, expect, test } from 'vitest';
import { ProxyError } from './proxy-error.js';
import { parseIp, parseProxyValue, proxyConfigFromEnv, proxyFor, proxyForUrl } from './proxy-env.js';

const P = 'http://proxy.corp:3128';

/** Whether a request to `url` goes through the proxy under NO_PROXY=`no` (both proxy variables set). */
function proxied(no: string, url: string): boolean {
  return proxyForUrl(proxyConfigFromEnv({ HTTP_PROXY: P, HTTPS_PROXY: P, NO_PROXY: no }), new URL(url)) !== undefined;
}

describe('NO_PROXY, as Go httpproxy matches it', () => {
  // [NO_PROXY, URL, proxied]: the cases of golang.org/x/net/http/httpproxy's proxy_test.go and more.
  test.for<[string, string, boolean]>([
    ['', 'http://example.com/', true],
    ['example.com', 'http://example.com/', false],
    ['example.com', 'http://www.example.com/', false],
    ['example.com', 'http://notexample.com/', true],
    ['.example.com', 'http://example.com/', true],
    ['.example.com', 'http://www.example.com/', false],
    ['*.example.com', 'http://example.com/', true],
    ['*.example.com', 'http://a.b.example.com/', false],
    ['EXAMPLE.com', 'https://Example.COM/', false],
    [' foo.com , example.com ', 'http://example.com/', false],
    ['example.com:443', 'https://example.com/', false],
    ['example.com:443', 'http://example.com/', true],
    ['example.com:8080', 'http://example.com:8080/', false],
    ['10.0.0.1', 'http://10.0.0.1:5000/', false],
    ['10.0.0.1', 'http://10.0.0.2/', true],
    ['10.0.0.1:80', 'http://10.0.0.1/', false],
    ['10.0.0.1:80', 'http://10.0.0.1:81/', true],
    ['10.0.0.0/8', 'http://10.200.3.4/', false],
    ['10.0.0.0/8', 'http://11.0.0.1/', true],
    ['10.0.0.0/8', 'http://ten.example/', true],
    ['192.168.1.0/24', 'http://[::ffff:192.168.1.7]/', false],
    ['2001:db8::/32', 'http://[2001:db8:1::5]/', false],
    ['2001:db8::/32', 'http://[2001:db9::5]/', true],
    ['::2', 'http://[::2]/', false],
    ['[::2]:443', 'https://[::2]/', false],
    ['[::2]:443', 'http://[::2]/', true],
    ['*', 'https://anything.example/', false],
    ['*,', 'https://anything.example/', false],
    ['*.', 'https://anything.example/', true],
    // localhost and loopback addresses never go through the proxy, NO_PROXY or not (Go's useProxy)
    ['', 'http://localhost:5000/', false],
    ['', 'http://127.0.0.1:5000/', false],
    ['', 'http://127.8.9.10/', false],
    ['', 'http://[::1]:5000/', false],
    // ...but names that resolve to them do: only the proxy resolves them
    ['', 'http://registry.localhost:5000/', true],
    ['', 'http://127.0.0.1.nip.io/', true],
    // a punycode entry matches the name written in Unicode and the other way round
    ['bücher.example', 'http://xn--bcher-kva.example/', false],
    ['xn--bcher-kva.example', 'http://www.bücher.example/', false],
    // malformed entries are ignored
    [':80', 'http://example.com/', true],
  ])('NO_PROXY=%j %s → proxied %s', ([no, url, want]) => {
    expect(proxied(no, url)).toBe(want);
  });
});

describe('the proxy variables', () => {
  test('the upper-case name wins over the lower-case one, as in Go (curl prefers lower case)', () => {
    const cfg = proxyConfigFromEnv({ HTTP_PROXY: 'http://upper:1', http_proxy: 'http://lower:2', https_proxy: 'http://lower:3' });
    expect(proxyForUrl(cfg, new URL('http://a.example/'))?.url.host).toBe('upper:1');
    expect(proxyForUrl(cfg, new URL('http://a.example/'))?.variable).toBe('HTTP_PROXY');
    expect(proxyForUrl(cfg, new URL('https://a.example/'))?.variable).toBe('https_proxy');
  });

  test('an empty variable counts as unset; each scheme has its own variable', () => {
    const cfg = proxyConfigFromEnv({ HTTP_PROXY: '', http_proxy: 'http://lower:2' });
    expect(proxyForUrl(cfg, new URL('http://a.example/'))?.variable).toBe('http_proxy');
    expect(proxyForUrl(cfg, new URL('https://a.example/'))).toBeUndefined();
    expect(proxyForUrl(proxyConfigFromEnv({ NO_PROXY: '', no_proxy: 'a.example', HTTPS_PROXY: P }), new URL('https://a.example/'))).toBeUndefined();
  });

  test('host:port means http://host:port; credentials are kept apart from the shown URL', () => {
    expect(parseProxyValue('HTTP_PROXY', 'proxy.corp:3128').url.href).toBe('http://proxy.corp:3128/');
    expect(parseProxyValue('HTTP_PROXY', '10.1.1.1:3128').url.href).toBe('http://10.1.1.1:3128/');
    const s = parseProxyValue('HTTPS_PROXY', 'http://al%40ice:p%3Ass@proxy.corp:3128/');
    expect(s.url.href).toBe('http://proxy.corp:3128/');
    expect([s.username, s.password]).toEqual(['al@ice', 'p:ss']);
    expect(parseProxyValue('HTTPS_PROXY', 'socks5://gw:1080').url.protocol).toBe('socks5:');
    const h = parseProxyValue('HTTPS_PROXY', 'socks5h://u:p%40ss@[fd00::1]:1080');
    expect([h.url.href, h.url.hostname, h.username, h.password]).toEqual(['socks5h://[fd00::1]:1080', '[fd00::1]', 'u', 'p@ss']);
    expect(parseProxyValue('HTTPS_PROXY', 'https://proxy.corp').url.href).toBe('https://proxy.corp/');
  });

  test('SOCKS4 (socks://, socks4://, socks4a://) is refused naming the scheme, never the value', () => {
    for (const scheme of ['socks', 'socks4', 'socks4a']) {
      expect(() => parseProxyValue('ALL', `${scheme}://u:s3cret@gw:1080`)).toThrow(
        expect.objectContaining({ code: 'KLN0880', message: `ALL names a ${scheme} proxy, which kiln does not support (as Go's net/http)`, hint: expect.not.stringContaining('s3cret') }),
      );
    }
  });

  test('a value that names no proxy fails the requests it applies to, naming the variable and never the value', () => {
    const cfg = proxyConfigFromEnv({ HTTPS_PROXY: 'ftp://user:s3cret@proxy.corp:21', HTTP_PROXY: P, NO_PROXY: 'direct.example' });
    let err: unknown;
    try {
      proxyForUrl(cfg, new URL('https://a.example/'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProxyError);
    expect(err).toMatchObject({ code: 'KLN0880', message: 'HTTPS_PROXY is not a proxy URL' });
    expect(JSON.stringify({ m: (err as Error).message, h: (err as ProxyError).hint })).not.toContain('s3cret');
    // the other scheme's proxy and NO_PROXY hosts are unaffected
    expect(proxyForUrl(cfg, new URL('http://a.example/'))?.url.host).toBe('proxy.corp:3128');
    expect(proxyForUrl(cfg, new URL('https://direct.example/'))).toBeUndefined();
  });

  test('REQUEST_METHOD set (a CGI handler): HTTP_PROXY is refused for http URLs, before NO_PROXY, as Go does; https and no CGI unaffected', () => {
    const cgi = proxyConfigFromEnv({ http_proxy: P, HTTPS_PROXY: P, NO_PROXY: 'direct.example', REQUEST_METHOD: 'GET' });
    for (const url of ['http://a.example/', 'http://direct.example/', 'http://localhost:5000/']) {
      expect(() => proxyForUrl(cgi, new URL(url))).toThrow(expect.objectContaining({ code: 'KLN0880', message: 'refusing to use http_proxy in a CGI environment (REQUEST_METHOD is set)' }));
    }
    expect(proxyForUrl(cgi, new URL('https://a.example/'))?.variable).toBe('HTTPS_PROXY');
    expect(proxyForUrl(proxyConfigFromEnv({ HTTPS_PROXY: P, REQUEST_METHOD: 'GET' }), new URL('http://a.example/'))).toBeUndefined();
    expect(proxyForUrl(proxyConfigFromEnv({ HTTP_PROXY: P, REQUEST_METHOD: '' }), new URL('http://a.example/'))?.variable).toBe('HTTP_PROXY');
    // proxyFor notices REQUEST_METHOD change with the proxy variables unchanged
    const env: Record<string, string | undefined> = { HTTP_PROXY: P };
    expect(proxyFor('http://a.example/', env)?.variable).toBe('HTTP_PROXY');
    env['REQUEST_METHOD'] = 'POST';
    expect(() => proxyFor('http://a.example/', env)).toThrow(ProxyError);
  });

  test('credentials with a stray % fail the requests they apply to with KLN0880, never quoted (was an uncoded URIError)', () => {
    for (const value of ['http://u:100%@proxy.corp:3128', 'http://u:s3cr%zzet@proxy.corp:3128', 'http://us%er@proxy.corp:3128']) {
      let err: unknown;
      try {
        proxyFor('https://a.example/', { HTTPS_PROXY: value });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'KLN0880', message: 'HTTPS_PROXY has a user or password that is not URL-encoded' });
      expect(JSON.stringify({ m: (err as Error).message, h: (err as ProxyError).hint })).not.toMatch(/100%|s3cr|us%er/);
    }
  });

  test('proxyFor reads the environment it is given on each call, and nothing without a proxy variable', () => {
    const env: Record<string, string | undefined> = {};
    expect(proxyFor('https://a.example/', env)).toBeUndefined();
    env['HTTPS_PROXY'] = P;
    expect(proxyFor('https://a.example/', env)?.variable).toBe('HTTPS_PROXY');
    env['NO_PROXY'] = 'a.example';
    expect(proxyFor('https://a.example/', env)).toBeUndefined();
    expect(proxyFor('data:,x', { HTTPS_PROXY: P, HTTP_PROXY: P })).toBeUndefined();
  });
});

test('parseIp: IPv4-mapped IPv6 is the IPv4 address (Go To4), other IPv6 16 bytes', () => {
  expect([...(parseIp('::ffff:10.1.2.3') ?? [])]).toEqual([10, 1, 2, 3]);
  expect(parseIp('2001:db8::1')?.length).toBe(16);
  expect([...(parseIp('2001:db8::1') ?? [])].slice(0, 4)).toEqual([0x20, 0x01, 0x0d, 0xb8]);
  expect(parseIp('example.com')).toBeUndefined();
});
