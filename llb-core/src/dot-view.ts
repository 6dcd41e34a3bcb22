/**
 * The `buildctl debug dump-llb --dot` view: a Graphviz digraph with one node per op
 * (labelled by source identifier, exec args, file actions…) and one edge per input,
 * exec edges labelled with their mount target.
 */
import { digestOf } from './digest.js';
import type { Definition, Op } from './op.js';
import { decodeOp } from './pb/op-codec.js';

/** Go's %q for the strings that appear in LLB (printable text with escapes for the rest). */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x07) out += '\\a';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0b) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

function attr(digest: string, op: Op): [string, string] {
  switch (op.kind) {
    case 'source':
      return [op.source.identifier ?? '', 'ellipse'];
    case 'exec':
      return [(op.exec.meta?.args ?? []).join(' '), 'box'];
    case 'build':
      return ['build', 'box3d'];
    case 'merge':
      return ['merge', 'invtriangle'];
    case 'diff':
      return ['diff', 'doublecircle'];
    case 'file': {
      const names = (op.file.actions ?? []).map((a) => {
        const act = a.action;
        switch (act.kind) {
          case 'copy':
            return `copy{src=${act.copy.src ?? ''}, dest=${act.copy.dest ?? ''}}`;
          case 'mkfile':
            return `mkfile{path=${act.mkfile.path ?? ''}}`;
          case 'mkdir':
            return `mkdir{path=${act.mkdir.path ?? ''}}`;
          case 'rm':
            return `rm{path=${act.rm.path ?? ''}}`;
          case 'symlink': // buildctl has no label for symlink actions (newer than its switch)
          case 'none':
            return '';
        }
      });
      return [names.join(','), 'note'];
    }
    case 'none':
      return [digest, 'plaintext'];
  }
}

/** Renders `def` as the Graphviz text `buildctl debug dump-llb --dot` prints. */
export function definitionToDot(def: Definition): string {
  const ops = def.def.map((b) => ({ digest: digestOf(b), op: decodeOp(b) }));
  let out = 'digraph {\n';
  for (const { digest, op } of ops) {
    const [name, shape] = attr(digest, op);
    out += `  ${goQuote(digest)} [label=${goQuote(name)} shape=${goQuote(shape)}];\n`;
  }
  for (const { digest, op } of ops) {
    op.inputs.forEach((inp, i) => {
      let label = '';
      if (op.kind === 'exec') {
        for (const m of op.exec.mounts ?? []) if ((m.input ?? 0) === i && m.dest !== '/') label = m.dest ?? '';
      }
      out += `  ${goQuote(inp.digest)} -> ${goQuote(digest)} [label=${goQuote(label)}];\n`;
    });
  }
  return out + '}\n';
}
