/**
 * Parser nodes → typed commands grouped in stages, as BuildKit's instructions/parse.go, with
 * Docker's validation rules and messages. No variable is expanded here.
 */
import { KilnError, suggest } from '../errors.js';
import type { DockerfileErrorCode } from '../errors.js';
import type { Node, Word } from '../parser/ast.js';
import { dumpNode } from '../parser/dump.js';
import { chompHeredocContent, parseHeredoc } from '../parser/parser.js';
import { parse } from '../parser/parser.js';
import type { ParseResult } from '../parser/parser.js';
import { ShellLex } from '../shell/lex.js';
import { BFlags } from './bflags.js';
import type {
  AddCommand,
  ArgCommand,
  CmdCommand,
  Command,
  CommandBase,
  CopyCommand,
  EntrypointCommand,
  EnvCommand,
  ExposeCommand,
  FromCommand,
  HealthCheckCommand,
  Instruction,
  KeyValuePair,
  LabelCommand,
  MaintainerCommand,
  NetworkMode,
  OnbuildCommand,
  RunCommand,
  SecurityMode,
  ShellCommand,
  ShellDependantCmdLine,
  SourceContent,
  SourcesAndDest,
  Stage,
  Stages,
  StopSignalCommand,
  UserCommand,
  VolumeCommand,
  WorkdirCommand,
} from './commands.js';
import { parseGoDuration } from '@kiln/llb-core';
import { DEFER, parseMount } from './mount.js';
import type { MountExpander, MountSpec } from './mount.js';

/** Every instruction keyword, upper case. */
export const INSTRUCTION_NAMES = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL', 'MAINTAINER',
  'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;

/** Options of {@link parseInstruction} and {@link parseStages}. */
export interface InstructionOptions {
  /** File name for error locations (default `Dockerfile`). */
  file?: string;
  /** The file's escape token (parseStages takes it from the ParseResult); default `\\`. */
  escapeToken?: string;
}

const NETWORK_MODES: readonly NetworkMode[] = ['default', 'none', 'host'];
const SECURITY_MODES: readonly SecurityMode[] = ['sandbox', 'insecure'];
const VALID_STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

interface Req {
  readonly node: Node;
  readonly args: string[];
  readonly flags: BFlags;
  readonly base: Omit<CommandBase, 'expands' | 'flagsUsed'>;
  readonly escapeToken: string;
}

function err(code: DockerfileErrorCode, message: string, hint?: string, at?: Word): KilnError {
  return new KilnError(code, message, {
    hint,
    ...(at === undefined ? {} : { location: { file: '', ...at.position } }),
  });
}

const errAtLeastOne = (c: string): KilnError => err('KLN0404', `${c} requires at least one argument`);
const errExactlyOne = (c: string): KilnError => err('KLN0404', `${c} requires exactly one argument`, `quote the value if it contains spaces`);
const errNoDest = (c: string): KilnError =>
  err('KLN0404', `${c} requires at least two arguments, but only one was provided. Destination could not be determined`, `write ${c} <src>... <dest>`);

function getComment(comments: readonly string[], name: string): string {
  if (name === '') return '';
  for (const line of comments) if (line.startsWith(`${name} `)) return line.slice(name.length + 1);
  return '';
}

/** BuildKit's nodeArgs: ONBUILD gives [trigger keyword, trigger dump]. */
function nodeArgs(node: Node): string[] {
  if (node.next !== undefined) return [node.next.value, dumpNode(node.next)];
  return node.args.map((a) => a.value);
}

/**
 * Turn one parser node into a typed instruction. Throws {@link KilnError} located at the
 * offending flag or at the instruction, with the instruction text as `source`.
 */
export function parseInstruction(node: Node, options: InstructionOptions = {}): Instruction {
  const file = options.file ?? 'Dockerfile';
  const req: Req = {
    node,
    args: nodeArgs(node),
    flags: new BFlags(node.flags),
    base: { code: node.original.trim(), location: node.location, node },
    escapeToken: options.escapeToken ?? '\\',
  };
  try {
    return dispatch(req);
  } catch (e) {
    if (e instanceof KilnError) e.withLocation({ file, ...node.location.start }, node.original);
    throw e;
  }
}

function done<T extends { name: string }>(req: Req, expands: boolean, body: T): T & CommandBase {
  return Object.assign(body, req.base, { expands, flagsUsed: req.flags.usedNames() });
}

function dispatch(req: Req): Instruction {
  switch (req.node.value) {
    case 'env':
      return parseEnv(req);
    case 'maintainer':
      return parseMaintainer(req);
    case 'label':
      return parseLabel(req);
    case 'add':
      return parseAdd(req);
    case 'copy':
      return parseCopy(req);
    case 'from':
      return parseFrom(req);
    case 'onbuild':
      return parseOnBuild(req);
    case 'workdir':
      return parseWorkdir(req);
    case 'run':
      return parseRun(req);
    case 'cmd':
      return parseCmd(req);
    case 'healthcheck':
      return parseHealthcheck(req);
    case 'entrypoint':
      return parseEntrypoint(req);
    case 'expose':
      return parseExpose(req);
    case 'user':
      return parseUser(req);
    case 'volume':
      return parseVolume(req);
    case 'stopsignal':
      return parseStopSignal(req);
    case 'arg':
      return parseArg(req);
    case 'shell':
      return parseShell(req);
    default: {
      const s = suggest(req.node.keyword, INSTRUCTION_NAMES);
      throw err(
        'KLN0401',
        `unknown instruction: ${req.node.keyword}${s === undefined ? '' : ` (did you mean ${s}?)`}`,
        `instructions are ${INSTRUCTION_NAMES.join(', ')}`,
      );
    }
  }
}

function parseKvps(args: readonly string[], cmd: string): KeyValuePair[] {
  if (args.length === 0) throw errAtLeastOne(cmd);
  if (args.length % 3 !== 0) throw err('KLN0404', `Bad input to ${cmd}, too many arguments`);
  const out: KeyValuePair[] = [];
  for (let j = 0; j < args.length; j += 3) {
    const key = args[j] ?? '';
    if (key === '') throw err('KLN0404', `${cmd} names can not be blank`);
    out.push({ key, value: args[j + 1] ?? '', noDelim: args[j + 2] === '' });
  }
  return out;
}

function parseEnv(req: Req): EnvCommand {
  req.flags.parse();
  const env = parseKvps(req.args, 'ENV');
  return done(req, true, { name: 'env', env });
}

function parseLabel(req: Req): LabelCommand {
  req.flags.parse();
  const labels = parseKvps(req.args, 'LABEL');
  return done(req, true, { name: 'label', labels });
}

function parseMaintainer(req: Req): MaintainerCommand {
  if (req.args.length !== 1) throw errExactlyOne('MAINTAINER');
  req.flags.parse();
  return done(req, false, { name: 'maintainer', maintainer: req.args[0] ?? '' });
}

function parseSourcesAndDest(req: Req, cmd: string): SourcesAndDest {
  if (req.args.length < 2) throw errNoDest(cmd);
  const dest = req.args[req.args.length - 1] ?? '';
  if (parseHeredoc(dest) !== undefined) {
    throw err('KLN0404', `${cmd} cannot accept a heredoc as a destination`, 'heredocs can only be sources', req.node.args[req.node.args.length - 1]);
  }
  const bodies = new Map<string, string>();
  for (const h of req.node.heredocs) bodies.set(h.name, h.content);
  const sourcePaths: string[] = [];
  const sourceContents: SourceContent[] = [];
  for (const arg of req.args.slice(0, -1)) {
    const h = parseHeredoc(arg);
    if (h !== undefined) {
      let data = bodies.get(h.name) ?? '';
      if (h.chomp) data = chompHeredocContent(data);
      sourceContents.push({ path: h.name, data, expand: h.expand });
    } else {
      sourcePaths.push(arg);
    }
  }
  return { destPath: dest, sourcePaths, sourceContents };
}

function parseAdd(req: Req): AddCommand {
  if (req.args.length < 2) throw errNoDest('ADD');
  const chown = req.flags.addString('chown', '');
  const chmod = req.flags.addString('chmod', '');
  const link = req.flags.addBool('link', false);
  const keepGitDir = req.flags.addBool('keep-git-dir', false);
  const checksum = req.flags.addString('checksum', '');
  const exclude = req.flags.addStrings('exclude');
  const unpack = req.flags.addBool('unpack', false);
  req.flags.parse();
  const sd = parseSourcesAndDest(req, 'ADD');
  return done(req, true, {
    name: 'add' as const,
    ...sd,
    chown: chown.value,
    chmod: chmod.value,
    link: link.isTrue(),
    keepGitDir: req.flags.isUsed('keep-git-dir') ? keepGitDir.isTrue() : undefined,
    checksum: checksum.value,
    excludePatterns: exclude.values,
    unpack: req.flags.isUsed('unpack') ? unpack.isTrue() : undefined,
  });
}

function parseCopy(req: Req): CopyCommand {
  if (req.args.length < 2) throw errNoDest('COPY');
  const chown = req.flags.addString('chown', '');
  const from = req.flags.addString('from', '');
  const chmod = req.flags.addString('chmod', '');
  const link = req.flags.addBool('link', false);
  const parents = req.flags.addBool('parents', false);
  const exclude = req.flags.addStrings('exclude');
  req.flags.parse();
  const sd = parseSourcesAndDest(req, 'COPY');
  return done(req, true, {
    name: 'copy' as const,
    ...sd,
    from: from.value,
    chown: chown.value,
    chmod: chmod.value,
    link: link.isTrue(),
    parents: parents.isTrue(),
    excludePatterns: exclude.values,
  });
}

function parseFrom(req: Req): FromCommand {
  const args = req.args;
  let stageName = '';
  if (args.length === 3 && (args[1] ?? '').toLowerCase() === 'as') {
    stageName = (args[2] ?? '').toLowerCase();
    if (!VALID_STAGE_NAME.test(stageName)) {
      throw err(
        'KLN0407',
        `invalid name for build stage: ${JSON.stringify(args[2])}, name can't start with a number or contain symbols`,
        'stage names match [a-z][a-z0-9-_.]*',
        req.node.args[2],
      );
    }
  } else if (args.length !== 1) {
    throw err('KLN0404', 'FROM requires either one or three arguments', 'write FROM <image> [AS <name>]');
  }
  const platform = req.flags.addString('platform', '');
  req.flags.parse();
  return done(req, false, {
    name: 'from' as const,
    stageName,
    baseName: args[0] ?? '',
    platform: platform.value,
    comment: getComment(req.node.prevComment, stageName),
  });
}

function parseOnBuild(req: Req): OnbuildCommand {
  const trigger = req.node.next;
  if (req.args.length === 0 || trigger === undefined) throw errAtLeastOne('ONBUILD');
  req.flags.parse();
  const t = (req.args[0] ?? '').trim().toUpperCase();
  if (t === 'ONBUILD') throw err('KLN0406', 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  if (t === 'MAINTAINER' || t === 'FROM') throw err('KLN0406', `${t} isn't allowed as an ONBUILD trigger`);
  let expression = req.node.original.replace(/^\s*ONBUILD\s*/i, '');
  for (const h of req.node.heredocs) expression += `\n${h.content}${h.name}`;
  return done(req, false, { name: 'onbuild', expression, trigger });
}

function parseWorkdir(req: Req): WorkdirCommand {
  if (req.args.length !== 1) throw errExactlyOne('WORKDIR');
  req.flags.parse();
  return done(req, true, { name: 'workdir', path: req.args[0] ?? '' });
}

function shellDependent(req: Req, emptyAsNil: boolean): ShellDependantCmdLine {
  const files = req.node.heredocs.map((h) => ({ name: h.name, data: h.content, chomp: h.chomp, expand: h.expand }));
  let cmdLine: string[] = req.args.length === 0 ? [] : req.node.json ? req.args : [req.args.join(' ')];
  if (emptyAsNil && cmdLine.length === 0) cmdLine = [];
  return { cmdLine, files, prependShell: !req.node.json };
}

/** Validates mounts before variables are known: values with `$` are deferred to the converter. */
const staticLex = new ShellLex('\\');
function staticExpander(escapeToken: string): MountExpander {
  const lex = escapeToken === '\\' ? staticLex : new ShellLex(escapeToken);
  return (v) => (v.includes('$') ? DEFER : lex.processWord(v, new Map()));
}

function parseRun(req: Req): RunCommand {
  const mount = req.flags.addStrings('mount');
  const network = req.flags.addString('network', 'default');
  const security = req.flags.addString('security', 'sandbox');
  req.flags.parse();
  const cmd = shellDependent(req, false);
  const mountFlags = req.node.flags.filter((f) => /^--mount=/.test(f.value));
  const mountWords: Word[] = mount.values.map((value, i) => ({ value, position: mountFlags[i]?.position ?? req.node.location.start }));
  const mounts: MountSpec[] = [];
  mount.values.forEach((spec, i) => {
    const at = mountFlags[i];
    try {
      parseMount(spec); // BuildKit's parse-time check (from)
      mounts.push(parseMount(spec, staticExpander(req.escapeToken)));
    } catch (e) {
      if (e instanceof KilnError && at !== undefined) e.withLocation({ file: '', ...at.position });
      throw e;
    }
  });
  if (!(NETWORK_MODES as readonly string[]).includes(network.value)) {
    throw err('KLN0421', `network mode ${JSON.stringify(network.value)} not supported`, `use one of ${NETWORK_MODES.join(', ')}`,
      req.node.flags.find((f) => f.value.startsWith('--network')));
  }
  if (!(SECURITY_MODES as readonly string[]).includes(security.value)) {
    throw err('KLN0421', `security ${JSON.stringify(security.value)} is not valid`, `use one of ${SECURITY_MODES.join(', ')}`,
      req.node.flags.find((f) => f.value.startsWith('--security')));
  }
  return done(req, mounts.length > 0, {
    name: 'run' as const,
    ...cmd,
    mountSpecs: mountWords,
    mounts,
    network: network.value as NetworkMode,
    security: security.value as SecurityMode,
  });
}

function parseCmd(req: Req): CmdCommand {
  req.flags.parse();
  return done(req, false, { name: 'cmd' as const, ...shellDependent(req, false) });
}

function parseEntrypoint(req: Req): EntrypointCommand {
  req.flags.parse();
  return done(req, false, { name: 'entrypoint' as const, ...shellDependent(req, true) });
}

function parseInterval(req: Req, name: string, value: string): number {
  if (value === '') return 0;
  let d: number;
  try {
    d = parseGoDuration(value);
  } catch (e) {
    throw err('KLN0405', (e as Error).message, 'use a duration such as 30s, 1m30s or 500ms', req.node.flags.find((f) => f.value.startsWith(`--${name}=`)));
  }
  if (d === 0) return 0;
  if (d < 1e6) {
    throw err('KLN0405', `Interval ${JSON.stringify(name)} cannot be less than 1ms`, undefined, req.node.flags.find((f) => f.value.startsWith(`--${name}=`)));
  }
  return d;
}

function parseHealthcheck(req: Req): HealthCheckCommand {
  if (req.args.length === 0) throw errAtLeastOne('HEALTHCHECK');
  let typ = (req.args[0] ?? '').toUpperCase();
  const args = req.args.slice(1);
  if (typ === 'NONE') {
    if (args.length !== 0) throw err('KLN0404', 'HEALTHCHECK NONE takes no arguments');
    return done(req, false, {
      name: 'healthcheck',
      health: { test: ['NONE'], interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0 },
    });
  }
  const interval = req.flags.addString('interval', '');
  const timeout = req.flags.addString('timeout', '');
  const startPeriod = req.flags.addString('start-period', '');
  const startInterval = req.flags.addString('start-interval', '');
  const retries = req.flags.addString('retries', '');
  req.flags.parse();
  if (typ !== 'CMD') throw err('KLN0405', `Unknown type ${JSON.stringify(typ)} in HEALTHCHECK (try CMD)`, 'write HEALTHCHECK CMD <command> or HEALTHCHECK NONE');
  const cmdSlice = args.length === 0 ? [] : req.node.json ? args : [args.join(' ')];
  if (cmdSlice.length === 0) throw err('KLN0404', 'Missing command after HEALTHCHECK CMD');
  if (!req.node.json) typ = 'CMD-SHELL';
  let r = 0;
  if (retries.value !== '') {
    const at = req.node.flags.find((f) => f.value.startsWith('--retries='));
    if (!/^[+-]?\d+$/.test(retries.value)) {
      throw err('KLN0405', `strconv.ParseInt: parsing ${JSON.stringify(retries.value)}: invalid syntax`, 'use a whole number', at);
    }
    r = Number.parseInt(retries.value, 10);
    if (r < 0) throw err('KLN0405', `--retries cannot be negative (${r})`, undefined, at);
  }
  return done(req, false, {
    name: 'healthcheck',
    health: {
      test: [typ, ...cmdSlice],
      interval: parseInterval(req, 'interval', interval.value),
      timeout: parseInterval(req, 'timeout', timeout.value),
      startPeriod: parseInterval(req, 'start-period', startPeriod.value),
      startInterval: parseInterval(req, 'start-interval', startInterval.value),
      retries: r,
    },
  });
}

function parseExpose(req: Req): ExposeCommand {
  if (req.args.length === 0) throw errAtLeastOne('EXPOSE');
  req.flags.parse();
  const ports = [...req.args].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return done(req, true, { name: 'expose', ports });
}

function parseUser(req: Req): UserCommand {
  if (req.args.length !== 1) throw errExactlyOne('USER');
  req.flags.parse();
  return done(req, true, { name: 'user', user: req.args[0] ?? '' });
}

function parseVolume(req: Req): VolumeCommand {
  if (req.args.length === 0) throw errAtLeastOne('VOLUME');
  req.flags.parse();
  const volumes: string[] = [];
  for (const v of req.args) {
    const t = v.trim();
    if (t === '') throw err('KLN0405', 'VOLUME specified can not be an empty string');
    volumes.push(t);
  }
  return done(req, true, { name: 'volume', volumes });
}

function parseStopSignal(req: Req): StopSignalCommand {
  if (req.args.length !== 1) throw errExactlyOne('STOPSIGNAL');
  // BuildKit does not check STOPSIGNAL's flags.
  return done(req, true, { name: 'stopsignal', signal: req.args[0] ?? '' });
}

function parseArg(req: Req): ArgCommand {
  if (req.args.length < 1) throw errAtLeastOne('ARG');
  req.flags.parse();
  const args = req.args.map((a) => {
    const eq = a.indexOf('=');
    const key = eq < 0 ? a : a.slice(0, eq);
    if (eq === 0) throw err('KLN0404', 'ARG names can not be blank');
    return { key, value: eq < 0 ? undefined : a.slice(eq + 1), comment: getComment(req.node.prevComment, key) };
  });
  return done(req, true, { name: 'arg', args });
}

function parseShell(req: Req): ShellCommand {
  req.flags.parse();
  const shell = req.args.length === 0 ? [] : req.node.json ? req.args : [req.args.join(' ')];
  if (shell.length === 0) throw errAtLeastOne('SHELL');
  if (!req.node.json) {
    throw err('KLN0405', 'SHELL requires the arguments to be in JSON form', 'write SHELL ["/bin/sh", "-c"]');
  }
  return done(req, false, { name: 'shell', shell });
}

/**
 * Parse a whole Dockerfile AST into meta ARGs and stages (BuildKit's instructions.Parse).
 * Throws the first {@link KilnError}, located (file, line, column) with the instruction text.
 */
export function parseStages(ast: ParseResult | readonly Node[], options: InstructionOptions = {}): Stages {
  const file = options.file ?? 'Dockerfile';
  const children = 'children' in ast ? ast.children : ast;
  const opts: InstructionOptions = { ...options, escapeToken: options.escapeToken ?? ('children' in ast ? ast.escapeToken : '\\') };
  const metaArgs: ArgCommand[] = [];
  const stages: { stage: Omit<Stage, 'commands'>; commands: Command[] }[] = [];
  for (const n of children) {
    const cmd = parseInstruction(n, opts);
    if (cmd.name === 'from') {
      stages.push({
        stage: {
          name: cmd.stageName,
          index: stages.length,
          baseName: cmd.baseName,
          platform: cmd.platform,
          sourceCode: cmd.code,
          comment: cmd.comment,
          location: cmd.location,
          node: n,
        },
        commands: [],
      });
      continue;
    }
    const current = stages[stages.length - 1];
    if (current === undefined) {
      if (cmd.name === 'arg') {
        metaArgs.push(cmd);
        continue;
      }
      throw new KilnError('KLN0406', 'no build stage in current context', {
        location: { file, ...n.location.start },
        source: n.original,
        hint: 'only ARG may come before the first FROM',
      });
    }
    current.commands.push(cmd);
  }
  return { metaArgs, stages: stages.map((s) => ({ ...s.stage, commands: s.commands })) };
}

/** Result of {@link parseDockerfile}: the AST plus its stages. */
export interface ParsedDockerfile extends Stages {
  /** The parser's output (directives, escape token, warnings, nodes). */
  readonly ast: ParseResult;
}

/**
 * Parse Dockerfile text all the way to stages: {@link parse} then {@link parseStages}.
 * Throws {@link KilnError} with `file:line:column`.
 */
export function parseDockerfile(text: string, options: InstructionOptions = {}): ParsedDockerfile {
  const ast = parse(text, options.file === undefined ? {} : { file: options.file });
  return { ast, ...parseStages(ast, options) };
}

/**
 * Find a stage by name (case-insensitive; with duplicate names the last one, as BuildKit's
 * statesByName) or by index (`"0"`).
 * Only stages before `before` (exclusive) are searched when given, as `COPY --from` requires.
 */
export function findStage(stages: readonly Stage[], nameOrIndex: string, before = stages.length): Stage | undefined {
  const lower = nameOrIndex.toLowerCase();
  // the last stage with that name wins, as BuildKit's statesByName map
  const byName = stages.slice(0, before).findLast((s) => s.name !== '' && s.name === lower);
  if (byName !== undefined) return byName;
  if (/^\d+$/.test(nameOrIndex)) {
    const i = Number.parseInt(nameOrIndex, 10);
    return i < before ? stages[i] : undefined;
  }
  return undefined;
}
