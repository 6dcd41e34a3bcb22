import { describe, expect, test } from 'vitest';
import { parseDockerignore } from './ignorefile.js';

describe('parseDockerignore', () => {
  test('comments, blanks, exceptions, cleaning, leading slash, CRLF and BOM', () => {
    const text = '\uFEFF# comment\nnode_modules\r\n\n  /dist/  \n!dist/keep.txt\n! spaced\n./a/../b/*.log\n # not a comment\n/\n';
    expect(parseDockerignore(text)).toEqual(['node_modules', 'dist', '!dist/keep.txt', '!spaced', 'b/*.log', '# not a comment', '/']);
  });
});
