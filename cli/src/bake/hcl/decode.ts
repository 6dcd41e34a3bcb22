import { dirname } from 'node:path';
import { formatPlatform, hostPlatform } from '@kiln/runtime';
import type { BakeConfig } from '../config.js';
import { BakeError, type BakeLocation } from '../errors.js';
import type { BakeFile } from '../files.js';
import { decodeTarget } from '../target.js';
import type { Attribute, Block, Expr, HclFile, Pos, Value } from './ast.js';
import { evalError, evaluate, limitError, Scope, toBool, toStr, typeName, type HclFunction } from './eval.js';
import { stdlib } from './functions.js';

type Env = Readonly<Record<string, string | undefined>>;

const loc = (p: Pos): BakeLocation => ({ file: p.file, line: p.line, column: p.column });

/** A global name of the bake files: a variable (env-overridable) or a top-level attribute. */
interface Global {
  readonly name: string;
  readonly pos: Pos;
  /** The default / attribute expression (undefined: a variable without a default). */
  readonly expr: Expr | undefined;
  readonly variable: boolean;
  readonly validations: readonly Block[];
}

/** buildx's typing of an environment value by the variable's default. */
function fromEnv(name: string, raw: string, dflt: Value, pos: Pos): Value {
  if (typeof dflt === 'boolean') {
    // Go's strconv.ParseBool, as buildx parses it.
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
    throw evalError(`variable ${name}: the environment value "${raw}" is not a bool (the default is ${String(dflt)})`, pos, `set ${name}=true or ${name}=false`);
  }
  if (typeof dflt === 'number') {
    // A decimal number, as Go's strconv.ParseFloat reads it; buildx refuses Inf and NaN.
    const n = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isFinite(n)) throw evalError(`variable ${name}: the environment value "${raw}" is not a number (the default is ${dflt})`, pos, `set ${name} to a number`);
    return n;
  }
  if (dflt !== null && typeof dflt === 'object') {
    try {
      const v = JSON.parse(raw) as Value;
      if (Array.isArray(dflt) === Array.isArray(v) && typeof v === 'object' && v !== null) return v;
    } catch {
      // reported below
    }
    throw evalError(`variable ${name}: the environment value must be JSON of the default's type (${typeName(dflt)})`, pos, `e.g. ${name}='${JSON.stringify(dflt)}'`);
  }
  return raw;
}

/**
 * The evaluation context of the bake files: variables (a `variable` block's default, or the
 * environment variable of that name, typed from the default, as buildx), top-level attributes,
 * user functions, the stdlib, buildx's BAKE_* built-ins and `target.NAME.KEY` references.
 */
class Globals {
  readonly #globals = new Map<string, Global>();
  readonly #values = new Map<string, Value>();
  readonly #evaluating = new Set<string>();
  readonly #functions = new Map<string, HclFunction>();
  readonly #targetRefs: (name: string, pos: Pos) => Value;
  readonly scope: Scope;

  constructor(
    readonly env: Env,
    targetRefs: (name: string, pos: Pos) => Value,
    readonly vars: Env = {},
    /** `BAKE_CMD_CONTEXT`: `cwd://`, or the command-context URL given after a remote definition's. */
    readonly cmdContext = 'cwd://',
  ) {
    this.#targetRefs = targetRefs;
    this.scope = new Scope(undefined, {
      variable: (name, pos) => this.value(name, pos),
      func: (name) => this.#functions.get(name) ?? stdlib(name),
      names: () => [...this.#globals.keys()],
      budget: { steps: 0, depth: 0 },
    });
  }

  add(g: Global): void {
    const prev = this.#globals.get(g.name);
    if (prev !== undefined && !(prev.variable && g.variable)) {
      throw new BakeError('KLN0853', `"${g.name}" is already defined at ${prev.pos.file}:${prev.pos.line}`, { location: loc(g.pos), hint: 'a name is a variable or a top-level attribute, once' });
    }
    // A later `variable` block of the same name (an override file) replaces the default.
    this.#globals.set(g.name, g.expr === undefined && prev?.expr !== undefined ? { ...g, expr: prev.expr } : g);
  }

  addFunction(block: Block): void {
    const name = block.labels[0];
    if (block.labels.length !== 1 || name === undefined) throw new BakeError('KLN0853', 'a function block has one label, its name', { location: loc(block.pos), hint: 'function "name" { params = [a] result = … }' });
    const attrs = new Map(block.body.attributes.map((a) => [a.name, a]));
    for (const a of attrs.keys()) if (!['params', 'variadic_params', 'result'].includes(a)) throw new BakeError('KLN0853', `function "${name}": unknown attribute "${a}"`, { location: loc(attrs.get(a)?.pos ?? block.pos), hint: 'a function has params, variadic_params and result' });
    const result = attrs.get('result');
    if (result === undefined) throw new BakeError('KLN0853', `function "${name}" has no result`, { location: loc(block.pos), hint: 'add result = EXPRESSION' });
    const names = (a: Attribute | undefined): string[] => {
      if (a === undefined) return [];
      const e = a.expr;
      if (e.kind === 'variable') return [e.name];
      if (e.kind !== 'tuple' || !e.items.every((x) => x.kind === 'variable')) throw new BakeError('KLN0853', `function "${name}": ${a.name} must be a list of names`, { location: loc(a.pos), hint: 'params = [a, b]' });
      return e.items.map((x) => (x.kind === 'variable' ? x.name : ''));
    };
    const params = names(attrs.get('params'));
    const variadic = names(attrs.get('variadic_params'))[0];
    this.#functions.set(name, (args, pos) => {
      if (args.length < params.length || (variadic === undefined && args.length > params.length)) {
        throw evalError(`${name}() takes ${params.length}${variadic === undefined ? '' : ' or more'} argument${params.length === 1 ? '' : 's'}, got ${args.length}`, pos);
      }
      const vars: Record<string, Value> = {};
      params.forEach((p, i) => (vars[p] = args[i] ?? null));
      if (variadic !== undefined) vars[variadic] = args.slice(params.length);
      if (this.#evaluating.has(`function:${name}`)) throw evalError(`function ${name} calls itself`, pos, 'functions cannot be recursive');
      this.#evaluating.add(`function:${name}`);
      try {
        return evaluate(result.expr, this.scope.child(vars));
      } finally {
        this.#evaluating.delete(`function:${name}`);
      }
    });
  }

  value(name: string, pos: Pos): Value | undefined {
    if (this.#values.has(name)) return this.#values.get(name);
    const g = this.#globals.get(name);
    if (g === undefined) {
      if (name === 'target') return this.#targetRefs(name, pos);
      if (name === 'BAKE_CMD_CONTEXT') return this.cmdContext;
      if (name === 'BAKE_LOCAL_PLATFORM') return formatPlatform(hostPlatform());
      return undefined;
    }
    if (this.#evaluating.has(name)) throw evalError(`variable ${name} refers to itself`, pos, 'break the cycle between the variables');
    this.#evaluating.add(name);
    try {
      const dflt = g.expr === undefined ? null : evaluate(g.expr, this.scope);
      const raw = !g.variable ? undefined : (this.vars[name] ?? (lookupAllowed(this.env) ? this.env[name] : undefined));
      const v = raw === undefined ? (g.expr === undefined ? '' : dflt) : fromEnv(name, raw, dflt, g.pos);
      this.#values.set(name, v);
      for (const vb of g.validations) {
        const attrs = new Map(vb.body.attributes.map((a) => [a.name, a]));
        const cond = attrs.get('condition');
        if (cond === undefined) continue;
        if (!toBool(evaluate(cond.expr, this.scope), cond.expr.pos, 'a validation condition')) {
          const msg = attrs.get('error_message');
          const text = msg === undefined ? `invalid value for variable ${name}` : toStr(evaluate(msg.expr, this.scope), msg.pos);
          throw new BakeError('KLN0852', `variable ${name}: ${text}`, { location: loc(cond.pos), hint: `the value is ${JSON.stringify(v)}` });
        }
      }
      return v;
    } finally {
      this.#evaluating.delete(name);
    }
  }
}

/** buildx's BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP turns the environment lookup of variables (and of Compose interpolation) off. */
export function lookupAllowed(env: Env): boolean {
  const v = (env['BUILDX_BAKE_DISABLE_VARS_ENV_LOOKUP'] ?? '').toLowerCase();
  return !['1', 't', 'true'].includes(v);
}

/** The attributes of a block body as an object value (for `target.NAME` references). */
function evalAttributes(attrs: readonly Attribute[], scope: Scope, skip: ReadonlySet<string>): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const a of attrs) if (!skip.has(a.name)) out[a.name] = evaluate(a.expr, scope);
  return out;
}

/**
 * Reads HCL bake files into `config` (the files merged in order, as buildx merges them): groups,
 * targets (matrix targets expanded, one per combination), variables and functions.
 */
export function loadHcl(config: BakeConfig, parsed: readonly { readonly file: BakeFile; readonly hcl: HclFile }[], env: Env, vars: Env = {}, cmdContext = 'cwd://'): void {
  const targets: { block: Block; file: BakeFile }[] = [];
  const groups: Block[] = [];
  const evaluatingTargets = new Set<string>();
  // Each referenced target is evaluated once (a chain of targets reading the previous one twice was exponential).
  const targetValues = new Map<string, Record<string, Value>>();
  // `target.NAME.KEY`: a target's attribute (of its blocks without a matrix, merged in order).
  const targetRef = (pos: Pos): Value =>
    new Proxy<Record<string, Value>>(
      {},
      {
        has: (_t, name) => typeof name === 'string' && targets.some((t) => t.block.labels[0] === name),
        ownKeys: () => [...new Set(targets.map((t) => t.block.labels[0] ?? ''))],
        getOwnPropertyDescriptor: (_t, name) => (typeof name === 'string' && targets.some((t) => t.block.labels[0] === name) ? { enumerable: true, configurable: true } : undefined),
        get: (_t, name) => {
          if (typeof name !== 'string') return undefined;
          const blocks = targets.filter((t) => t.block.labels[0] === name && !t.block.body.attributes.some((a) => a.name === 'matrix'));
          if (blocks.length === 0) return undefined;
          const done = targetValues.get(name);
          if (done !== undefined) return done;
          if (evaluatingTargets.has(name)) throw evalError(`target "${name}" refers to itself`, pos, 'break the cycle between the targets');
          evaluatingTargets.add(name);
          try {
            const out: Record<string, Value> = {};
            for (const b of blocks) Object.assign(out, evalAttributes(b.block.body.attributes, globals.scope, new Set(['name'])));
            targetValues.set(name, out);
            return out;
          } finally {
            evaluatingTargets.delete(name);
          }
        },
      },
    );
  const globals = new Globals(env, (_n, pos) => targetRef(pos), vars, cmdContext);
  for (const { hcl } of parsed) {
    for (const a of hcl.body.attributes) globals.add({ name: a.name, pos: a.pos, expr: a.expr, variable: false, validations: [] });
    for (const b of hcl.body.blocks) {
      if (b.type === 'variable') {
        const name = b.labels[0];
        if (b.labels.length !== 1 || name === undefined) throw new BakeError('KLN0853', 'a variable block has one label, its name', { location: loc(b.pos), hint: 'variable "TAG" { default = "latest" }' });
        for (const a of b.body.attributes) if (!['default', 'description', 'type'].includes(a.name)) throw new BakeError('KLN0853', `variable "${name}": unknown attribute "${a.name}"`, { location: loc(a.pos), hint: 'a variable has default and description' });
        for (const vb of b.body.blocks) if (vb.type !== 'validation') throw new BakeError('KLN0853', `variable "${name}": unknown block "${vb.type}"`, { location: loc(vb.pos) });
        globals.add({ name, pos: b.pos, expr: b.body.attributes.find((a) => a.name === 'default')?.expr, variable: true, validations: b.body.blocks });
        const d = b.body.attributes.find((a) => a.name === 'description')?.expr;
        const description = d?.kind === 'literal' && typeof d.value === 'string' ? d.value : config.variables.get(name)?.description;
        config.variables.set(name, { ...(description === undefined ? {} : { description }), value: () => globals.value(name, b.pos) });
      }
    }
  }
  for (const { hcl, file } of parsed) {
    for (const b of hcl.body.blocks) {
      switch (b.type) {
        case 'variable':
          break;
        case 'function':
          globals.addFunction(b);
          break;
        case 'target':
          if (b.labels.length !== 1) throw new BakeError('KLN0853', 'a target block has one label, its name', { location: loc(b.pos), hint: 'target "app" { … }' });
          if (b.body.blocks[0] !== undefined) throw new BakeError('KLN0853', `target "${b.labels[0] ?? ''}": unexpected block "${b.body.blocks[0].type}"`, { location: loc(b.body.blocks[0].pos), hint: 'a target has attributes only (KEY = VALUE)' });
          targets.push({ block: b, file });
          break;
        case 'group':
          if (b.labels.length !== 1) throw new BakeError('KLN0853', 'a group block has one label, its name', { location: loc(b.pos), hint: 'group "default" { targets = ["app"] }' });
          groups.push(b);
          break;
        default:
          throw new BakeError('KLN0853', `unknown block type "${b.type}"`, { location: loc(b.pos), hint: 'a bake file has target, group, variable and function blocks' });
      }
    }
  }
  // buildx resolves and validates every declared variable, used or not (Parse, then
  // validateVariables over p.vars): a validation block guards a value from the environment or
  // --var even before a target reads it (kiln validated only the variables a target used)
  for (const { hcl } of parsed) {
    for (const b of hcl.body.blocks) if (b.type === 'variable' && b.labels[0] !== undefined) globals.value(b.labels[0], b.pos);
  }
  for (const g of groups) {
    const name = g.labels[0] ?? '';
    let targetNames: string[] = [];
    let description: string | undefined;
    for (const a of g.body.attributes) {
      const v = evaluate(a.expr, globals.scope);
      if (a.name === 'targets') {
        if (!Array.isArray(v)) throw new BakeError('KLN0853', `group "${name}": targets must be a list of names`, { location: loc(a.pos) });
        targetNames = v.map((x) => toStr(x, a.expr.pos, 'a target name'));
      } else if (a.name === 'description') description = toStr(v, a.expr.pos);
      else if (a.name === 'matrix' || a.name === 'name') throw new BakeError('KLN0853', `${a.name} is not supported for groups`, { location: loc(a.pos) });
      else throw new BakeError('KLN0853', `group "${name}": unknown attribute "${a.name}"`, { location: loc(a.pos), hint: 'a group has targets and description' });
    }
    config.addGroup(name, { targets: targetNames, ...(description === undefined ? {} : { description }) });
  }
  const renamed = new Map<string, string[]>();
  for (const { block, file } of targets) {
    const label = block.labels[0] ?? '';
    const attrs = block.body.attributes;
    const matrixAttr = attrs.find((a) => a.name === 'matrix');
    const nameAttr = attrs.find((a) => a.name === 'name');
    if (nameAttr !== undefined && matrixAttr === undefined) throw new BakeError('KLN0853', `target "${label}": name requires matrix`, { location: loc(nameAttr.pos), hint: 'name sets the names of a matrix target\'s targets' });
    const blockNames = new Set<string>();
    for (const scope of matrixScopes(matrixAttr, globals.scope)) {
      const name = nameAttr === undefined ? label : toStr(evaluate(nameAttr.expr, scope), nameAttr.expr.pos, 'a target name');
      // buildx's resolveBlockNames: the combinations of one block have distinct names.
      if (blockNames.has(name)) {
        throw new BakeError('KLN0853', `target "${label}": duplicate name "${name}" in the matrix`, { location: loc(nameAttr?.pos ?? block.pos), hint: `give each combination its own name, e.g. name = "${label}-$\{VAR}"` });
      }
      blockNames.add(name);
      const raw = evalAttributes(attrs, scope, new Set(['matrix', 'name']));
      const where = (key: string): BakeLocation => loc(attrs.find((a) => a.name === key.split('.')[0])?.pos ?? block.pos);
      config.addTarget(name, decodeTarget(name, raw, where), loc(nameAttr?.pos ?? block.pos), file.path === undefined ? undefined : dirname(file.path));
      if (matrixAttr !== undefined) renamed.set(label, [...(renamed.get(label) ?? []), name]);
    }
  }
  // buildx: a matrix target's label becomes a group of the targets it made.
  for (const [label, names] of renamed) {
    const unique = [...new Set(names)];
    if (unique.length === 1 && unique[0] === label) continue;
    config.addGroup(label, { targets: unique });
  }
}

/** The most targets one matrix may make. */
export const MAX_MATRIX = 10_000;

/** One scope per combination of a target's `matrix` values (buildx's GetEvalContexts order). */
function matrixScopes(attr: Attribute | undefined, scope: Scope): Scope[] {
  if (attr === undefined) return [scope];
  const m = evaluate(attr.expr, scope);
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw evalError('matrix must be a map of lists', attr.expr.pos, 'matrix = { tgt = ["a", "b"] }');
  const obj = m as { readonly [k: string]: Value };
  let count = 1;
  for (const k of Object.keys(obj)) count *= Array.isArray(obj[k]) ? (obj[k] as readonly Value[]).length : 1;
  if (count > MAX_MATRIX) throw limitError(`the matrix has ${count} combinations (more than ${MAX_MATRIX})`, attr.expr.pos, 'each combination is a target: split the matrix');
  let combos: Record<string, Value>[] = [{}];
  for (const k of Object.keys(obj).sort()) {
    const values = obj[k] ?? null;
    if (!Array.isArray(values)) throw evalError(`matrix values must be a list (${k} is a ${typeName(values)})`, attr.expr.pos);
    const next: Record<string, Value>[] = [];
    for (const v of values as readonly Value[]) for (const c of combos) next.push({ ...c, [k]: v });
    combos = next;
  }
  return combos.map((c) => scope.child(c));
}
