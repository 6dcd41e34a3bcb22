import { expect, test } from 'vitest';
import { parseInvoke } from './invoke.js';

test('on-error, default and command lines', () => {
  expect(parseInvoke('on-error')).toEqual({ when: 'on-error' });
  expect(parseInvoke(' default ')).toEqual({ when: 'always' });
  expect(parseInvoke("sh -c 'ls /'")).toEqual({ when: 'always', args: ['sh', '-c', 'ls /'] });
  // real commands that are not near a keyword, and paths, run as given
  expect(parseInvoke('env')).toEqual({ when: 'always', args: ['env'] });
  expect(parseInvoke('/usr/bin/on-eror')).toEqual({ when: 'always', args: ['/usr/bin/on-eror'] });
  expect(parseInvoke('on-eror x')).toEqual({ when: 'always', args: ['on-eror', 'x'] });
});

// Before: the whole build ran, then "exec: \"on-eror\": executable file not found in $PATH".
test.for([
  ['on-eror', 'on-error'],
  ['onerror', 'on-error'],
  ['defualt', 'default'],
] as const)('--invoke %s is refused before the build: did you mean --invoke %s?', ([value, near]) => {
  expect(() => parseInvoke(value)).toThrow(expect.objectContaining({ code: 'KLN0712', message: `--invoke ${value}: did you mean --invoke ${near}?`, hint: expect.stringContaining(`--invoke ./${value}`) as unknown }));
});

// Before: LLB_INVALID_STATE "shlex: unclosed double quote …", naming neither --invoke nor a fix.
test('an unclosed quote is refused as an --invoke error (KLN0712)', () => {
  expect(() => parseInvoke('echo "unterminated')).toThrow(expect.objectContaining({ code: 'KLN0712', message: '--invoke echo "unterminated: unclosed double quote' }));
  expect(() => parseInvoke("sh -c 'ls")).toThrow(expect.objectContaining({ code: 'KLN0712', message: "--invoke sh -c 'ls: unclosed single quote" }));
});
