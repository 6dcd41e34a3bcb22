/**
 * Typed Dockerfile instructions (BuildKit's frontend/dockerfile/instructions commands).
 *
 * Words are kept as written: variable expansion and quote removal happen in the converter (as in
 * BuildKit), for the commands whose {@link CommandBase.expands} is true. Positions of every word
 * are on {@link CommandBase.node}.
 */
import type { Node, Range, Word } from '../parser/ast.js';
import type { MountSpec } from './mount.js';

/** Fields every command has. */
export interface CommandBase {
  /** Original source text (continuations joined, trimmed), BuildKit's `String()`. */
  readonly code: string;
  /** The instruction's span in the Dockerfile. */
  readonly location: Range;
  /** The parser node (keyword, flags and args with positions; heredocs). */
  readonly node: Node;
  /**
   * Whether the converter must expand variables in this command's words (BuildKit's
   * SupportsSingleWordExpansion): ENV, LABEL, ADD, COPY, WORKDIR, EXPOSE, USER, VOLUME,
   * STOPSIGNAL, ARG (values), RUN (mount options only). CMD, ENTRYPOINT, RUN's command line,
   * SHELL, HEALTHCHECK, ONBUILD and MAINTAINER are never expanded.
   */
  readonly expands: boolean;
  /** Flags that were given (names without `--`), in order of first use. */
  readonly flagsUsed: readonly string[];
}

/** `key=value` (or legacy `key value`) of ENV and LABEL; both still unexpanded. */
export interface KeyValuePair {
  readonly key: string;
  readonly value: string;
  /** True for the legacy `ENV key value` form (no `=`). */
  readonly noDelim: boolean;
}

/** One ARG name with an optional default (unexpanded). */
export interface KeyValuePairOptional {
  readonly key: string;
  /** Undefined when the ARG has no default. */
  readonly value: string | undefined;
  /** The comment lines above the ARG that start with its name (BuildKit's getComment). */
  readonly comment: string;
}

/** A heredoc used as a COPY/ADD source. */
export interface SourceContent {
  /** The heredoc name, used as the file name. */
  readonly path: string;
  /** The content (already chomped for `<<-`). */
  readonly data: string;
  /** False when the delimiter was quoted: do not expand variables in `data`. */
  readonly expand: boolean;
}

/** A heredoc attached to RUN/CMD/ENTRYPOINT (BuildKit's ShellInlineFile). */
export interface ShellInlineFile {
  readonly name: string;
  /** Raw content (not chomped: chomp when writing it). */
  readonly data: string;
  readonly chomp: boolean;
  /** False when the delimiter was quoted. */
  readonly expand: boolean;
}

/** Command line of RUN/CMD/ENTRYPOINT (BuildKit's ShellDependantCmdLine). */
export interface ShellDependantCmdLine {
  /** JSON form: the elements; shell form: one string (args joined by a space). */
  readonly cmdLine: readonly string[];
  /** Heredoc bodies referenced by the command line. */
  readonly files: readonly ShellInlineFile[];
  /** True for the shell form: the stage's SHELL is prepended. */
  readonly prependShell: boolean;
}

/** Sources and destination of COPY/ADD, unexpanded. */
export interface SourcesAndDest {
  readonly destPath: string;
  /** Non-heredoc sources. */
  readonly sourcePaths: readonly string[];
  /** Heredoc sources. */
  readonly sourceContents: readonly SourceContent[];
}

/** `ENV k=v …`. */
export interface EnvCommand extends CommandBase {
  readonly name: 'env';
  readonly env: readonly KeyValuePair[];
}
/** `MAINTAINER text`. */
export interface MaintainerCommand extends CommandBase {
  readonly name: 'maintainer';
  readonly maintainer: string;
}
/** `LABEL k=v …`. */
export interface LabelCommand extends CommandBase {
  readonly name: 'label';
  readonly labels: readonly KeyValuePair[];
}
/** `ADD [flags] src… dest`. */
export interface AddCommand extends CommandBase, SourcesAndDest {
  readonly name: 'add';
  readonly chown: string;
  readonly chmod: string;
  readonly link: boolean;
  /** Undefined unless `--keep-git-dir` was given. */
  readonly keepGitDir: boolean | undefined;
  readonly checksum: string;
  readonly excludePatterns: readonly string[];
  /** Undefined unless `--unpack` was given. */
  readonly unpack: boolean | undefined;
}
/** `COPY [flags] src… dest`. */
export interface CopyCommand extends CommandBase, SourcesAndDest {
  readonly name: 'copy';
  /** `--from` (stage name, index, image or named context), `''` for the build context. */
  readonly from: string;
  readonly chown: string;
  readonly chmod: string;
  readonly link: boolean;
  readonly parents: boolean;
  readonly excludePatterns: readonly string[];
}
/** `ONBUILD <instruction>`. */
export interface OnbuildCommand extends CommandBase {
  readonly name: 'onbuild';
  /** The trigger as stored in the image config (`RUN x`, heredoc bodies appended). */
  readonly expression: string;
  /** The parsed trigger instruction (validated when triggered, as BuildKit does). */
  readonly trigger: Node;
}
/** `WORKDIR path`. */
export interface WorkdirCommand extends CommandBase {
  readonly name: 'workdir';
  readonly path: string;
}
/** RUN `--network` values. */
export type NetworkMode = 'default' | 'none' | 'host';
/** RUN `--security` values. */
export type SecurityMode = 'sandbox' | 'insecure';
/** `RUN [flags] command`. */
export interface RunCommand extends CommandBase, ShellDependantCmdLine {
  readonly name: 'run';
  /**
   * `--mount` values as written, without the `--mount=` prefix, each at its flag's position
   * (the converter re-parses them with an expander: parseMount or expandCommand).
   */
  readonly mountSpecs: readonly Word[];
  /**
   * `--mount`s parsed without variables: options whose value holds `$` are left at their
   * defaults and listed in `deferred`; everything else is validated.
   */
  readonly mounts: readonly MountSpec[];
  readonly network: NetworkMode;
  readonly security: SecurityMode;
}
/** `CMD`. */
export interface CmdCommand extends CommandBase, ShellDependantCmdLine {
  readonly name: 'cmd';
}
/** `ENTRYPOINT` (an empty command line clears it). */
export interface EntrypointCommand extends CommandBase, ShellDependantCmdLine {
  readonly name: 'entrypoint';
}
/** Docker's HealthConfig; durations in nanoseconds, 0 = inherit default. */
export interface HealthConfig {
  /** `['NONE']`, `['CMD', …]` (exec) or `['CMD-SHELL', cmd]`. */
  readonly test: readonly string[];
  readonly interval: number;
  readonly timeout: number;
  readonly startPeriod: number;
  readonly startInterval: number;
  readonly retries: number;
}
/** `HEALTHCHECK`. */
export interface HealthCheckCommand extends CommandBase {
  readonly name: 'healthcheck';
  readonly health: HealthConfig;
}
/** `EXPOSE port…` (sorted as strings, as BuildKit does; validated after expansion). */
export interface ExposeCommand extends CommandBase {
  readonly name: 'expose';
  readonly ports: readonly string[];
}
/** `USER user[:group]`. */
export interface UserCommand extends CommandBase {
  readonly name: 'user';
  readonly user: string;
}
/** `VOLUME path…`. */
export interface VolumeCommand extends CommandBase {
  readonly name: 'volume';
  readonly volumes: readonly string[];
}
/** `STOPSIGNAL signal` (validated after expansion). */
export interface StopSignalCommand extends CommandBase {
  readonly name: 'stopsignal';
  readonly signal: string;
}
/** `ARG name[=default] …`. */
export interface ArgCommand extends CommandBase {
  readonly name: 'arg';
  readonly args: readonly KeyValuePairOptional[];
}
/** `SHELL ["exe", "arg"…]`. */
export interface ShellCommand extends CommandBase {
  readonly name: 'shell';
  readonly shell: readonly string[];
}

/** Every instruction that can appear inside a stage (discriminated by `name`). */
export type Command =
  | EnvCommand
  | MaintainerCommand
  | LabelCommand
  | AddCommand
  | CopyCommand
  | OnbuildCommand
  | WorkdirCommand
  | RunCommand
  | CmdCommand
  | EntrypointCommand
  | HealthCheckCommand
  | ExposeCommand
  | UserCommand
  | VolumeCommand
  | StopSignalCommand
  | ArgCommand
  | ShellCommand;

/** Instruction names of {@link Command} (lower case). */
export type CommandName = Command['name'];

/** A `FROM` line and the commands that follow it (BuildKit's instructions.Stage). */
export interface Stage {
  /** `AS` name, lower-cased; `''` when unnamed. */
  readonly name: string;
  /** Position in the file (0-based), used by `COPY --from=<index>`. */
  readonly index: number;
  /** The base image as written (may hold `$ARG`s, expanded with the meta args). */
  readonly baseName: string;
  /** `--platform` as written, `''` when absent. */
  readonly platform: string;
  /** The FROM line as written. */
  readonly sourceCode: string;
  /** Comment above FROM naming the stage (BuildKit's getComment). */
  readonly comment: string;
  readonly commands: readonly Command[];
  /** The FROM instruction's span. */
  readonly location: Range;
  /** The FROM parser node. */
  readonly node: Node;
}

/** A FROM line as returned by {@link parseInstruction} (a stage before its commands are attached). */
export interface FromCommand extends CommandBase {
  readonly name: 'from';
  /** `AS` name, lower-cased; `''` when unnamed. */
  readonly stageName: string;
  readonly baseName: string;
  readonly platform: string;
  readonly comment: string;
}

/** What {@link parseInstruction} returns: a stage command or a FROM. */
export type Instruction = Command | FromCommand;

/** Result of {@link parseStages}. */
export interface Stages {
  /** ARGs before the first FROM. */
  readonly metaArgs: readonly ArgCommand[];
  readonly stages: readonly Stage[];
}
