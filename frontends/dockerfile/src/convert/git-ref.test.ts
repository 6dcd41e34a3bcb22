import { describe, expect, test } from 'vitest';
import { parseGitRef } from './git-ref.js';

// BuildKit v0.11.6 util/gitutil ParseGitRef (its git_ref_test.go table, less the github.com/
// shorthand, which only build contexts take: remote-context-detect.test.ts).

describe('parseGitRef', () => {
  test.each([
    ['https://example.com/foo.git', { remote: 'https://example.com/foo.git', commit: '', subDir: '' }],
    ['https://example.com/foo.git#deadbeef', { remote: 'https://example.com/foo.git', commit: 'deadbeef', subDir: '' }],
    ['https://example.com/foo.git#release/1.2', { remote: 'https://example.com/foo.git', commit: 'release/1.2', subDir: '' }],
    ['https://github.com/foo/bar.git#baz/qux:quux/quuz', { remote: 'https://github.com/foo/bar.git', commit: 'baz/qux', subDir: 'quux/quuz' }],
    ['https://foo:bar@github.com/moby/buildkit.git', { remote: 'https://foo:bar@github.com/moby/buildkit.git', commit: '', subDir: '' }],
    // an empty ref with a subdirectory: the default branch's (moby/buildkit#3596, in v0.11.3+)
    ['https://github.com/docker/docker.git#:myfolder', { remote: 'https://github.com/docker/docker.git', commit: '', subDir: 'myfolder' }],
    ['git://example.com/foo', { remote: 'git://example.com/foo', commit: '', subDir: '' }],
    ['ssh://git@example.com:2222/app.git#main', { remote: 'ssh://git@example.com:2222/app.git', commit: 'main', subDir: '' }],
    ['git@github.com:moby/buildkit', { remote: 'git@github.com:moby/buildkit', commit: '', subDir: '' }],
    ['git@bitbucket.org:atlassianlabs/atlassian-docker.git', { remote: 'git@bitbucket.org:atlassianlabs/atlassian-docker.git', commit: '', subDir: '' }],
    // sshutil.IsImplicitSSHTransport: any path after the colon, an absolute one too
    ['git@host:/srv/app.git#v1', { remote: 'git@host:/srv/app.git', commit: 'v1', subDir: '' }],
  ])('%s is git', (ref, want) => {
    expect(parseGitRef(ref)).toEqual(want);
  });

  test.each([
    'https://example.com/',
    'https://example.com/foo',
    'https://example.com/foo.git/',
    'https://example.com/foo.git.bar',
    'https://github.com/moby/buildkit',
    'http://github.com/docker/docker.git:#branch',
    // the whole string is tested, not the URL's path: a query, or a `#` with nothing after it,
    // makes an http download of it
    'https://example.com/foo.git?ref=main',
    'https://example.com/foo.git?x#main',
    'https://example.com/foo.git#',
    // user names of letters, digits, - and _ only (a.b@host:… is a local path there)
    'first.last@host:app.git',
    'github.com/moby/buildkit',
    'app.git',
    './app.git',
  ])('%s is not git', (ref) => {
    expect(parseGitRef(ref)).toBeUndefined();
  });
});
