/**
 * Variable expansion of typed commands, as BuildKit's `Expand` / `ExpandRaw` methods
 * (instructions/commands.go). The converter calls {@link expandCommand} with the stage's
 * environment right before dispatching each command.
 */
import { KilnError } from '../errors.js';
import type { Word } from '../parser/ast.js';
import { ShellLex } from '../shell/lex.js';
import type { EnvGetter } from '../shell/lex.js';
import type { Command, KeyValuePair, SourceContent } from './commands.js';
import { parseMount } from './mount.js';

/** Expands one word (BuildKit's SingleWordExpander). Throws on bad syntax. */
export type WordExpander = (word: string) => string;

/** Expanders used by {@link expandCommand}. */
export interface CommandExpanders {
  /** For ordinary words: `ShellLex.processWord` with the stage env. */
  word: WordExpander;
  /** For heredoc bodies (quotes kept): see {@link rawExpander}. Defaults to `word`. */
  raw?: WordExpander;
}

/** The word expander BuildKit uses in dispatch: `processWord` with the file's escape token. */
export function wordExpander(env: EnvGetter, escapeToken = '\\'): WordExpander {
  const lex = new ShellLex(escapeToken);
  return (w) => lex.processWord(w, env);
}

/** The heredoc-body expander BuildKit uses (`\` escape, quotes not processed). */
export function rawExpander(env: EnvGetter): WordExpander {
  const lex = new ShellLex('\\', { skipProcessQuotes: true });
  return (w) => lex.processWord(w, env);
}

function kvps(list: readonly KeyValuePair[], x: WordExpander): KeyValuePair[] {
  return list.map((p) => ({ ...p, key: x(p.key), value: x(p.value) }));
}

function contents(list: readonly SourceContent[], x: WordExpander): SourceContent[] {
  return list.map((c) => (c.expand ? { ...c, data: x(c.data) } : c));
}

/**
 * Return a copy of `cmd` with variables expanded where BuildKit expands them:
 * ENV/LABEL keys and values; ADD chown, checksum, sources, dest and heredoc sources (raw);
 * COPY chown, sources, dest and heredoc sources (raw); WORKDIR, USER, STOPSIGNAL, each VOLUME;
 * ARG keys and defaults; RUN `--mount` options (re-parsed and fully validated).
 * Other commands are returned unchanged. Errors are KilnErrors located at the instruction.
 */
export function expandCommand<C extends Command>(cmd: C, expanders: CommandExpanders, file = 'Dockerfile'): C {
  const x = expanders.word;
  const raw = expanders.raw ?? x;
  try {
    return expandInner(cmd, x, raw);
  } catch (e) {
    if (e instanceof KilnError) e.withLocation({ file, ...cmd.location.start }, cmd.node.original);
    throw e;
  }
}

function expandInner<C extends Command>(c: C, x: WordExpander, raw: WordExpander): C {
  const cmd: Command = c;
  let out: Command;
  switch (cmd.name) {
    case 'env':
      out = { ...cmd, env: kvps(cmd.env, x) };
      break;
    case 'label':
      out = { ...cmd, labels: kvps(cmd.labels, x) };
      break;
    case 'add':
      out = {
        ...cmd,
        chown: x(cmd.chown),
        checksum: x(cmd.checksum),
        sourcePaths: cmd.sourcePaths.map(x),
        destPath: x(cmd.destPath),
        sourceContents: contents(cmd.sourceContents, raw),
      };
      break;
    case 'copy':
      out = {
        ...cmd,
        chown: x(cmd.chown),
        sourcePaths: cmd.sourcePaths.map(x),
        destPath: x(cmd.destPath),
        sourceContents: contents(cmd.sourceContents, raw),
      };
      break;
    case 'workdir':
      out = { ...cmd, path: x(cmd.path) };
      break;
    case 'user':
      out = { ...cmd, user: x(cmd.user) };
      break;
    case 'stopsignal':
      out = { ...cmd, signal: x(cmd.signal) };
      break;
    case 'volume':
      out = { ...cmd, volumes: cmd.volumes.map(x) };
      break;
    case 'arg':
      out = { ...cmd, args: cmd.args.map((a) => ({ ...a, key: x(a.key), value: a.value === undefined ? undefined : x(a.value) })) };
      break;
    case 'run':
      out = { ...cmd, mounts: cmd.mountSpecs.map((w) => expandMount(w, x)) };
      break;
    default:
      out = cmd;
  }
  return out as C;
}

function expandMount(w: Word, x: WordExpander): ReturnType<typeof parseMount> {
  try {
    return parseMount(w.value, x);
  } catch (e) {
    if (e instanceof KilnError) e.withLocation({ file: '', ...w.position });
    throw e;
  }
}
