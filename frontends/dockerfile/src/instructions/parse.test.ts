import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError, formatError } from '../errors.js';
import { parse } from '../parser/parser.js';
import type { Command, RunCommand, Stages } from './commands.js';
import { findStage, parseDockerfile, parseStages } from './parse.js';

const D2L = '/work/shared/conformance/dockerfile2llb';

function stagesOf(text: string): Stages {
  return parseStages(parse(text));
}

function failure(text: string): KilnError {
  try {
    stagesOf(text);
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error('expected an error');
}

/** [code, line, column] of the error a Dockerfile gives. */
function where(text: string): [string, number | undefined, number | undefined] {
  const e = failure(text);
  return [e.code, e.location?.line, e.location?.column];
}

function cmd<N extends Command['name']>(text: string, stage: number, i: number, name: N): Extract<Command, { name: N }> {
  const c = stagesOf(text).stages[stage]?.commands[i];
  expect(c?.name).toBe(name);
  return c as Extract<Command, { name: N }>;
}

describe('dockerfile2llb corpus parses into instructions', () => {
  const cases = readdirSync(D2L, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  it('has all 45 case folders', () => expect(cases.length).toBe(45));
  // add-git and run-security-insecure have error.txt from v0.11.6's mainline channel; kiln
  // always enables these features (issue 3), so every case must parse.
  it.for(cases)('%s', (c) => {
    const text = readFileSync(`${D2L}/${c}/Dockerfile`, 'utf8');
    const s = stagesOf(text);
    expect(s.stages.length).toBeGreaterThan(0);
    const froms = text.split('\n').filter((l) => /^\s*FROM\s/i.test(l)).length;
    expect(s.stages.length).toBe(froms);
  });
});

describe('stages', () => {
  it('groups commands, meta args, names, platform and locations', () => {
    const s = stagesOf('ARG BASE=alpine\nARG V\n# builder the build stage\nFROM --platform=$BUILDPLATFORM ${BASE} AS Builder\nRUN make\nFROM scratch\nCOPY --from=builder /out /\n');
    expect(s.metaArgs.map((a) => a.args)).toEqual([[{ key: 'BASE', value: 'alpine', comment: '' }], [{ key: 'V', value: undefined, comment: '' }]]);
    expect(s.stages.map((x) => [x.name, x.index, x.baseName, x.platform, x.location.start.line, x.commands.length])).toEqual([
      ['builder', 0, '${BASE}', '$BUILDPLATFORM', 4, 1],
      ['', 1, 'scratch', '', 6, 1],
    ]);
    expect(s.stages[0]?.comment).toBe('the build stage');
    expect(s.stages[0]?.sourceCode).toBe('FROM --platform=$BUILDPLATFORM ${BASE} AS Builder');
  });

  it('rejects instructions before FROM and bad stage names', () => {
    expect(where('ENV A=b\nFROM x')).toEqual(['KLN0406', 1, 1]);
    expect(where('FROM a AS 1x')).toEqual(['KLN0407', 1, 11]);
    expect(where('FROM a b')).toEqual(['KLN0404', 1, 1]);
  });
});

describe('instruction errors carry code, line and column', () => {
  it('unknown instruction with a suggestion', () => {
    const e = failure('FROM a\n  RUNN echo\n');
    expect([e.code, e.location?.line, e.location?.column]).toEqual(['KLN0401', 2, 3]);
    expect(e.message).toBe('unknown instruction: RUNN (did you mean RUN?)');
    expect(formatError(e, { text: 'FROM a\n  RUNN echo\n' })).toBe(
      'Dockerfile:2:3: unknown instruction: RUNN (did you mean RUN?) [KLN0401]\n  2 |   RUNN echo\n    |   ^\nhint: instructions are ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, FROM, HEALTHCHECK, LABEL, MAINTAINER, ONBUILD, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR',
    );
    expect(formatError(e, { file: 'app.Dockerfile' }).split('\n').slice(0, 2)).toEqual([
      'Dockerfile:2:3: unknown instruction: RUNN (did you mean RUN?) [KLN0401]',
      '  2 | RUNN echo',
    ]);
  });

  it('unknown flag points at the flag', () => {
    const e = failure('FROM a\nCOPY --chwon=1 a b\n');
    expect([e.code, e.location?.line, e.location?.column]).toEqual(['KLN0402', 2, 6]);
    expect(e.message).toBe('unknown flag: chwon (did you mean chown?)');
    expect(where('FROM a\nRUN --foo=bar x')).toEqual(['KLN0402', 2, 5]);
    expect(where('FROM --plat=x a')).toEqual(['KLN0402', 1, 6]);
  });

  it('flag value errors', () => {
    expect(where('FROM a\nCOPY --from a b')).toEqual(['KLN0403', 2, 6]);
    expect(where('FROM a\nCOPY --link=maybe a b')).toEqual(['KLN0403', 2, 6]);
    expect(where('FROM a\nCOPY --from=x \\\n  --from=y a b')).toEqual(['KLN0403', 3, 3]);
    expect(where('FROM a\nRUN --network=bridge x')).toEqual(['KLN0421', 2, 5]);
    expect(where('FROM a\nRUN --security=root x')).toEqual(['KLN0421', 2, 5]);
  });

  it('argument count errors', () => {
    expect(where('FROM a\nCOPY onlyone')).toEqual(['KLN0404', 2, 1]);
    expect(where('FROM a\nWORKDIR')).toEqual(['KLN0404', 2, 1]);
    expect(cmd('FROM a\nWORKDIR a b', 0, 0, 'workdir').path).toBe('a b');
    expect(where('FROM a\nUSER')).toEqual(['KLN0404', 2, 1]);
    expect(where('FROM a\nEXPOSE')).toEqual(['KLN0404', 2, 1]);
    expect(where('FROM a\nSHELL /bin/sh -c')).toEqual(['KLN0405', 2, 1]);
    expect(where('FROM a\nONBUILD ONBUILD RUN x')).toEqual(['KLN0406', 2, 1]);
    expect(where('FROM a\nONBUILD FROM x')).toEqual(['KLN0406', 2, 1]);
    expect(where('FROM a\nHEALTHCHECK NONE x')).toEqual(['KLN0404', 2, 1]);
    expect(where('FROM a\nHEALTHCHECK CONNECT x')).toEqual(['KLN0405', 2, 1]);
    expect(where('FROM a\nHEALTHCHECK --interval=5 CMD x')).toEqual(['KLN0405', 2, 13]);
    expect(where('FROM a\nHEALTHCHECK --timeout=1us CMD x')).toEqual(['KLN0405', 2, 13]);
    expect(where('FROM a\nHEALTHCHECK --retries=-1 CMD x')).toEqual(['KLN0405', 2, 13]);
  });

  it('parser errors keep their line through parse + parseStages', () => {
    expect(where('FROM a\nRUN <<EOF\nx')).toEqual(['KLN0105', 2, 1]);
    expect(where('FROM a\nENV X')).toEqual(['KLN0104', 2, 1]);
  });
});

describe('RUN --mount', () => {
  const run = (flags: string): RunCommand => cmd(`FROM a\nRUN ${flags} true\n`, 0, 0, 'run');

  it('parses every type with BuildKit defaults', () => {
    const flags =
      '--mount=type=cache,target=/c,id=x,sharing=locked,mode=0700,uid=1,gid=2 --mount=target=/b,from=st,source=/s,rw ' +
      '--mount=type=tmpfs,dst=/t,size=64m --mount=type=secret,id=tok,required,env=TOKEN --mount=type=ssh';
    const r = run(flags);
    const columns = [...flags.matchAll(/--mount/g)].map((m) => (m.index ?? 0) + 5);
    expect(r.mounts).toEqual([
      { type: 'cache', from: '', source: '', target: '/c', readOnly: false, sizeLimit: 0, cacheId: 'x', cacheSharing: 'locked', required: false, env: undefined, mode: 0o700, uid: 1, gid: 2, deferred: [] },
      { type: 'bind', from: 'st', source: '/s', target: '/b', readOnly: false, sizeLimit: 0, cacheId: '', cacheSharing: '', required: false, env: undefined, mode: undefined, uid: undefined, gid: undefined, deferred: [] },
      { type: 'tmpfs', from: '', source: '', target: '/t', readOnly: false, sizeLimit: 64 * 1024 * 1024, cacheId: '', cacheSharing: '', required: false, env: undefined, mode: undefined, uid: undefined, gid: undefined, deferred: [] },
      { type: 'secret', from: '', source: '', target: '', readOnly: true, sizeLimit: 0, cacheId: 'tok', cacheSharing: '', required: true, env: 'TOKEN', mode: undefined, uid: undefined, gid: undefined, deferred: [] },
      { type: 'ssh', from: '', source: '', target: '', readOnly: true, sizeLimit: 0, cacheId: '', cacheSharing: '', required: false, env: undefined, mode: undefined, uid: undefined, gid: undefined, deferred: [] },
    ]);
    expect(r.mountSpecs.map((w) => w.position.column)).toEqual(columns);
    expect(r.expands).toBe(true);
    expect(r.flagsUsed).toEqual(['mount']);
  });

  it('defers options holding variables and keeps raw specs', () => {
    const r = run('--mount=type=cache,target=$HOME/.cache,id="$ID"');
    expect(r.mounts[0]?.deferred).toEqual(['target', 'id']);
    expect(r.mounts[0]?.target).toBe('');
    expect(r.mountSpecs[0]?.value).toBe('type=cache,target=$HOME/.cache,id=$ID');
  });

  it.for([
    ['--mount=type=cach,target=/x', 'KLN0412', 'unsupported mount type "cach" (did you mean "cache"?)'],
    ['--mount=type=bind,taget=/x', 'KLN0413', "unexpected key 'taget' in 'taget=/x' (did you mean target?)"],
    ['--mount=type=bind,target=/x,mode=0700', 'KLN0413', 'mode not allowed for "bind" type mounts'],
    ['--mount=type=bind,target=/x,size=1m', 'KLN0413', "unexpected key 'size' for mount type 'bind'"],
    ['--mount=type=cache,target=/x,sharing=open', 'KLN0415', 'unsupported sharing value "open"'],
    ['--mount=type=secret', 'KLN0414', 'invalid secret mount. one of source, target required'],
    ['--mount=type=secret,id=a,from=b', 'KLN0413', 'secret mount should not have a from'],
    ['--mount=type=bind,from=$STAGE,target=/x', 'KLN0415', "'from' doesn't support variable expansion, define alias stage instead"],
    ['--mount=type=tmpfs,target=/x,size=lots', 'KLN0415', 'invalid value for size: lots'],
    ['--mount=type=cache,target=/x,uid=-1', 'KLN0415', 'invalid value -1 for uid'],
    ['--mount=type=bind,target', 'KLN0411', "invalid field 'target' must be a key=value pair"],
    ['--mount=type=bind,target=a\\"b', 'KLN0411', 'failed to parse csv mounts: bare " in non-quoted-field'],
  ] as const)('%s → %s', ([flag, code, message]) => {
    const e = failure(`FROM a\nRUN echo 1 && \\\n  ${flag} true\n`.replace('RUN echo 1 && \\\n  ', 'RUN \\\n  '));
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
    expect([e.location?.line, e.location?.column]).toEqual([3, 3]);
    expect(formatError(e).split('\n').slice(0, 2)).toEqual([`Dockerfile:3:3: ${message} [${code}]`, `  3 | RUN   ${flag} true`]);
  });
});

describe('commands', () => {
  it('ENV and LABEL keep raw pairs and the legacy flag', () => {
    const e = cmd('FROM a\nENV A="x y" B=$A\n', 0, 0, 'env');
    expect(e.env).toEqual([{ key: 'A', value: '"x y"', noDelim: false }, { key: 'B', value: '$A', noDelim: false }]);
    const l = cmd('FROM a\nLABEL maintainer some one\n', 0, 0, 'label');
    expect(l.labels).toEqual([{ key: 'maintainer', value: 'some one', noDelim: true }]);
  });

  it('COPY/ADD flags and heredoc sources', () => {
    const c = cmd('FROM a\nCOPY --from=b --chown=1:2 --chmod=755 --link --parents --exclude=*.md --exclude=x <<-"A" src /d/\n\thi $X\n\tA\n', 0, 0, 'copy');
    expect([c.from, c.chown, c.chmod, c.link, c.parents, c.excludePatterns, c.sourcePaths, c.destPath]).toEqual(['b', '1:2', '755', true, true, ['*.md', 'x'], ['src'], '/d/']);
    expect(c.sourceContents).toEqual([{ path: 'A', data: 'hi $X\n', expand: false }]);
    const a = cmd('FROM a\nADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/y.tgz /z\n', 0, 0, 'add');
    expect([a.checksum, a.keepGitDir, a.unpack, a.link]).toEqual(['sha256:abc', true, false, false]);
    const a2 = cmd('FROM a\nADD x /z\n', 0, 0, 'add');
    expect([a2.keepGitDir, a2.unpack]).toEqual([undefined, undefined]);
  });

  it('RUN/CMD/ENTRYPOINT forms and heredoc files', () => {
    const r = cmd('FROM a\nRUN <<EOF bash\necho $X\nEOF\n', 0, 0, 'run');
    expect([r.cmdLine, r.prependShell, r.files, r.network, r.security, r.expands]).toEqual([
      ['<<EOF bash'], true, [{ name: 'EOF', data: 'echo $X\n', chomp: false, expand: true }], 'default', 'sandbox', false,
    ]);
    const c = cmd('FROM a\nCMD ["a", "b c"]\n', 0, 0, 'cmd');
    expect([c.cmdLine, c.prependShell]).toEqual([['a', 'b c'], false]);
    const en = cmd('FROM a\nENTRYPOINT []\n', 0, 0, 'entrypoint');
    expect(en.cmdLine).toEqual([]);
    const r2 = cmd('FROM a\nRUN --network=none --security=insecure ls\n', 0, 0, 'run');
    expect([r2.network, r2.security, r2.flagsUsed]).toEqual(['none', 'insecure', ['network', 'security']]);
  });

  it('HEALTHCHECK', () => {
    const h = cmd('FROM a\nHEALTHCHECK --interval=1m30s --timeout=3s --start-period=500ms --start-interval=2s --retries=4 CMD curl -f x\n', 0, 0, 'healthcheck');
    expect(h.health).toEqual({ test: ['CMD-SHELL', 'curl -f x'], interval: 90e9, timeout: 3e9, startPeriod: 5e8, startInterval: 2e9, retries: 4 });
    expect(cmd('FROM a\nHEALTHCHECK CMD ["a","b"]\n', 0, 0, 'healthcheck').health.test).toEqual(['CMD', 'a', 'b']);
    expect(cmd('FROM a\nHEALTHCHECK --bogus NONE\n', 0, 0, 'healthcheck').health.test).toEqual(['NONE']);
  });

  it('ONBUILD keeps the expression and the trigger node', () => {
    const o = cmd('FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\n', 0, 0, 'onbuild');
    expect(o.expression).toBe('RUN <<EOF\necho hi\nEOF');
    expect(o.trigger.value).toBe('run');
    expect(o.expands).toBe(false);
  });

  it('EXPOSE sorts, VOLUME, USER, WORKDIR, STOPSIGNAL, SHELL, MAINTAINER, ARG', () => {
    const t = 'FROM a\nEXPOSE 8080 443/tcp 80\nVOLUME ["/a", "/b"]\nUSER app:app\nWORKDIR $HOME/x\nSTOPSIGNAL SIGINT\nSHELL ["/bin/bash", "-c"]\nMAINTAINER me <me@x>\n# V the version\nARG V=1 W\n';
    const c = stagesOf(t).stages[0]?.commands ?? [];
    expect(c.map((x) => x.name)).toEqual(['expose', 'volume', 'user', 'workdir', 'stopsignal', 'shell', 'maintainer', 'arg']);
    const [expose, volume, user, workdir, stop, shell, maint, arg] = c as [
      Extract<Command, { name: 'expose' }>, Extract<Command, { name: 'volume' }>, Extract<Command, { name: 'user' }>,
      Extract<Command, { name: 'workdir' }>, Extract<Command, { name: 'stopsignal' }>, Extract<Command, { name: 'shell' }>,
      Extract<Command, { name: 'maintainer' }>, Extract<Command, { name: 'arg' }>,
    ];
    expect(expose.ports).toEqual(['443/tcp', '80', '8080']);
    expect(volume.volumes).toEqual(['/a', '/b']);
    expect(user.user).toBe('app:app');
    expect([workdir.path, workdir.expands]).toEqual(['$HOME/x', true]);
    expect(stop.signal).toBe('SIGINT');
    expect(shell.shell).toEqual(['/bin/bash', '-c']);
    expect(maint.maintainer).toBe('me <me@x>');
    expect(arg.args).toEqual([{ key: 'V', value: '1', comment: 'the version' }, { key: 'W', value: undefined, comment: '' }]);
    expect(arg.location.start).toEqual({ line: 10, column: 1 });
  });
});

describe('BuildKit instructions/parse_test cases', () => {
  const first = (text: string): KilnError => {
    try {
      parseStages(parse(`FROM a\n${text}`));
    } catch (e) {
      if (e instanceof KilnError) return e;
      throw e;
    }
    throw new Error(`no error for ${text}`);
  };
  it.for(['MAINTAINER', 'WORKDIR', 'USER', 'STOPSIGNAL'])('%s requires exactly one argument', (c) => {
    expect(first(c).message).toBe(`${c} requires exactly one argument`);
  });
  it.for(['ENV', 'LABEL', 'ONBUILD', 'HEALTHCHECK', 'EXPOSE', 'VOLUME'])('%s requires at least one argument', (c) => {
    expect(first(c).message).toBe(`${c} requires at least one argument`);
  });
  it.for(['ADD', 'COPY'])('%s without destination', (c) => {
    expect(first(`${c} arg1`).message).toBe(`${c} requires at least two arguments, but only one was provided. Destination could not be determined`);
  });
  it('other error cases', () => {
    expect(first('COPY\t\n\t\tquux \\\n      bar').message).toMatch(/^COPY requires at least two arguments/);
    expect(first('ONBUILD FROM scratch').message).toBe("FROM isn't allowed as an ONBUILD trigger");
    expect(first('MAINTAINER --boo joe@example.com').message).toBe('unknown flag: boo');
    expect(first('ONBUILD ONBUILD RUN touch foobar').message).toBe("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    expect(first('foo bar').message).toBe('unknown instruction: foo');
    expect(first('ENV =x').message).toBe('ENV names can not be blank');
  });
  it('HEALTHCHECK shell form joins args; interval bounds', () => {
    expect(cmd('FROM a\nHEALTHCHECK CMD hello world', 0, 0, 'healthcheck').health.test).toEqual(['CMD-SHELL', 'hello world']);
    expect(first('HEALTHCHECK --interval=50ns CMD x').message).toMatch(/cannot be less than 1ms/);
    expect(cmd('FROM a\nHEALTHCHECK --interval=0ms --timeout=1ms CMD x', 0, 0, 'healthcheck').health).toMatchObject({ interval: 0, timeout: 1e6 });
  });
  it('RUN reports flags used', () => {
    expect(cmd('FROM a\nRUN --mount=type=tmpfs,target=/foo/ echo hello', 0, 0, 'run').flagsUsed).toEqual(['mount']);
  });
});

describe('parseDockerfile / findStage', () => {
  it('parses text to stages and finds stages by name or index', () => {
    const d = parseDockerfile('# escape=`\nFROM a AS Build\nRUN x `\n  y\nFROM b\nCOPY --from=build / /\n', { file: 'ctx/Dockerfile.dev' });
    expect(d.ast.escapeToken).toBe('`');
    expect(d.stages.map((s) => s.name)).toEqual(['build', '']);
    expect(findStage(d.stages, 'BUILD')?.index).toBe(0);
    expect(findStage(d.stages, '1')?.baseName).toBe('b');
    expect(findStage(d.stages, '1', 1)).toBeUndefined();
    expect(findStage(d.stages, 'nope')).toBeUndefined();
  });
  it('puts the file name in locations', () => {
    try {
      parseDockerfile('FROM a\nRUN --bad x\n', { file: 'ctx/Dockerfile.dev' });
      expect.unreachable();
    } catch (e) {
      expect(formatError(e).split('\n')[0]).toBe('ctx/Dockerfile.dev:2:5: unknown flag: bad [KLN0402]');
    }
  });
});
