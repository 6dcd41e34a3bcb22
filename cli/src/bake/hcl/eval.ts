import { BakeError } from '../errors.js';
import type { Expr, Pos, Value } from './ast.js';

/**
 * What one evaluation of the bake files may spend: evaluation steps and nesting depth (variables
 * that refer to variables, function calls, nested values). buildx has no such limits, but Go's
 * stacks grow to a gigabyte; ours overflow, and a runaway file should fail, not hang or exhaust
 * memory.
 */
export interface EvalBudget {
  steps: number;
  depth: number;
}

export const MAX_EVAL_STEPS = 2_000_000;
export const MAX_EVAL_DEPTH = 400;
/** The largest string (characters) and list (elements) an expression may make. */
export const MAX_STRING = 16 * 1024 * 1024;
export const MAX_LIST = 1_000_000;

/**
 * Errors of the limits above, and calls of a function kiln does not have: try() and can() pass
 * them on instead of taking them as a failed argument (can(regex(…)) was false for every value
 * while kiln had no regex, so a validation block refused every value with its own message).
 */
const limitErrors = new WeakSet<object>();

/** A KLN0852 error of an evaluation limit (not caught by try()/can()). */
export function limitError(message: string, pos: Pos, hint: string): BakeError {
  const e = evalError(message, pos, hint);
  limitErrors.add(e);
  return e;
}

/** Whether `v` has at most `limit` values in all (nested lists and objects counted whole; shared parts each time). */
export function sizeAtMost(v: Value, limit: number): boolean {
  const stack: Value[] = [v];
  let n = 0;
  while (stack.length > 0) {
    const x = stack.pop() ?? null;
    if (++n > limit) return false;
    if (Array.isArray(x)) for (const y of x as readonly Value[]) stack.push(y);
    else if (typeof x === 'object' && x !== null) for (const y of Object.values(x)) stack.push(y);
  }
  return true;
}

/** A function callable from HCL: takes evaluated arguments, returns a value or throws a message. */
export type HclFunction = (args: readonly Value[], pos: Pos) => Value;

/**
 * Names visible to an expression: local bindings (for-expression, function parameter and matrix
 * variables) over the globals the root resolves lazily (variables, top-level attributes,
 * `target`).
 */
export class Scope {
  readonly #vars = new Map<string, Value>();

  constructor(
    readonly parent: Scope | undefined,
    readonly root: {
      readonly variable: (name: string, pos: Pos) => Value | undefined;
      readonly func: (name: string) => HclFunction | undefined;
      readonly names: () => readonly string[];
      readonly budget: EvalBudget;
    },
  ) {}

  child(vars: Readonly<Record<string, Value>>): Scope {
    const s = new Scope(this, this.root);
    for (const [k, v] of Object.entries(vars)) s.#vars.set(k, v);
    return s;
  }

  lookup(name: string, pos: Pos): Value | undefined {
    for (let s: Scope | undefined = this; s !== undefined; s = s.parent) if (s.#vars.has(name)) return s.#vars.get(name);
    return this.root.variable(name, pos);
  }
}

/** An evaluation error at `pos` (KLN0852). */
export function evalError(message: string, pos: Pos, hint?: string): BakeError {
  return new BakeError('KLN0852', message, { location: { file: pos.file, line: pos.line, column: pos.column }, ...(hint === undefined ? {} : { hint }) });
}

/** Sets an own key, also `__proto__` (plain assignment would set the prototype instead). */
export function setKey<T>(o: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

const isList = (v: Value): v is readonly Value[] => Array.isArray(v);
const isObject = (v: Value): v is { readonly [key: string]: Value } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The type name of a value as HCL says it (for messages). */
export function typeName(v: Value): string {
  if (v === null) return 'null';
  if (isList(v)) return 'tuple';
  if (isObject(v)) return 'object';
  return typeof v === 'string' ? 'string' : typeof v === 'number' ? 'number' : 'bool';
}

/** cty's number formatting: integers without a fraction. */
function formatNumber(n: number): string {
  return Number.isInteger(n) ? n.toFixed(0) : String(n);
}

/** A value converted to a string as cty converts (numbers and bools; not null or collections). */
export function toStr(v: Value, pos: Pos, what = 'value'): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return String(v);
  throw evalError(`${what} must be a string, got ${typeName(v)}`, pos, v === null ? 'the value is null: give the variable a default or set it' : undefined);
}

export function toNum(v: Value, pos: Pos, what = 'value'): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw evalError(`${what} must be a number, got ${typeName(v)}${typeof v === 'string' ? ` "${v}"` : ''}`, pos);
}

export function toBool(v: Value, pos: Pos, what = 'value'): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw evalError(`${what} must be a bool, got ${typeName(v)}${typeof v === 'string' ? ` "${v}"` : ''}`, pos);
}

/** cty equality: same type and same value (a number and a numeric string differ). */
export function equal(a: Value, b: Value): boolean {
  if (isList(a) && isList(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i] ?? null));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && equal(a[k] ?? null, b[k] ?? null));
  }
  return a === b;
}

function iterate(v: Value, pos: Pos): [Value, Value][] {
  if (isList(v)) return v.map((x, i) => [i, x]);
  if (isObject(v)) return Object.keys(v).sort().map((k) => [k, v[k] ?? null]);
  throw evalError(`a for expression needs a list or an object, got ${typeName(v)}`, pos);
}

function index(target: Value, key: Value, pos: Pos): Value {
  if (target === null) throw evalError('cannot index a null value', pos);
  if (isList(target)) {
    const i = toNum(key, pos, 'a list index');
    if (!Number.isInteger(i) || i < 0 || i >= target.length) throw evalError(`index ${i} is out of range (the list has ${target.length} elements)`, pos);
    return target[i] ?? null;
  }
  if (isObject(target)) {
    const k = toStr(key, pos, 'a map key');
    if (!Object.hasOwn(target, k)) throw evalError(`the object has no element "${k}"`, pos, Object.keys(target).length > 0 ? `it has ${Object.keys(target).join(', ')}` : undefined);
    return target[k] ?? null;
  }
  throw evalError(`cannot index a ${typeName(target)}`, pos);
}

function attr(target: Value, name: string, pos: Pos): Value {
  if (isObject(target)) {
    if (!Object.hasOwn(target, name)) throw evalError(`unsupported attribute "${name}"`, pos, Object.keys(target).length > 0 ? `it has ${Object.keys(target).join(', ')}` : undefined);
    return target[name] ?? null;
  }
  throw evalError(`cannot read attribute "${name}" of a ${typeName(target)}`, pos);
}

/**
 * Evaluates an expression in `scope`. Errors are {@link BakeError} KLN0852 with the expression's
 * position, also when the evaluation goes past the scope's {@link EvalBudget}.
 */
export function evaluate(e: Expr, scope: Scope): Value {
  const b = scope.root.budget;
  if (++b.steps > MAX_EVAL_STEPS) throw limitError(`evaluation stopped after ${MAX_EVAL_STEPS} steps`, e.pos, 'a matrix, for expression or function makes too many values');
  if (b.depth >= MAX_EVAL_DEPTH) throw limitError(`evaluation nested too deep (more than ${MAX_EVAL_DEPTH} levels of variables, function calls or values)`, e.pos, 'look for a long chain of variables that refer to each other, or deeply recursive data');
  b.depth++;
  try {
    return evaluateExpr(e, scope);
  } finally {
    b.depth--;
  }
}

function evaluateExpr(e: Expr, scope: Scope): Value {
  switch (e.kind) {
    case 'literal':
      return e.value;
    case 'template': {
      // A lone interpolation keeps its type ("${list}" is the list), as in HCL.
      if (e.parts.length === 1 && typeof e.parts[0] !== 'string' && e.parts[0] !== undefined) return evaluate(e.parts[0], scope);
      let s = '';
      for (const p of e.parts) {
        s += typeof p === 'string' ? p : toStr(evaluate(p, scope), p.pos, 'an interpolated value');
        if (s.length > MAX_STRING) throw limitError(`the string is too large (more than ${MAX_STRING} characters)`, e.pos, 'a function or for expression makes it grow without bound');
      }
      return s;
    }
    case 'templateIf':
      if (toBool(evaluate(e.cond, scope), e.cond.pos, 'the %{ if } condition')) return toStr(evaluate(e.then, scope), e.pos, 'a template');
      return e.else === undefined ? '' : toStr(evaluate(e.else, scope), e.pos, 'a template');
    case 'templateFor': {
      let out = '';
      for (const [k, v] of iterate(evaluate(e.collection, scope), e.collection.pos)) {
        out += toStr(evaluate(e.body, scope.child({ ...(e.keyVar === undefined ? {} : { [e.keyVar]: k }), [e.valueVar]: v })), e.pos, 'a template');
        if (out.length > MAX_STRING) throw limitError(`the string is too large (more than ${MAX_STRING} characters)`, e.pos, 'the %{ for } makes it grow without bound');
      }
      return out;
    }
    case 'variable': {
      const v = scope.lookup(e.name, e.pos);
      if (v === undefined) {
        const known = scope.root.names();
        throw evalError(`unknown variable "${e.name}"`, e.pos, known.length > 0 ? `defined: ${known.join(', ')}` : 'declare it with variable "NAME" { default = … }');
      }
      return v;
    }
    case 'tuple':
      return e.items.map((x) => evaluate(x, scope));
    case 'object': {
      const o: Record<string, Value> = {};
      for (const it of e.items) setKey(o, toStr(evaluate(it.key, scope), it.key.pos, 'an object key'), evaluate(it.value, scope));
      return o;
    }
    case 'call': {
      // try() and can() take their arguments unevaluated: an argument that fails is a value.
      if ((e.name === 'try' || e.name === 'can') && scope.root.func(e.name) === undefined) return tryCall(e.name, e.args, scope, e.pos);
      const f = scope.root.func(e.name);
      if (f === undefined) {
        const err = evalError(`unknown function "${e.name}"`, e.pos, 'see docs/bake.md for the functions kiln has');
        limitErrors.add(err);
        throw err;
      }
      let args = e.args.map((a) => evaluate(a, scope));
      if (e.expand) {
        const last = args[args.length - 1] ?? null;
        if (!isList(last)) throw evalError('the argument before ... must be a list', e.pos);
        args = [...args.slice(0, -1), ...last];
      }
      let out: Value;
      try {
        out = f(args, e.pos);
      } catch (err) {
        // A JavaScript limit inside a function (a string or array too long for V8) is the call's error.
        if (err instanceof BakeError) throw err;
        throw limitError(`${e.name}(): ${err instanceof Error ? err.message : String(err)}`, e.pos, 'the result is too large');
      }
      if ((typeof out === 'string' && out.length > MAX_STRING) || (Array.isArray(out) && out.length > MAX_LIST)) {
        throw limitError(`${e.name}(): the result is too large (more than ${typeof out === 'string' ? `${MAX_STRING} characters` : `${MAX_LIST} elements`})`, e.pos, 'a function makes it grow without bound');
      }
      return out;
    }
    case 'index':
      return index(evaluate(e.target, scope), evaluate(e.key, scope), e.key.pos);
    case 'attr':
      return attr(evaluate(e.target, scope), e.name, e.pos);
    case 'splat': {
      const t = evaluate(e.target, scope);
      const items = t === null ? [] : isList(t) ? t : [t];
      return items.map((x) => e.each.reduce<Value>((acc, step) => ('attr' in step ? attr(acc, step.attr, e.pos) : index(acc, evaluate(step.index, scope), e.pos)), x));
    }
    case 'unary': {
      const v = evaluate(e.operand, scope);
      return e.op === '!' ? !toBool(v, e.pos, 'the operand of !') : -toNum(v, e.pos, 'the operand of -');
    }
    case 'binary':
      return binary(e.op, e.left, e.right, scope, e.pos);
    case 'conditional':
      return toBool(evaluate(e.cond, scope), e.cond.pos, 'the condition') ? evaluate(e.then, scope) : evaluate(e.else, scope);
    case 'for': {
      const coll = evaluate(e.collection, scope);
      const bind = (k: Value, v: Value): Scope => scope.child({ ...(e.keyVar === undefined ? {} : { [e.keyVar]: k }), [e.valueVar]: v });
      const pairs = iterate(coll, e.collection.pos).filter(([k, v]) => e.cond === undefined || toBool(evaluate(e.cond, bind(k, v)), e.cond.pos, 'the for condition'));
      if (e.keyExpr === undefined) return pairs.map(([k, v]) => evaluate(e.valueExpr, bind(k, v)));
      const out: Record<string, Value> = {};
      const groups: Record<string, Value[]> = {};
      for (const [k, v] of pairs) {
        const s = bind(k, v);
        const key = toStr(evaluate(e.keyExpr, s), e.keyExpr.pos, 'a for key');
        const val = evaluate(e.valueExpr, s);
        if (e.group) {
          if (!Object.hasOwn(groups, key)) setKey(groups, key, []);
          groups[key]?.push(val);
        }
        else if (Object.hasOwn(out, key)) throw evalError(`duplicate key "${key}" in the for expression`, e.keyExpr.pos, 'add ... after the value to group values by key');
        else setKey(out, key, val);
      }
      return e.group ? groups : out;
    }
  }
}

/** HCL's try(a, b, …) (the first argument that evaluates) and can(a) (whether it evaluates). */
function tryCall(name: 'try' | 'can', args: readonly Expr[], scope: Scope, pos: Pos): Value {
  if (name === 'can') {
    if (args.length !== 1 || args[0] === undefined) throw evalError('can() takes 1 argument', pos);
    try {
      evaluate(args[0], scope);
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'KLN0852' && !limitErrors.has(err as object)) return false;
      throw err;
    }
  }
  if (args.length === 0) throw evalError('try() takes at least 1 argument', pos);
  let last: unknown;
  for (const a of args) {
    try {
      return evaluate(a, scope);
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'KLN0852' || limitErrors.has(err as object)) throw err;
      last = err;
    }
  }
  throw last;
}

function binary(op: string, l: Expr, r: Expr, scope: Scope, pos: Pos): Value {
  if (op === '&&' || op === '||') {
    const a = toBool(evaluate(l, scope), l.pos, `the left operand of ${op}`);
    // HCL evaluates both sides; short-circuiting only skips errors a user would not see anyway.
    const b = toBool(evaluate(r, scope), r.pos, `the right operand of ${op}`);
    return op === '&&' ? a && b : a || b;
  }
  const a = evaluate(l, scope);
  const b = evaluate(r, scope);
  switch (op) {
    case '==':
      return equal(a, b);
    case '!=':
      return !equal(a, b);
    case '<':
      return toNum(a, l.pos) < toNum(b, r.pos);
    case '>':
      return toNum(a, l.pos) > toNum(b, r.pos);
    case '<=':
      return toNum(a, l.pos) <= toNum(b, r.pos);
    case '>=':
      return toNum(a, l.pos) >= toNum(b, r.pos);
    case '+':
      return toNum(a, l.pos) + toNum(b, r.pos);
    case '-':
      return toNum(a, l.pos) - toNum(b, r.pos);
    case '*':
      return toNum(a, l.pos) * toNum(b, r.pos);
    case '/': {
      const d = toNum(b, r.pos);
      if (d === 0) throw evalError('division by zero', r.pos);
      return toNum(a, l.pos) / d;
    }
    case '%': {
      const d = toNum(b, r.pos);
      if (d === 0) throw evalError('modulo by zero', r.pos);
      return toNum(a, l.pos) % d;
    }
    default:
      throw evalError(`unknown operator ${op}`, pos);
  }
}
