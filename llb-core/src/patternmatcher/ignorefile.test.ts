import { describe, expect, test } from 'vitest';
import { parseDockerignore } from './ignorefile.js';

describe('parseDockerignore', () => {
  test('comments, blanks, exceptions, cleaning, leading slash, CRLF and BOM', () => {
    const text = '\uFEFF# comment\nnode_modules\r\n\n  /dist/  \n!dist/keep.txt\n! spaced\n./a/../b/*.log\n # not a comment\n/\n';
    expect(parseDockerignore(text)).toEqual(['node_modules', 'dist', '!dist/keep.txt', '!spaced', 'b/*.log', '# not a comment', '/']);
  });
});

describe('parseDockerignore trimming', () => {
  test("trims what Go's strings.TrimSpace trims (unicode.IsSpace), not JavaScript's trim()", () => {
    // U+0085 (NEL) is a space to Go but not to String.prototype.trim; U+FEFF is the reverse
    expect(parseDockerignore('a\u0085\n\u0085b\n!\u0085c\n\u00a0d\u3000\n')).toEqual(['a', 'b', '!c', 'd']);
    expect(parseDockerignore('x\n\ufeffy\nz\ufeff\n')).toEqual(['x', '\ufeffy', 'z\ufeff']);
  });
});
