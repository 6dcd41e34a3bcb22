/**
 * The checks that need only the parsed file (BuildKit runs them while parsing, for every stage
 * whether it is built or not): NoEmptyContinuation, MaintainerDeprecated, StageNameCasing,
 * FromAsCasing, InvalidDefinitionDescription, DuplicateStageName, ReservedStageName and
 * ConsistentInstructionCasing.
 */
import type { ParsedDockerfile } from '../instructions/parse.js';
import { checkFromCasing, checkInstructionCasing } from './casing.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';
import { checkArgDescription, checkDefinitionDescription, checkStageNames } from './stages.js';

/** Run the parse-time checks over `parsed`, in file order. */
export function checkParsed(parsed: ParsedDockerfile, lint: Linter): void {
  for (const w of parsed.ast.warnings) {
    // The parser's only warning today; matched on its text so a future one is not misfiled.
    if (w.short.startsWith('Empty continuation line')) lint.run(Rules.NoEmptyContinuation, w.location);
  }
  for (const s of parsed.stages) checkFromCasing(s, lint);
  if (lint.enabled(Rules.MaintainerDeprecated)) {
    for (const n of parsed.ast.children) if (n.value === 'maintainer') lint.run(Rules.MaintainerDeprecated, n.location);
  }
  if (lint.enabled(Rules.InvalidDefinitionDescription)) {
    for (const a of parsed.metaArgs) checkArgDescription(a, lint);
    for (const s of parsed.stages) {
      if (s.name !== '') checkDefinitionDescription('FROM', [s.name], s.node.prevComment, s.location, lint);
      for (const c of s.commands) if (c.name === 'arg') checkArgDescription(c, lint);
    }
  }
  checkStageNames(parsed.stages, lint);
  checkInstructionCasing(parsed.ast.children, lint);
}
