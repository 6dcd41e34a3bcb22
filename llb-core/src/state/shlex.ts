import { LlbError } from '../errors.js';

/**
 * Splits a command line into words like github.com/google/shlex (what client/llb's
 * `Shlex` uses): whitespace separates words, single quotes are literal, double quotes
 * allow backslash escapes, a backslash outside quotes escapes the next character, and
 * `#` at the start of a word starts a comment to the end of the line. No expansion.
 */
export function shlexSplit(s: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const n = s.length;
  const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    const c = s[i] as string;
    if (!inWord) {
      if (isSpace(c)) {
        i++;
        continue;
      }
      if (c === '#') {
        while (i < n && s[i] !== '\n') i++;
        continue;
      }
      inWord = true;
      word = '';
    }
    if (isSpace(c)) {
      words.push(word);
      inWord = false;
      i++;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= n) throw new LlbError('LLB_INVALID_STATE', `shlex: escape at end of input in ${JSON.stringify(s)}`);
      word += s[i + 1];
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new LlbError('LLB_INVALID_STATE', `shlex: unclosed single quote in ${JSON.stringify(s)}`);
      word += s.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    if (c === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new LlbError('LLB_INVALID_STATE', `shlex: unclosed double quote in ${JSON.stringify(s)}`);
        const d = s[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\') {
          if (i + 1 >= n) throw new LlbError('LLB_INVALID_STATE', `shlex: escape at end of input in ${JSON.stringify(s)}`);
          word += s[i + 1];
          i += 2;
          continue;
        }
        word += d;
        i++;
      }
      continue;
    }
    word += c;
    i++;
  }
  if (inWord) words.push(word);
  return words;
}
