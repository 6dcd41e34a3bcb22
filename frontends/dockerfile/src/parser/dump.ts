/** BuildKit's `Node.Dump()` format, used by the parser conformance files. */
import { goQuote } from '../shell/lex.js';
import type { Node } from './ast.js';

/** Dump one instruction as `(keyword ["--flag"] "arg" …)` without the outer parentheses. */
export function dumpNode(node: Node): string {
  let s = node.value;
  if (node.flags.length > 0) s += ` [${node.flags.map((f) => goQuote(f.value)).join(' ')}]`;
  for (const a of node.args) s += ` ${goQuote(a.value)}`;
  if (node.next !== undefined) s += ` (${dumpNode(node.next)})`;
  return s.trim();
}

/** Dump a whole parse result: one parenthesised line per instruction, no trailing newline. */
export function dump(children: readonly Node[]): string {
  return children
    .map((n) => `(${dumpNode(n)})`)
    .join('\n')
    .trim();
}
