/**
 * Run-time checks of the values build files pass to the DSL. The frontend strips types without
 * checking them (`kiln check` does that), so a misspelt or mistyped option was dropped or misread
 * silently: `run(cmd, { mount: … })` ran without its mounts, `image({ cmd: "npm start" })` became
 * one argument per letter, `copy(…, { chmod: "755" })` mode 0o1363. Each is now KLN0805 at the
 * call (the error is thrown while the build file is on the stack), naming the option.
 */
import { suggest } from '@kiln/llb-core';
import { TsDslError } from '../errors.js';

/** What a value must be: `what` for messages, `ok` to test it, `hint` for the fix. */
export interface Field {
  readonly what: string;
  readonly ok: (v: unknown) => boolean;
  readonly hint?: string;
  /** What is wrong inside a value `ok` refuses (the entry of an object), for the message's "got …". */
  readonly got?: (v: unknown) => string | undefined;
}

/** A short description of a value of the wrong kind, for messages. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  // an async helper called without await: the likeliest way to pass a Promise
  if (v instanceof Promise) return 'a Promise (an await missing?)';
  // bundled, the DSL's classes are renamed (_State, State2): show the name the user knows
  if (typeof v === 'object') return `an object (${((v as object).constructor?.name ?? 'Object').replace(/^_+|\d+$/g, '') || 'Object'})`;
  return `a ${typeof v}`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const str: Field = { what: 'a string', ok: (v) => typeof v === 'string' };
export const bool: Field = { what: 'a boolean', ok: (v) => typeof v === 'boolean' };
export const count: Field = { what: 'a whole number', ok: (v) => Number.isSafeInteger(v) && (v as number) >= 0 };
export const strings: Field = { what: 'a string[]', ok: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string') };
/** Permission bits: a number, which in JavaScript is written 0o755 (a string "755" is not octal). */
export const permissions: Field = { what: 'a number such as 0o755', ok: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o7777, hint: 'write permission bits as an octal number literal: 0o755, 0o644' };
/** `user[:group]`, or ids/names apart (either left undefined is unset, as llb-core reads it). */
export const chown: Field = {
  what: 'a "user[:group]" string or { user, group }',
  ok: (v) => typeof v === 'string' || (isRecord(v) && Object.entries(v).every(([k, x]) => (k === 'user' || k === 'group') && (x === undefined || typeof x === 'string' || Number.isSafeInteger(x)))),
};
/** Something the DSL can lower: a State. Structural, so mounts.ts need not import State's class. */
export const state: Field = { what: 'a State', ok: (v) => isRecord(v) && typeof v['lower'] === 'function' };

/** One of `values`. */
export function oneOf(...values: readonly string[]): Field {
  return { what: values.map((v) => `"${v}"`).join(' | '), ok: (v) => typeof v === 'string' && values.includes(v) };
}

/** A plain object whose values are each `of`. */
export function recordOf(of: Field, hint?: string): Field {
  // the entry that is wrong: "an object (Object)" named nothing to fix
  const got = (v: unknown): string | undefined => {
    if (!isRecord(v)) return undefined;
    const bad = Object.entries(v).find(([, x]) => !of.ok(x));
    return bad === undefined ? undefined : `${JSON.stringify(bad[0])}: ${describeValue(bad[1])}`;
  };
  return { what: `an object of ${of.what.replace(/^an? /, '')} values`, ok: (v) => isRecord(v) && Object.values(v).every(of.ok), got, ...(hint === undefined ? {} : { hint }) };
}

/** `f` with its own hint. */
export function withHint(f: Field, hint: string): Field {
  return { ...f, hint };
}

function fail(fn: string, message: string, hint: string): never {
  throw new TsDslError('KLN0805', `${fn}: ${message}`, { hint });
}

/**
 * Throws KLN0805 unless `opts` is undefined or a plain object whose values (undefined aside, as a
 * spread may leave) are each what their field takes and whose other keys are no misspelling of
 * a field's name. A key far from every name is left alone, as TypeScript leaves it: an object of
 * a subtype (`interface Step extends RunOpts { cmd }`, passed whole) is a valid argument.
 */
export function checkOptions(fn: string, opts: unknown, fields: Readonly<Record<string, Field>>): void {
  if (opts === undefined) return;
  const names = Object.keys(fields);
  if (!isRecord(opts)) fail(fn, `the options must be an object (got ${describeValue(opts)})`, `${fn} takes { ${names.join(', ')} }`);
  for (const [key, v] of Object.entries(opts)) {
    const f = fields[key];
    if (f === undefined) {
      // suggest() leaves out a name that differs only in case (entryPoint): the likeliest slip
      const near = names.find((n) => n.toLowerCase() === key.toLowerCase()) ?? suggest(key, names);
      if (near === undefined) continue;
      fail(fn, `unknown option "${key}" (did you mean "${near}"?)`, `${fn} takes { ${names.join(', ')} }`);
    }
    // a string that is none of oneOf's values is shown, so the near miss is seen ("lock")
    const got = typeof v === 'string' && f.what.startsWith('"') ? JSON.stringify(v) : (f.got?.(v) ?? describeValue(v));
    if (v !== undefined && !f.ok(v)) fail(fn, `option "${key}" must be ${f.what} (got ${got})`, f.hint ?? `${fn} takes { ${names.join(', ')} }`);
  }
}

/** Throws KLN0805 unless argument `name` of `fn` is what `f` takes. */
export function checkArg(fn: string, name: string, v: unknown, f: Field): void {
  if (!f.ok(v)) fail(fn, `${name} must be ${f.what} (got ${describeValue(v)})`, f.hint ?? `see the ${fn} example in docs/ts-dsl.md`);
}
