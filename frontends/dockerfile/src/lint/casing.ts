/**
 * Casing rules: StageNameCasing and FromAsCasing (per FROM line, as BuildKit's instruction
 * parser reports them) and ConsistentInstructionCasing (over the whole file).
 */
import type { Stage } from '../instructions/commands.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

function isLower(s: string): boolean {
  return s === s.toLowerCase();
}

function isUpper(s: string): boolean {
  return s === s.toUpperCase();
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
 * ConsistentInstructionCasing: count the keywords (FROM lines and stage commands) that are all
 * lower or all upper case; every keyword not in the majority's case (upper on a tie) is reported.
 */
export function checkInstructionCasing(stages: readonly Stage[], lint: Linter): void {
  if (!lint.enabled(Rules.ConsistentInstructionCasing)) return;
  let lower = 0;
  let upper = 0;
  const count = (k: string): void => {
    if (isLower(k)) lower++;
    else if (isUpper(k)) upper++;
  };
  for (const s of stages) {
    count(s.node.keyword);
    for (const c of s.commands) count(c.node.keyword);
  }
  const majorityLower = lower > upper;
  const check = (keyword: string, at: Stage['location']): void => {
    if (majorityLower && !isLower(keyword)) lint.run(Rules.ConsistentInstructionCasing, at, keyword, 'lowercase');
    else if (!majorityLower && !isUpper(keyword)) lint.run(Rules.ConsistentInstructionCasing, at, keyword, 'uppercase');
  };
  for (const s of stages) {
    check(s.node.keyword, s.location);
    for (const c of s.commands) check(c.node.keyword, c.location);
  }
}
