/** Instruction flags (`--name=value`), as BuildKit's instructions/bflag.go. */
import { KilnError, suggest } from '../errors.js';
import type { Word } from '../parser/ast.js';

type FlagType = 'bool' | 'string' | 'strings';

/** The values of a flag that is not repeatable: never added to. */
const NO_VALUES: string[] = [];

/** One declared flag and what was given for it. */
export class Flag {
  /** Bool flags: `'true'`/`'false'`; string flags: the value (or default). */
  value: string;
  /** Repeatable flags: every value, in order (other flags share one empty array). */
  readonly values: string[];

  /** @param name flag name without `--`; @param type value kind; @param def default value */
  constructor(
    readonly name: string,
    readonly type: FlagType,
    def: string,
  ) {
    this.value = def;
    this.values = type === 'strings' ? [] : NO_VALUES;
  }

  /** Bool flags: whether the value is true. */
  isTrue(): boolean {
    return this.value === 'true';
  }
}

/** The flag set of one instruction: declare flags, then {@link BFlags.parse}. */
export class BFlags {
  // An array and a lazily made map: every instruction gets a BFlags and declares a few flags,
  // but few instructions use any; two Maps each were ~0.8 MB of a 2,000-instruction file.
  private readonly flags: Flag[] = [];
  private used: Map<string, Flag> | undefined;

  /** @param args the instruction's flag words as the parser returned them */
  constructor(private readonly args: readonly Word[]) {}

  /** Declare a boolean flag. */
  addBool(name: string, def: boolean): Flag {
    return this.add(new Flag(name, 'bool', def ? 'true' : 'false'));
  }
  /** Declare a string flag. */
  addString(name: string, def: string): Flag {
    return this.add(new Flag(name, 'string', def));
  }
  /** Declare a repeatable string flag. */
  addStrings(name: string): Flag {
    return this.add(new Flag(name, 'strings', ''));
  }

  private add(f: Flag): Flag {
    if (this.find(f.name) !== undefined) throw new Error(`internal: duplicate flag defined: ${f.name}`);
    this.flags.push(f);
    return f;
  }

  private find(name: string): Flag | undefined {
    for (let i = 0; i < this.flags.length; i++) if ((this.flags[i] as Flag).name === name) return this.flags[i];
    return undefined;
  }

  /** Whether the flag was given. */
  isUsed(name: string): boolean {
    return this.used !== undefined && this.used.has(name);
  }

  /** Names of the flags that were given, in declaration order of use. */
  usedNames(): string[] {
    return this.used === undefined ? [] : [...this.used.keys()];
  }

  /** Check the given words against the declared flags. Throws KilnError KLN0402/KLN0403 at the flag. */
  parse(): void {
    for (const w of this.args) {
      const at = (code: 'KLN0402' | 'KLN0403', msg: string, hint?: string): KilnError =>
        new KilnError(code, msg, { location: { file: '', ...w.position }, hint });
      let arg = w.value;
      if (!arg.startsWith('--')) throw at('KLN0403', `arg should start with -- : ${arg}`);
      if (arg === '--') return;
      arg = arg.slice(2);
      let value = '';
      const index = arg.indexOf('=');
      if (index >= 0) {
        value = arg.slice(index + 1);
        arg = arg.slice(0, index);
      }
      const flag = this.find(arg);
      if (flag === undefined) {
        const names = this.flags.map((f) => f.name);
        const s = suggest(arg, names);
        throw at(
          'KLN0402',
          `unknown flag: ${arg}${s === undefined ? '' : ` (did you mean ${s}?)`}`,
          names.length === 0 ? 'this instruction takes no flags' : `valid flags: ${names.map((n) => `--${n}`).join(', ')}`,
        );
      }
      this.used ??= new Map();
      if (this.used.has(arg) && flag.type !== 'strings') throw at('KLN0403', `duplicate flag specified: ${arg}`);
      this.used.set(arg, flag);
      switch (flag.type) {
        case 'bool': {
          if (index >= 0 && value === '') throw at('KLN0403', `missing a value on flag: ${arg}`);
          const lower = value.toLowerCase();
          if (lower === '') flag.value = 'true';
          else if (lower === 'true' || lower === 'false') flag.value = lower;
          else throw at('KLN0403', `expecting boolean value for flag ${arg}, not: ${value}`);
          break;
        }
        case 'string':
          if (index < 0) throw at('KLN0403', `missing a value on flag: ${arg}`, `write --${arg}=VALUE`);
          flag.value = value;
          break;
        case 'strings':
          if (index < 0) throw at('KLN0403', `missing a value on flag: ${arg}`, `write --${arg}=VALUE`);
          flag.values.push(value);
          break;
      }
    }
  }
}
