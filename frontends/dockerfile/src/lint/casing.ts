/**
 * Casing rules: StageNameCasing and FromAsCasing (per FROM line, as BuildKit's instruction
 * parser reports them) and ConsistentInstructionCasing (over the whole file).
 */
import type { Stage } from '../instructions/commands.js';
import type { Node } from '../parser/ast.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

/** No letter in `from`..`to` (ASCII), or the Unicode answer for other text. */
function hasNoneOf(s: string, from: number, to: number, unicode: (s: string) => boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return unicode(s);
    if (c >= from && c <= to) return false;
  }
  return true;
}

// Keywords are ASCII: a char-code scan instead of allocating a case-converted copy per keyword.
function isLower(s: string): boolean {
  return hasNoneOf(s, 65, 90, (x) => x === x.toLowerCase());
}

function isUpper(s: string): boolean {
  return hasNoneOf(s, 97, 122, (x) => x === x.toUpperCase());
}

/** StageNameCasing and FromAsCasing for one `FROM image AS name` line, with the words as written. */
export function checkFromCasing(stage: Stage, lint: Linter): void {
  const args = stage.node.args;
  if (args.length !== 3) return;
  const as = (args[1] as (typeof args)[number]).value;
  const name = (args[2] as (typeof args)[number]).value;
  if (!isLower(name)) lint.run(Rules.StageNameCasing, stage.location, name);
  const from = stage.node.keyword;
  // A mixed-case FROM is ConsistentInstructionCasing's business, not this rule's.
  if (isLower(from) ? !isLower(as) : isUpper(from) ? !isUpper(as) : false) lint.run(Rules.FromAsCasing, stage.location, from, as);
}

/**
 * ConsistentInstructionCasing: count the keywords (FROM lines and stage commands: every node
 * from the first FROM on) that are all lower or all upper case; every keyword not in the
 * majority's case (upper on a tie) is reported.
 */
export function checkInstructionCasing(nodes: readonly Node[], lint: Linter): void {
  if (!lint.enabled(Rules.ConsistentInstructionCasing)) return;
  // Nodes, not typed commands: one object shape, so the loops stay cheap on big files.
  const first = nodes.findIndex((n) => n.value === 'from');
  if (first < 0) return;
  let lower = 0;
  let upper = 0;
  for (let i = first; i < nodes.length; i++) {
    const k = (nodes[i] as Node).keyword;
    if (isLower(k)) lower++;
    else if (isUpper(k)) upper++;
  }
  const majorityLower = lower > upper;
  for (let i = first; i < nodes.length; i++) {
    const n = nodes[i] as Node;
    if (majorityLower ? isLower(n.keyword) : isUpper(n.keyword)) continue;
    lint.run(Rules.ConsistentInstructionCasing, n.location, n.keyword, majorityLower ? 'lowercase' : 'uppercase');
  }
}
