/**
 * The `sh` template tag: a shell command line whose interpolated values are quoted, so
 * `` sh`rm ${name}` `` never splits or expands `name`.
 */

import { TsDslError } from '../errors.js';

/** A shell script run as `["/bin/sh", "-c", script]`. */
export class Sh {
  constructor(/** The script, interpolations already quoted. */ readonly script: string) {}

  /** The exec argv: `/bin/sh -c <script>`. */
  get args(): readonly string[] {
    return ['/bin/sh', '-c', this.script];
  }

  toString(): string {
    return this.script;
  }
}

/** A value `sh` can interpolate: strings, numbers, another {@link Sh} (inserted as is), or a list of them (space-separated). */
export type ShValue = string | number | bigint | boolean | Sh | readonly ShValue[];

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** POSIX single-quote quoting; safe words stay bare for readable commands. */
export function shellQuote(s: string): string {
  if (s !== '' && SAFE.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function quoteValue(v: ShValue): string {
  if (v instanceof Sh) return v.script;
  if (Array.isArray(v)) return (v as readonly ShValue[]).map(quoteValue).join(' ');
  return shellQuote(String(v));
}

/** Tag for shell commands: `` .run(sh`make ${target}`) `` runs `/bin/sh -c 'make <quoted target>'`. */
export function sh(strings: TemplateStringsArray, ...values: readonly ShValue[]): Sh {
  // Called as a function, sh("echo hi") indexed the string: the script was "e" (types are not
  // checked at build time, so this is the only guard)
  const given: unknown = strings;
  if (!Array.isArray(given) || !Array.isArray((given as { raw?: unknown }).raw)) {
    throw new TsDslError('KLN0805', `sh is a template tag: write sh\`…\`, not sh(${typeof given === 'string' ? JSON.stringify(given.length > 40 ? `${given.slice(0, 40)}…` : given) : '…'})`, {
      hint: 'run(sh`make ${target}`); a script held in a variable runs as run(["/bin/sh", "-c", script])',
    });
  }
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += quoteValue(values[i] as ShValue) + (strings[i + 1] ?? '');
  return new Sh(out);
}
