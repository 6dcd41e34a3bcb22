/**
 * Stage-name and description-comment rules: DuplicateStageName, ReservedStageName and the
 * experimental InvalidDefinitionDescription.
 */
import type { ArgCommand, Stage } from '../instructions/commands.js';
import type { Range } from '../parser/ast.js';
import type { Linter } from './linter.js';
import { Rules } from './rules.js';

/** Names the build reserves (`context` is the build context, `scratch` the empty image). */
const RESERVED_STAGE_NAMES: ReadonlySet<string> = new Set(['context', 'scratch']);

/** DuplicateStageName and ReservedStageName, over the (lower-cased) `AS` names. */
export function checkStageNames(stages: readonly Stage[], lint: Linter): void {
  const seen = new Set<string>();
  for (const s of stages) {
    if (s.name === '') continue;
    if (RESERVED_STAGE_NAMES.has(s.name)) lint.run(Rules.ReservedStageName, s.location, s.name);
    if (seen.has(s.name)) lint.run(Rules.DuplicateStageName, s.location, s.name);
    seen.add(s.name);
  }
}

/**
 * InvalidDefinitionDescription: the comment right above a named FROM or an ARG must start with
 * the name it describes (`# builder compiles the app`), else it is not a description.
 */
export function checkDefinitionDescription(instruction: 'FROM' | 'ARG', names: readonly string[], comments: readonly string[], at: Range, lint: Linter): void {
  if (comments.length === 0 || names.length === 0 || !lint.enabled(Rules.InvalidDefinitionDescription)) return;
  const first = (comments[comments.length - 1] ?? '').split(' ')[0] ?? '';
  if (names.includes(first)) return;
  lint.run(Rules.InvalidDefinitionDescription, at, instruction, names.length > 1 ? '<arg_key>' : (names[0] as string));
}

/** {@link checkDefinitionDescription} for an ARG instruction. */
export function checkArgDescription(cmd: ArgCommand, lint: Linter): void {
  checkDefinitionDescription('ARG', cmd.args.map((a) => a.key), cmd.node.prevComment, cmd.location, lint);
}
