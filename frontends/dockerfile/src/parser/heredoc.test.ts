// Inputs and expectations from BuildKit's parser/parser_heredoc_test.go.
import { describe, expect, it } from 'vitest';
import { KilnError } from '../errors.js';
import { parse, parseHeredoc } from './parser.js';

const DOCKERFILE = `
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
"foo"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF
\t`;

type H = [name: string, content: string, expand: boolean, chomp?: boolean, fd?: number];
const EXPECTED: (H[] | null)[] = [
  null, // ENV
  null, // RUN ls
  null, // USER <<INVALID
  null, // INVALID (an unknown instruction)
  [['EMPTY', '', true]],
  [['EMPTY2', '', true, false, 3]],
  null,
  [['INDENT', '\tfoo\n\tbar\n', true]],
  [['UNINDENT', '\tbaz\n\tquux\n', true, true]],
  [['UNINDENT2', '\tbaz\n\tquux\n', true, true]],
  [['EXPAND', '\texpand $NAME\n', true, true]],
  [['NOEXPAND', "\tdon't expand $NAME\n", false, true]],
  [['COPY', 'echo hello world\necho foo bar\n', true]],
  [['COMMENT', '# internal comment\necho hello world\necho foo bar # trailing comment\n', true]],
  [['MOUNT', 'echo hello\n', true]],
  [['FILE1', 'content 1\n', true], ['FILE2', 'content 2\n', true]],
  [['EOF', '"foo"\n\'bar\'\n', true]],
  [['X', 'Y\n', true], ['Y', 'X\n', true]],
  [['COMPLEX', "print('hello world')\n", true]],
  [['file.txt', 'hello world\n', true]],
  [['eof', 'echo foo\n', false]],
  [["eo'f", 'echo foo\n', true]],
  [["eo'f", 'echo foo\n', false]],
  [['one two', 'echo bar\n', false]],
  [['$EOF', '', true]],
];

describe('heredocs: BuildKit parser_heredoc_test cases', () => {
  const children = parse(DOCKERFILE).children;
  it('has one instruction per expectation', () => expect(children.length).toBe(EXPECTED.length + 1));
  it.for(EXPECTED.map((e, i) => [i + 1, e] as const))('instruction %i', ([i, exp]) => {
    const got = children[i]?.heredocs.map((h) => [h.name, h.content, h.expand, h.chomp, h.fileDescriptor]);
    expect(got).toEqual((exp ?? []).map(([n, c, e, ch, fd]) => [n, c, e, ch ?? false, fd ?? 0]));
  });

  it('JSON form never takes heredocs', () => {
    const r = parse('FROM alpine:3.6\n\nRUN ["whoami"]\nRUN ["<<EOF"]\nRUN ["<<\'EOF\'"]\n\t');
    expect(r.children.slice(1).map((c) => c.heredocs.length)).toEqual([0, 0, 0]);
  });

  it.for(['<<EOF', "<<'EOF'", '<<"EOF"', '<<-EOF', "<<-'EOF'", '<<-"EOF"', '<<EO"F"'])('valid %s', (src) => {
    expect(parseHeredoc(src)?.name).toBe('EOF');
  });
  it.for(["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])('invalid %s', (src) => {
    expect(() => parseHeredoc(src)).toThrow(KilnError);
  });
  it.for(['', 'EOF', '<<', '<<-', '<EOF', '<<<EOF', '<<EOF sh'])('not a heredoc: %j', (src) => {
    expect(parseHeredoc(src)).toBeUndefined();
  });

  it.for([
    ['RUN <<EOF\nEOF', ['EOF']],
    ['RUN <<-EOF\nEOF', ['EOF']],
    ["RUN <<'EOF'\nEOF", ['EOF']],
    ['RUN 4<<EOF\nEOF', ['EOF']],
    ['RUN <<EOF <<EOF2\nEOF\nEOF2', ['EOF', 'EOF2']],
    ["RUN '<<EOF'", []],
    ['RUN "<<EOF"', []],
  ] as const)('names in %j', ([line, names]) => {
    expect(parse(`FROM a\n${line}\n`).children[1]?.heredocs.map((h) => h.name)).toEqual(names);
  });
});
