/**
 * @kiln/dockerfile — the Dockerfile frontend.
 *
 * Layers (each consumes the previous one's typed output):
 * 1. {@link parse}: text → instruction {@link Node}s with positions (BuildKit's `parser` package).
 * 2. {@link ShellLex}: word expansion (BuildKit's `shell` package), used by the converter.
 * 3. {@link parseStages} / {@link parseInstruction} (or {@link parseDockerfile} for text → stages):
 *    nodes → typed {@link Command}s grouped in {@link Stage}s (BuildKit's `instructions` package).
 *    Nothing is expanded there; the converter calls {@link expandCommand} per command with the
 *    stage environment, as BuildKit's dispatch calls `Expand`.
 *
 * Every failure is a {@link KilnError} (stable `code`, `location` file:line:column, `source`,
 * `hint`); {@link formatError} renders it as `FILE:LINE:COL: message [CODE]`.
 *
 * @packageDocumentation
 */
export { KilnError, formatError, suggest } from './errors.js';
export type { DockerfileErrorCode, FormatErrorOptions, KilnErrorOptions, Position, SourceLocation } from './errors.js';

export { parse, parseHeredoc, chompHeredocContent } from './parser/parser.js';
export type { ParseOptions, ParseResult } from './parser/parser.js';
export type { Heredoc, Node, ParseWarning, Range, Word } from './parser/ast.js';
export { DirectiveParser, detectSyntax, parseDirective, parseCheckDirective, discardBOM, DIRECTIVE_KEYS } from './parser/directives.js';
export type { CheckConfig, DetectedSyntax, Directive, DirectiveKey } from './parser/directives.js';
export { dump, dumpNode } from './parser/dump.js';

export { ShellLex, goQuote, isGoSpace } from './shell/lex.js';
export type { EnvGetter, LexOptions, ProcessWordResult } from './shell/lex.js';

export { parseInstruction, parseStages, parseDockerfile, findStage, INSTRUCTION_NAMES } from './instructions/parse.js';
export type { InstructionOptions, ParsedDockerfile } from './instructions/parse.js';
export type {
  AddCommand,
  ArgCommand,
  CmdCommand,
  Command,
  CommandBase,
  CommandName,
  CopyCommand,
  EntrypointCommand,
  EnvCommand,
  ExposeCommand,
  FromCommand,
  HealthCheckCommand,
  HealthConfig,
  Instruction,
  KeyValuePair,
  KeyValuePairOptional,
  LabelCommand,
  MaintainerCommand,
  NetworkMode,
  OnbuildCommand,
  RunCommand,
  SecurityMode,
  ShellCommand,
  ShellDependantCmdLine,
  ShellInlineFile,
  SourceContent,
  SourcesAndDest,
  Stage,
  Stages,
  StopSignalCommand,
  UserCommand,
  VolumeCommand,
  WorkdirCommand,
} from './instructions/commands.js';
export { parseMount, resolveMountTarget, DEFER, MOUNT_TYPES, SHARE_MODES, cleanPath, parseGoBool, ramInBytes, csvFields } from './instructions/mount.js';
export type { MountExpander, MountSpec, MountType, ShareMode } from './instructions/mount.js';
export { parseGoDuration, formatGoDuration } from '@kiln/llb-core';
export { BFlags, Flag } from './instructions/bflags.js';
export { expandCommand, wordExpander, rawExpander } from './instructions/expand.js';
export type { CommandExpanders, WordExpander } from './instructions/expand.js';
export { parsePortSpecs, parseSignal } from './instructions/validate.js';

export { convertDockerfile } from './convert/convert.js';
export type { ConvertOptions, ConvertResult, NamedContext } from './convert/options.js';
export { dockerfileFrontend, createDockerfileFrontend } from './frontend.js';
export { gitContext, isArchive, isRemoteContext, parseGitRef, redactUrl, scrubError } from './remote-context.js';
export { DESCRIBE_REQUEST, LINT_REQUEST, SUBREQUESTS, TARGETS_REQUEST, printDescribe, printTargets } from './subrequests.js';
export { OUTLINE_REQUEST, dockerfileOutline, printOutline, type Outline } from './outline.js';
// SBOM attestations (`attest:sbom`): BuildKit's scanner protocol (frontend/attestations/sbom).
export { createSBOMScanner, parseAttestOptions, sbomBundle, ATTEST_SBOM, DEFAULT_SBOM_GENERATOR, SPDX_PREDICATE_TYPE, CORE_SBOM_NAME, type SBOMScanner, type SBOMTargets } from './sbom.js';
export type { DockerfileFrontendOptions } from './frontend.js';
export { parseDockerignore } from '@kiln/llb-core';

export { Rules as CheckRules, checkRules } from './lint/rules.js';
export type { AnyCheckRule, CheckRule } from './lint/rules.js';
export { formatCheckWarning } from './lint/linter.js';
export type { CheckWarning, CheckWarningSink } from './lint/linter.js';
export { CHECK_BUILD_ARG } from './lint/config.js';
