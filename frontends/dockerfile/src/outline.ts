/**
 * The outline subrequest (`buildx build --call=outline`, requestid `frontend.outline`): what the
 * target stage takes as input, as BuildKit's dockerfile2llb Dockerfile2Outline reports it: the
 * build args it uses (default or --build-arg value, the `# NAME description` comment above the
 * ARG, where it is declared), the secret ids and ssh ids its RUN --mounts ask for, over the target,
 * its base stages and the stages it copies or mounts from. Nothing is resolved or solved: base
 * image environments are not read (an ARG default that expands a variable only the base image
 * sets shows it empty).
 */
import type { FrontendResult } from '@kiln/llb-core';
import { KilnError } from './errors.js';
import type { Command } from './instructions/commands.js';
import { expandCommand } from './instructions/expand.js';
import { parseDockerfile } from './instructions/parse.js';
import type { Range } from './parser/ast.js';
import { ShellLex } from './shell/lex.js';
import { DispatchState, DispatchStates } from './convert/dispatch-state.js';
import { NON_ENV_ARGS } from './convert/names.js';
import { argsEnv, platformArgs, platformOptions, toPlatformOption } from './convert/platform-args.js';
import type { ArgValue } from './convert/dispatch-state.js';
import type { ConvertOptions, NamedContext } from './convert/options.js';
import { lookupNamedContext } from './convert/resolve.js';
import { toCommand, validateCircularDependency } from './convert/stage-graph.js';
import { goBytes, goJsonIndent, pbLocation, tabwrite, type GoJsonValue } from './subrequest-format.js';

/** The `requestid` frontend option that asks for the outline (`--call=outline`). */
export const OUTLINE_REQUEST = 'frontend.outline';

/** One build arg of the outline (BuildKit's outline.Arg). */
export interface OutlineArg {
  readonly name: string;
  readonly description: string;
  readonly value: string;
  readonly location: Range;
}

/** One secret or ssh id of the outline (BuildKit's outline.Secret / outline.SSH). */
export interface OutlineMount {
  readonly name: string;
  readonly required: boolean;
  readonly location: Range;
}

/** BuildKit's outline.Outline for one target. */
export interface Outline {
  /** The target stage's name (`''` for an unnamed one). */
  readonly name: string;
  /** The `# <stage> <description>` comment above its FROM. */
  readonly description: string;
  readonly args: readonly OutlineArg[];
  readonly secrets: readonly OutlineMount[];
  readonly ssh: readonly OutlineMount[];
}

/** What the outline needs of the build request. */
export interface OutlineOptions {
  readonly file?: string;
  readonly target?: string;
  readonly buildArgs?: ReadonlyMap<string, string>;
  /** The target platform, for the TARGET* args a FROM may expand. */
  readonly targetPlatform?: ConvertOptions['targetPlatform'];
  readonly buildPlatforms?: ConvertOptions['buildPlatforms'];
  /** `--build-context` names: a stage one replaces runs none of its instructions (nor its FROM). */
  readonly namedContexts?: ReadonlyMap<string, NamedContext>;
}

interface ArgInfo {
  readonly value: string;
  readonly description: string;
  readonly location: Range;
  /** Meta args this one's default expands (used with it). */
  readonly deps: ReadonlySet<string>;
}

/** BuildKit's outlineCapture of one stage. */
interface Capture {
  readonly allArgs: Map<string, ArgInfo>;
  readonly usedArgs: Set<string>;
  readonly secrets: Map<string, { required: boolean; location: Range }>;
  readonly ssh: Map<string, { required: boolean; location: Range }>;
}

/** `path.Base` of a mount target. */
function baseName(p: string): string {
  const parts = p.split('/').filter((s) => s !== '');
  return parts[parts.length - 1] ?? '/';
}

/**
 * The outline of the target stage (the last one without `target`). Throws KilnError for an
 * unknown target, a stage cycle or bad variable syntax, located as a build would.
 */
export function dockerfileOutline(dockerfile: Uint8Array | string, options: OutlineOptions = {}): Outline {
  const file = options.file ?? 'Dockerfile';
  const text = typeof dockerfile === 'string' ? dockerfile : new TextDecoder().decode(dockerfile);
  const parsed = parseDockerfile(text, { file });
  if (parsed.stages.length === 0) throw new KilnError('KLN0508', 'dockerfile contains no stages to build', { location: { file, line: 1, column: 1 }, hint: 'add a FROM instruction' });
  const buildArgs = options.buildArgs ?? new Map<string, string>();
  const named = options.namedContexts ?? new Map<string, NamedContext>();
  const shlex = new ShellLex(parsed.ast.escapeToken);
  const platforms = platformOptions(options.targetPlatform, options.buildPlatforms);
  const located = (e: unknown, cmd: { location: Range; node: { original: string } }): unknown => {
    if (e instanceof KilnError && e.location === undefined) e.withLocation({ file, ...cmd.location.start }, cmd.node.original);
    return e;
  };

  // Meta ARGs, as toDispatchState: a build arg replaces the default, else the default expands
  // the platform args and earlier meta ARGs (those it names are its deps).
  const metaArgs: ArgValue[] = platformArgs(platforms).map((a) => (buildArgs.has(a.key) ? { key: a.key, value: buildArgs.get(a.key) } : a));
  const global = new Map<string, ArgInfo>();
  for (const cmd of parsed.metaArgs) {
    for (const arg of cmd.args) {
      let value = buildArgs.get(arg.key);
      let deps = new Set<string>();
      if (value === undefined && arg.value !== undefined) {
        try {
          const r = shlex.processWordWithMatches(arg.value, argsEnv(metaArgs));
          value = r.result;
          deps = new Set(r.matched);
        } catch (e) {
          throw located(e, cmd);
        }
        // ARG A=${A}x: A stands for what its earlier declaration used (buildMetaArgs merges the deps)
        if (deps.delete(arg.key)) for (const k of global.get(arg.key)?.deps ?? []) deps.add(k);
      }
      metaArgs.push({ key: arg.key, value });
      global.set(arg.key, { value: value ?? '', description: arg.comment, location: cmd.location, deps });
    }
  }
  const metaEnv = argsEnv(metaArgs);

  const states = new DispatchStates();
  const captures = new Map<DispatchState, Capture>();
  const capture = (d: DispatchState): Capture => {
    let c = captures.get(d);
    if (c === undefined) {
      c = { allArgs: new Map(global), usedArgs: new Set(), secrets: new Map(), ssh: new Map() };
      captures.set(d, c);
    }
    return c;
  };
  parsed.stages.forEach((stage, i) => {
    const c: Capture = { allArgs: new Map(global), usedArgs: new Set(), secrets: new Map(), ssh: new Map() };
    // the meta args FROM's image and --platform name are used by the stage
    let base = stage.baseName;
    let platform = '';
    const used = new Set<string>();
    try {
      for (const [word, isBase] of [[stage.baseName, true], [stage.platform, false]] as const) {
        if (word === '') continue;
        const r = shlex.processWordWithMatches(word, metaEnv);
        for (const k of r.matched) used.add(k);
        if (isBase) base = r.result;
        else platform = r.result;
      }
    } catch (e) {
      throw located(e, stage);
    }
    const ds = new DispatchState(stage, { baseName: base, stageName: stage.name === '' ? `stage-${i}` : stage.name });
    captures.set(ds, c);
    states.add(ds);
    // A stage a --build-context replaces is that context, as in the build (convert.ts) and
    // BuildKit's buildDispatchStates: no base, its FROM's args unused, its instructions not run.
    if (stage.name !== '' && named.size > 0) {
      let p = platforms.targetPlatform;
      try {
        if (platform !== '') p = toPlatformOption(platform);
      } catch {
        // a bad --platform fails the build at this FROM; the outline looks the name up as for the target
      }
      if (lookupNamedContext(named, stage.name, p) !== undefined) {
        ds.base = undefined;
        ds.fromNamedContext = true;
        return;
      }
    }
    for (const k of used) c.usedArgs.add(k);
  });
  let target: DispatchState | undefined;
  if (options.target === undefined || options.target === '') target = states.states[states.states.length - 1];
  else {
    target = states.findByName(options.target);
    if (target === undefined) {
      throw new KilnError('KLN0501', `target stage ${JSON.stringify(options.target)} could not be found`, {
        hint: states.names().length > 0 ? `stages are ${states.names().join(', ')}` : 'name a stage with FROM <image> AS <name>',
      });
    }
  }
  if (target === undefined) throw new KilnError('KLN0508', 'dockerfile contains no stages to build');
  for (const d of [...states.states]) {
    for (const cmd of d.stage.commands) {
      let sc;
      try {
        sc = toCommand(cmd, states);
      } catch (e) {
        throw located(e, cmd);
      }
      for (const src of sc.sources) {
        if (src === undefined) continue;
        d.deps.set(src, cmd);
        if (src.unregistered) states.add(src);
      }
    }
  }
  validateCircularDependency(states.states, file);

  // "Dispatch" the target's stages, bases first: only what the outline records.
  const envs = new Map<DispatchState, Map<string, string>>();
  const dispatch = (d: DispatchState): void => {
    if (envs.has(d)) return;
    envs.set(d, new Map());
    if (d.base !== undefined) dispatch(d.base);
    for (const dep of d.deps.keys()) dispatch(dep);
    const env = new Map(d.base === undefined ? [] : envs.get(d.base));
    envs.set(d, env);
    const c = capture(d);
    for (const raw of d.fromNamedContext ? [] : d.stage.commands) {
      if (raw.name !== 'arg' && raw.name !== 'env' && raw.name !== 'run') continue;
      const cmd: Command = expandCommand(raw, { word: (w) => shlex.processWord(w, env) }, file);
      if (cmd.name === 'env') for (const kv of cmd.env) env.set(kv.key, kv.value);
      else if (cmd.name === 'arg') {
        for (const arg of cmd.args) {
          let value = buildArgs.get(arg.key) ?? arg.value;
          // a bare ARG of a meta ARG's name takes it, and the meta ARG's own entry stays
          const inherited = value === undefined && metaArgs.some((m) => m.key === arg.key);
          if (inherited) for (const m of metaArgs) if (m.key === arg.key) value = m.value;
          if (!inherited) c.allArgs.set(arg.key, { value: value ?? '', description: arg.comment, location: cmd.location, deps: new Set() });
          c.usedArgs.add(arg.key);
          if (value !== undefined && !NON_ENV_ARGS.has(arg.key)) env.set(arg.key, value);
        }
      } else if (cmd.name === 'run') {
        for (const m of cmd.mounts) {
          if (m.type === 'secret') {
            const id = m.source !== '' ? m.source : m.cacheId !== '' ? m.cacheId : m.target !== '' ? baseName(m.target) : (m.env ?? '');
            if (id !== '' && !c.secrets.has(id)) c.secrets.set(id, { required: m.required, location: cmd.location });
          } else if (m.type === 'ssh') {
            const id = m.cacheId === '' ? 'default' : m.cacheId;
            if (!c.ssh.has(id)) c.ssh.set(id, { required: m.required, location: cmd.location });
          }
        }
      }
    }
  };
  dispatch(target);

  // Collected as BuildKit's dispatchState.args/secrets/ssh: the stage's own first, then its
  // base's, then each dependency's; a name seen once is not listed again.
  const seenArgs = new Set<string>();
  const seenSecrets = new Set<string>();
  const seenSsh = new Set<string>();
  const args: OutlineArg[] = [];
  const secrets: OutlineMount[] = [];
  const ssh: OutlineMount[] = [];
  const walked = new Set<DispatchState>();
  const walk = (d: DispatchState): void => {
    if (walked.has(d)) return;
    walked.add(d);
    const c = capture(d);
    // markAllUsed: an arg in use puts the meta args its default expands in use
    const pending = [...c.usedArgs];
    for (let k = pending.pop(); k !== undefined; k = pending.pop()) {
      for (const dep of c.allArgs.get(k)?.deps ?? []) {
        if (c.usedArgs.has(dep)) continue;
        c.usedArgs.add(dep);
        pending.push(dep);
      }
    }
    for (const k of c.usedArgs) {
      const a = c.allArgs.get(k);
      if (a === undefined || seenArgs.has(k)) continue;
      seenArgs.add(k);
      args.push({ name: k, description: a.description, value: a.value, location: a.location });
    }
    for (const [list, seen, out] of [[c.secrets, seenSecrets, secrets], [c.ssh, seenSsh, ssh]] as const) {
      for (const [k, v] of list) {
        if (seen.has(k)) continue;
        seen.add(k);
        out.push({ name: k, ...v });
      }
    }
    if (d.base !== undefined) walk(d.base);
    for (const dep of d.deps.keys()) walk(dep);
  };
  walk(target);
  const byLine = (a: { location: Range }, b: { location: Range }): number => a.location.start.line - b.location.start.line;
  return { name: target.stage.name, description: target.stage.comment, args: args.sort(byLine), secrets: secrets.sort(byLine), ssh: ssh.sort(byLine) };
}

/** The outline as BuildKit's `result.json`: outline.Outline marshaled with its Dockerfile as the one source. */
export function outlineJson(o: Outline, dockerfile: Uint8Array): string {
  const empty = <T>(l: readonly T[]): readonly T[] | undefined => (l.length === 0 ? undefined : l);
  const mount = (m: OutlineMount): GoJsonValue => ({ name: m.name, required: m.required ? true : undefined, location: pbLocation([m.location]) });
  return goJsonIndent({
    name: o.name === '' ? undefined : o.name,
    description: o.description === '' ? undefined : o.description,
    args: empty(o.args)?.map((a) => ({ name: a.name, description: a.description === '' ? undefined : a.description, value: a.value === '' ? undefined : a.value, location: pbLocation([a.location]) })),
    secrets: empty(o.secrets)?.map(mount),
    ssh: empty(o.ssh)?.map(mount),
    sources: [goBytes(dockerfile)],
  });
}

interface OutlineJsonShape {
  name?: string;
  description?: string;
  args?: { name?: string; description?: string; value?: string }[];
  secrets?: { name?: string; required?: boolean }[];
  ssh?: { name?: string; required?: boolean }[];
}

/**
 * BuildKit's outline.PrintOutline, which buildx prints for `--call=outline`: the target and its
 * description, then tables of build args, secrets and ssh ids, each followed by a blank line;
 * nothing at all for a target without any.
 */
export function printOutline(resultJson: string): string {
  const o = JSON.parse(resultJson) as OutlineJsonShape;
  let out = '';
  if ((o.name ?? '') !== '' || (o.description ?? '') !== '') {
    const head = `TARGET:\t${o.name === undefined || o.name === '' ? '(default)' : o.name}\n${(o.description ?? '') === '' ? '' : `DESCRIPTION:\t${o.description}\n`}`;
    out += `${tabwrite(head, 1)}\n`;
  }
  if ((o.args ?? []).length > 0) {
    out += `${tabwrite(`BUILD ARG\tVALUE\tDESCRIPTION\n${(o.args ?? []).map((a) => `${a.name ?? ''}\t${a.value ?? ''}\t${a.description ?? ''}\n`).join('')}`, 3)}\n`;
  }
  for (const [title, list] of [['SECRET', o.secrets], ['SSH', o.ssh]] as const) {
    if ((list ?? []).length === 0) continue;
    out += `${tabwrite(`${title}\tREQUIRED\n${(list ?? []).map((s) => `${s.name ?? ''}\t${s.required === true ? 'true' : ''}\n`).join('')}`, 3)}\n`;
  }
  return out;
}

/** The `frontend.outline` answer: `result.json`, `result.txt` (its text) and `version`. */
export function outline(dockerfile: Uint8Array, options: OutlineOptions): FrontendResult {
  const json = outlineJson(dockerfileOutline(dockerfile, options), dockerfile);
  const enc = new TextEncoder();
  return {
    metadata: new Map([
      ['result.json', enc.encode(json)],
      ['result.txt', enc.encode(printOutline(json))],
      ['version', enc.encode('1.0.0')],
    ]),
  };
}
