import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../errors.js';
import { ShellLex, goQuote } from './lex.js';

const DIR = '/work/shared/conformance/shell';

interface EnvCase { line: number; input: string; expected: string }
function envVarCases(): EnvCase[] {
  const out: EnvCase[] = [];
  readFileSync(`${DIR}/envVarTest`, 'utf8').split('\n').forEach((raw, i) => {
    if (raw.startsWith('#') || raw.trim() === '') return;
    const f = raw.split('|');
    if (f.length !== 3) throw new Error(`envVarTest:${i + 1}: bad line`);
    const [plat, input, expected] = f.map((s) => s.trim()) as [string, string, string];
    if (plat === 'W') return;
    if (plat !== 'A' && plat !== 'U') throw new Error(`bad platform ${plat}`);
    out.push({ line: i + 1, input, expected });
  });
  return out;
}

describe('shell conformance: envVarTest', () => {
  const env = new Map([['PWD', '/home'], ['SHELL', 'bash'], ['KOREAN', '한국어'], ['NULL', '']]);
  const lex = new ShellLex('\\');
  it.for(envVarCases())('line $line: $input', (c) => {
    if (c.expected === 'error') {
      expect(() => lex.processWord(c.input, env)).toThrow(KilnError);
    } else {
      expect(lex.processWord(c.input, env)).toBe(c.expected);
    }
  });
});

interface WordsCase { line: number; input: string; expected: string[]; env: Map<string, string> }
function wordsCases(): WordsCase[] {
  const out: WordsCase[] = [];
  const env = new Map<string, string>();
  const lines = readFileSync(`${DIR}/wordsTest`, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    if (raw.startsWith('#')) return;
    if (raw.startsWith('ENV ')) {
      const kv = raw.slice(4).replace(/^ +/, '');
      const eq = kv.indexOf('=');
      env.set(kv.slice(0, eq), kv.slice(eq + 1));
      return;
    }
    const f = raw.split('|');
    if (f.length !== 2) throw new Error(`wordsTest:${i + 1}: bad line`);
    out.push({ line: i + 1, input: (f[0] ?? '').trim(), expected: (f[1] ?? '').replace(/^ +/, '').split(','), env: new Map(env) });
  });
  return out;
}

describe('shell conformance: wordsTest', () => {
  const lex = new ShellLex('\\');
  it.for(wordsCases())('line $line: $input', (c) => {
    if (c.expected.length === 1 && c.expected[0] === 'error') {
      expect(() => lex.processWords(c.input, c.env)).toThrow(KilnError);
    } else {
      expect(lex.processWords(c.input, c.env)).toEqual(c.expected);
    }
  });
});

describe('ShellLex', () => {
  const env = new Map([['A', 'a-b-c'], ['E', '']]);
  it('honours the backtick escape token', () => {
    const lex = new ShellLex('`');
    expect(lex.processWord('C:\\dir `$A', env)).toBe('C:\\dir $A');
    expect(lex.processWord('"x`"y"', env)).toBe('x"y');
  });
  it('replaces first and all matches', () => {
    const lex = new ShellLex();
    expect(lex.processWord('${A/-/+}', env)).toBe('a+b-c');
    expect(lex.processWord('${A//-/+}', env)).toBe('a+b+c');
    expect(lex.processWord('${A%-*}|${A%%-*}|${A#*-}|${A##*-}', env)).toBe('a-b|a|b-c|c');
  });
  it('reports matched and unmatched names', () => {
    const r = new ShellLex().processWordWithMatches('$A ${E:-x} ${NOPE}', env);
    expect(r.result).toBe('a-b-c x ');
    expect([...r.matched].sort()).toEqual(['A', 'E']);
    expect([...r.unmatched]).toEqual(['NOPE']);
  });
  it('skipUnsetEnv and rawQuotes keep the text', () => {
    const lex = new ShellLex('\\', { skipUnsetEnv: true, rawQuotes: true });
    expect(lex.processWord('"$X" ${Y:-z} $A', env)).toBe('"$X" ${Y:-z} a-b-c');
  });
  it('errors carry code KLN0201 and the word', () => {
    try {
      new ShellLex().processWord('${E:?must be set}', env);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(KilnError);
      expect((e as KilnError).code).toBe('KLN0201');
      expect((e as KilnError).message).toBe('failed to process "${E:?must be set}": E: must be set');
    }
  });
  it('goQuote matches strconv.Quote', () => {
    expect(goQuote('a"b\\c\n\t\x00♥\u0085')).toBe('"a\\"b\\\\c\\n\\t\\x00♥\\u0085"');
  });
});
