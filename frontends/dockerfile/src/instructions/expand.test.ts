import { describe, expect, it } from 'vitest';
import { KilnError } from '../errors.js';
import { parse } from '../parser/parser.js';
import type { Command } from './commands.js';
import { expandCommand, rawExpander, wordExpander } from './expand.js';
import { parseStages } from './parse.js';

const env = new Map([['A', 'x y'], ['D', '/dst'], ['U', '1000'], ['C', 'cache']]);
const ex = { word: wordExpander(env), raw: rawExpander(env) };

function first(text: string): Command {
  const c = parseStages(parse(`FROM a\n${text}\n`)).stages[0]?.commands[0];
  if (c === undefined) throw new Error('no command');
  return c;
}

describe('expandCommand', () => {
  it('expands ENV keys and values with quote removal', () => {
    const c = expandCommand(first('ENV K="$A" L=${A:-z}\\ b'), ex);
    expect(c.name === 'env' && c.env).toEqual([{ key: 'K', value: 'x y', noDelim: false }, { key: 'L', value: 'x y b', noDelim: false }]);
  });

  it('expands COPY paths and chown but keeps heredoc quotes; quoted heredocs stay raw', () => {
    const c = expandCommand(first('COPY --chown=$U:$U --chmod=$U <<EOF <<"RAW" src/$A $D\n"$A" \'q\'\nEOF\n$A\nRAW'), ex);
    if (c.name !== 'copy') throw new Error('copy');
    expect([c.chown, c.chmod, c.sourcePaths, c.destPath]).toEqual(['1000:1000', '$U', ['src/x y'], '/dst']);
    expect(c.sourceContents.map((s) => s.data)).toEqual(['"x y" \'q\'\n', '$A\n']);
  });

  it('re-parses RUN mounts with the expander and validates', () => {
    const c = expandCommand(first('RUN --mount=type=$C,target=$D,uid=$U true'), ex);
    if (c.name !== 'run') throw new Error('run');
    expect([c.mounts[0]?.type, c.mounts[0]?.target, c.mounts[0]?.uid, c.mounts[0]?.deferred]).toEqual(['cache', '/dst', 1000, []]);
    const bad = first('RUN --mount=type=$A,target=/x true');
    try {
      expandCommand(bad, ex);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KilnError);
      expect([(e as KilnError).code, (e as KilnError).location?.line, (e as KilnError).location?.column]).toEqual(['KLN0412', 2, 5]);
    }
  });

  it('leaves CMD/RUN command lines alone and expands ARG, WORKDIR, USER, VOLUME, STOPSIGNAL', () => {
    expect(expandCommand(first('CMD echo $A'), ex)).toMatchObject({ cmdLine: ['echo $A'] });
    expect(expandCommand(first('ARG V=$D/x W'), ex)).toMatchObject({ args: [{ key: 'V', value: '/dst/x' }, { key: 'W', value: undefined }] });
    expect(expandCommand(first('WORKDIR $D'), ex)).toMatchObject({ path: '/dst' });
    expect(expandCommand(first('USER $U'), ex)).toMatchObject({ user: '1000' });
    expect(expandCommand(first('VOLUME $D /v'), ex)).toMatchObject({ volumes: ['/dst', '/v'] });
    expect(expandCommand(first('STOPSIGNAL SIG$U'), ex)).toMatchObject({ signal: 'SIG1000' });
  });

  it('locates expansion errors at the instruction', () => {
    expect(expandCommand(first('  WORKDIR ${A:?missing dir}'), ex)).toMatchObject({ path: 'x y' });
    try {
      expandCommand(first('  WORKDIR ${NOPE:?missing dir}'), ex);
      expect.unreachable();
    } catch (e) {
      const k = e as KilnError;
      expect([k.code, k.location?.line, k.location?.column, k.message]).toEqual(['KLN0201', 2, 3, 'failed to process "${NOPE:?missing dir}": NOPE: missing dir']);
    }
  });
});
