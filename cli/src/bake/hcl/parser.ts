import { BakeError } from '../errors.js';
import type { Attribute, Block, Body, Expr, HclFile, Pos } from './ast.js';

/**
 * Parses HCL native syntax (the subset buildx bake files use: bodies of attributes and labelled
 * blocks; literals, templates with `${…}` and `$${` escapes, heredocs, tuples, objects,
 * operators, conditionals, calls, traversals, splats and `for` expressions). Throws
 * {@link BakeError} KLN0851 at the offending line and column.
 */
export function parseHcl(text: string, file: string): HclFile {
  const p = new Parser(text, file);
  const body = p.body(false);
  return { name: file, body };
}

/** Parses a template (`${…}` interpolations) that is not quoted: a JSON bake file's string. */
export function parseTemplate(text: string, file: string, at?: Pos): Expr {
  const p = new Parser(text, file, at);
  return p.templateUntil(undefined);
}

// HCL identifiers: Unicode ID_Start (and _), then ID_Continue and `-` (hclsyntax's scanner).
const ID_START = /[\p{ID_Start}_]/u;
const ID_CONT = /[\p{ID_Continue}-]/u;
/**
 * How deep blocks and expressions may nest, counting each operator of a chain (`a + b + c`) and
 * each index or attribute step (`x[0].y`) as a level: evaluation recurses as deep as the
 * expression tree, so a hostile file would overflow the stack. Real bake files nest a few levels.
 */
export const MAX_NESTING = 128;

const BINARY_PRECEDENCE: readonly (readonly string[])[] = [['||'], ['&&'], ['==', '!='], ['<', '>', '<=', '>='], ['+', '-'], ['*', '/', '%']];

class Parser {
  i = 0;
  /** The nesting level at the current position (see {@link MAX_NESTING}). */
  depth: number;
  readonly #lineStarts: number[] = [0];

  constructor(
    readonly s: string,
    readonly file: string,
    readonly base?: Pos,
    depth = 0,
  ) {
    this.depth = depth;
    for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) === 10) this.#lineStarts.push(k + 1);
  }

  pos(at = this.i): Pos {
    let lo = 0;
    let hi = this.#lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.#lineStarts[mid] ?? 0) <= at) lo = mid;
      else hi = mid - 1;
    }
    const line = lo + 1;
    const column = at - (this.#lineStarts[lo] ?? 0) + 1;
    if (this.base !== undefined) return { file: this.file, line: this.base.line + line - 1, column: line === 1 ? this.base.column + column - 1 : column, offset: this.base.offset + at };
    return { file: this.file, line, column, offset: at };
  }

  fail(message: string, at = this.i, hint?: string): never {
    throw new BakeError('KLN0851', message, { location: this.pos(at), ...(hint === undefined ? {} : { hint }) });
  }

  /** One level deeper (a nested block or expression, or one more link of a chain). */
  enter(at = this.i): void {
    if (++this.depth > MAX_NESTING) this.fail(`nested too deeply (more than ${MAX_NESTING} levels of blocks, brackets or chained operators)`, at, 'split the value into variables, or into more targets');
  }

  peek(n = 0): string {
    return this.s[this.i + n] ?? '';
  }

  startsWith(t: string): boolean {
    return this.s.startsWith(t, this.i);
  }

  /** Skips blanks and comments; newlines too when `nl`. */
  skip(nl: boolean): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r' || (nl && c === '\n')) this.i++;
      else if (c === '#' || this.startsWith('//')) {
        while (this.i < this.s.length && this.peek() !== '\n') this.i++;
      } else if (this.startsWith('/*')) {
        const end = this.s.indexOf('*/', this.i + 2);
        if (end < 0) this.fail('unterminated /* comment', this.i, 'close it with */');
        this.i = end + 2;
      } else return;
    }
  }

  ident(): string | undefined {
    if (!ID_START.test(this.peek())) return undefined;
    const start = this.i;
    while (this.i < this.s.length && ID_CONT.test(this.peek())) this.i++;
    return this.s.slice(start, this.i);
  }

  expect(t: string, what: string, hint?: string): void {
    if (!this.startsWith(t)) this.fail(`expected ${what}, found ${this.describe()}`, this.i, hint);
    this.i += t.length;
  }

  describe(): string {
    if (this.i >= this.s.length) return 'the end of the file';
    const c = this.peek();
    if (c === '\n') return 'a newline';
    return `"${this.s.slice(this.i, this.i + 1)}"`;
  }

  /** A body until `}` (nested) or the end of the file (top level). */
  body(nested: boolean): Body {
    const attributes: Attribute[] = [];
    const blocks: Block[] = [];
    const seen = new Map<string, Pos>();
    for (;;) {
      this.skip(true);
      if (this.i >= this.s.length) {
        if (nested) this.fail('expected "}" to close the block', this.i, 'every { needs a matching }');
        break;
      }
      if (this.peek() === '}') {
        if (!nested) this.fail('unexpected "}"', this.i, 'there is no block to close here');
        break;
      }
      const at = this.i;
      const name = this.ident();
      if (name === undefined) this.fail(`expected an attribute or a block, found ${this.describe()}`, at, 'write NAME = VALUE or TYPE "LABEL" { … }');
      this.skip(false);
      if (this.peek() === '=' && this.peek(1) !== '=') {
        this.i++;
        this.skip(false);
        const expr = this.expr(false);
        const prev = seen.get(name);
        if (prev !== undefined) this.fail(`attribute "${name}" is already defined at line ${prev.line}`, at, 'an attribute is set once per body');
        seen.set(name, this.pos(at));
        attributes.push({ name, expr, pos: this.pos(at) });
        this.endOfItem();
        continue;
      }
      const labels: string[] = [];
      for (;;) {
        this.skip(false);
        const c = this.peek();
        if (c === '"') {
          const lt = this.templateQuoted();
          if (lt.kind !== 'literal' || typeof lt.value !== 'string') this.fail('a block label cannot contain ${…}', this.i, 'labels are plain strings');
          labels.push(lt.value);
        } else if (ID_START.test(c)) labels.push(this.ident() ?? '');
        else break;
      }
      if (this.peek() !== '{') this.fail(`expected "=" or a block's "{" after "${name}", found ${this.describe()}`, this.i, `write ${name} = VALUE or ${name} "LABEL" { … }`);
      this.enter();
      this.i++;
      const body = this.body(true);
      this.i++; // }
      this.depth--;
      blocks.push({ type: name, labels, body, pos: this.pos(at) });
      this.endOfItem();
    }
    return { attributes, blocks };
  }

  endOfItem(): void {
    this.skip(false);
    const c = this.peek();
    if (c === '\n' || c === '}' || this.i >= this.s.length) return;
    this.fail(`expected a newline after the value, found ${this.describe()}`, this.i, 'put each attribute and block on its own line');
  }

  expr(nl: boolean): Expr {
    const cond = this.binary(0, nl);
    this.skip(nl);
    if (this.peek() !== '?') return cond;
    this.enter();
    this.i++;
    this.skip(true);
    const then = this.expr(nl);
    this.skip(nl);
    this.expect(':', '":" of the conditional', 'write COND ? A : B');
    this.skip(true);
    const els = this.expr(nl);
    this.depth--;
    return { kind: 'conditional', cond, then, else: els, pos: cond.pos };
  }

  binary(level: number, nl: boolean): Expr {
    const ops = BINARY_PRECEDENCE[level];
    if (ops === undefined) return this.unary(nl);
    let left = this.binary(level + 1, nl);
    const depth = this.depth;
    for (;;) {
      this.skip(nl);
      const op = ops.filter((o) => this.startsWith(o)).sort((a, b) => b.length - a.length)[0];
      // `<<` starts a heredoc, not a comparison.
      if (op === undefined || (op === '<' && this.startsWith('<<'))) {
        this.depth = depth;
        return left;
      }
      this.enter();
      this.i += op.length;
      this.skip(true);
      const right = this.binary(level + 1, nl);
      left = { kind: 'binary', op, left, right, pos: left.pos };
    }
  }

  unary(nl: boolean): Expr {
    this.skip(nl);
    this.enter();
    const c = this.peek();
    let e: Expr;
    if ((c === '!' && this.peek(1) !== '=') || c === '-') {
      const at = this.i;
      this.i++;
      const operand = this.unary(nl);
      e = { kind: 'unary', op: c, operand, pos: this.pos(at) };
    } else e = this.postfix(nl);
    this.depth--;
    return e;
  }

  postfix(nl: boolean): Expr {
    let e = this.primary(nl);
    const depth = this.depth;
    for (;;) {
      const c = this.peek();
      // `...` after an argument or a for value expands or groups; it is no traversal.
      const traversal = (c === '.' && this.peek(1) !== '.') || c === '[';
      if (!traversal) {
        this.depth = depth;
        return e;
      }
      this.enter();
      if (c === '.' && this.peek(1) === '*') {
        this.i += 2;
        e = { kind: 'splat', target: e, each: this.splatTail(), pos: e.pos };
      } else if (c === '.') {
        this.i++;
        if (/[0-9]/.test(this.peek())) {
          const at = this.i;
          while (/[0-9]/.test(this.peek())) this.i++;
          e = { kind: 'index', target: e, key: { kind: 'literal', value: Number(this.s.slice(at, this.i)), pos: this.pos(at) }, pos: e.pos };
          continue;
        }
        const name = this.ident();
        if (name === undefined) this.fail(`expected an attribute name after ".", found ${this.describe()}`);
        e = { kind: 'attr', target: e, name, pos: e.pos };
      } else if (c === '[') {
        const at = this.i;
        this.i++;
        this.skip(true);
        if (this.peek() === '*') {
          this.i++;
          this.skip(true);
          this.expect(']', '"]" of the splat [*]');
          e = { kind: 'splat', target: e, each: this.splatTail(), pos: e.pos };
          continue;
        }
        const key = this.expr(true);
        this.skip(true);
        if (this.peek() !== ']') this.fail(`expected "]" to close the index opened at line ${this.pos(at).line}, found ${this.describe()}`);
        this.i++;
        e = { kind: 'index', target: e, key, pos: e.pos };
      }
    }
  }

  splatTail(): ({ attr: string } | { index: Expr })[] {
    const each: ({ attr: string } | { index: Expr })[] = [];
    for (;;) {
      if (this.peek() === '.' && ID_START.test(this.peek(1))) {
        this.i++;
        each.push({ attr: this.ident() ?? '' });
      } else if (this.peek() === '[' && this.peek(1) !== '*') {
        this.i++;
        this.skip(true);
        const index = this.expr(true);
        this.skip(true);
        this.expect(']', '"]"');
        each.push({ index });
      } else return each;
    }
  }

  primary(nl: boolean): Expr {
    this.skip(nl);
    const at = this.i;
    const c = this.peek();
    if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i));
      this.i += m?.[0].length ?? 1;
      return { kind: 'literal', value: Number(m?.[0] ?? c), pos: this.pos(at) };
    }
    if (c === '"') return this.templateQuoted();
    if (this.startsWith('<<')) return this.heredoc();
    if (c === '(') {
      this.i++;
      const e = this.expr(true);
      this.skip(true);
      if (this.peek() !== ')') this.fail(`expected ")" to close the "(" at line ${this.pos(at).line}, found ${this.describe()}`);
      this.i++;
      return e;
    }
    if (c === '[') return this.tupleOrFor();
    if (c === '{') return this.objectOrFor();
    const name = this.ident();
    if (name === undefined) {
      this.fail(`expected a value, found ${this.describe()}`, at, 'a value is a string, number, true/false, null, [list], {object}, a variable or a function call');
    }
    if (name === 'true' || name === 'false') return { kind: 'literal', value: name === 'true', pos: this.pos(at) };
    if (name === 'null') return { kind: 'literal', value: null, pos: this.pos(at) };
    if (this.peek() === '(') {
      this.i++;
      const args: Expr[] = [];
      let expand = false;
      for (;;) {
        this.skip(true);
        if (this.peek() === ')') break;
        args.push(this.expr(true));
        this.skip(true);
        if (this.startsWith('...')) {
          this.i += 3;
          expand = true;
          this.skip(true);
        }
        if (this.peek() === ',') {
          this.i++;
          continue;
        }
        if (this.peek() !== ')') this.fail(`expected "," or ")" in the arguments of ${name}(), found ${this.describe()}`);
      }
      this.i++;
      return { kind: 'call', name, args, expand, pos: this.pos(at) };
    }
    return { kind: 'variable', name, pos: this.pos(at) };
  }

  /** `for` right after `[` or `{`: returns the for-header fields or undefined (not a for). */
  forHeader(): { keyVar: string | undefined; valueVar: string; collection: Expr } | undefined {
    const save = this.i;
    this.skip(true);
    if (!this.startsWith('for') || ID_CONT.test(this.peek(3))) {
      this.i = save;
      return undefined;
    }
    this.i += 3;
    const { keyVar, valueVar } = this.forVars('"for"');
    if (!this.startsWith('in') || ID_CONT.test(this.peek(2))) this.fail(`expected "in" in the for expression, found ${this.describe()}`, this.i, 'write [for V in LIST : EXPR] or {for K, V in MAP : K => EXPR}');
    this.i += 2;
    const collection = this.expr(true);
    this.skip(true);
    this.expect(':', '":" after the for collection');
    return { keyVar, valueVar, collection };
  }

  /** The variables of a `for` (`V` or `K, V`) and the space after them; `after` names the `for` in errors. */
  forVars(after: string): { keyVar: string | undefined; valueVar: string } {
    this.skip(true);
    const a = this.ident() ?? this.fail(`expected a variable name after ${after}`);
    this.skip(true);
    if (this.peek() !== ',') return { keyVar: undefined, valueVar: a };
    this.i++;
    this.skip(true);
    const b = this.ident() ?? this.fail('expected a second variable name after ","');
    this.skip(true);
    return { keyVar: a, valueVar: b };
  }

  forCond(): Expr | undefined {
    this.skip(true);
    if (this.startsWith('if') && !ID_CONT.test(this.peek(2))) {
      this.i += 2;
      return this.expr(true);
    }
    return undefined;
  }

  tupleOrFor(): Expr {
    const at = this.i;
    this.i++;
    const header = this.forHeader();
    if (header !== undefined) {
      const valueExpr = this.expr(true);
      const cond = this.forCond();
      this.skip(true);
      this.expect(']', '"]" to close the for expression');
      return { kind: 'for', ...header, keyExpr: undefined, valueExpr, cond, group: false, pos: this.pos(at) };
    }
    const items: Expr[] = [];
    for (;;) {
      this.skip(true);
      if (this.peek() === ']') break;
      items.push(this.expr(true));
      this.skip(true);
      if (this.peek() === ',') {
        this.i++;
        continue;
      }
      if (this.peek() !== ']') this.fail(`expected "," or "]" in the list opened at line ${this.pos(at).line}, found ${this.describe()}`);
    }
    this.i++;
    return { kind: 'tuple', items, pos: this.pos(at) };
  }

  objectOrFor(): Expr {
    const at = this.i;
    this.i++;
    const header = this.forHeader();
    if (header !== undefined) {
      const keyExpr = this.expr(true);
      this.skip(true);
      this.expect('=>', '"=>" between the key and the value of the for expression');
      const valueExpr = this.expr(true);
      this.skip(true);
      let group = false;
      if (this.startsWith('...')) {
        this.i += 3;
        group = true;
      }
      const cond = this.forCond();
      this.skip(true);
      this.expect('}', '"}" to close the for expression');
      return { kind: 'for', ...header, keyExpr, valueExpr, cond, group, pos: this.pos(at) };
    }
    const items: { key: Expr; value: Expr }[] = [];
    for (;;) {
      this.skip(true);
      if (this.peek() === '}') break;
      const kat = this.i;
      let key: Expr;
      const id = ID_START.test(this.peek()) ? this.ident() : undefined;
      if (id !== undefined) {
        this.skip(false);
        // A bare name is the key itself; anything else is an expression.
        if (this.peek() === '=' || this.peek() === ':') key = { kind: 'literal', value: id, pos: this.pos(kat) };
        else {
          this.i = kat;
          key = this.expr(false);
        }
      } else key = this.expr(false);
      this.skip(false);
      if (this.peek() !== '=' && this.peek() !== ':') this.fail(`expected "=" or ":" after the object key, found ${this.describe()}`, this.i, 'write { key = value }');
      this.i++;
      const value = this.expr(false);
      items.push({ key, value });
      this.skip(false);
      if (this.peek() === ',' || this.peek() === '\n') {
        this.i++;
        continue;
      }
      if (this.peek() !== '}') this.fail(`expected ",", a newline or "}" in the object opened at line ${this.pos(at).line}, found ${this.describe()}`);
    }
    this.i++;
    return { kind: 'object', items, pos: this.pos(at) };
  }

  templateQuoted(): Expr {
    const at = this.i;
    this.i++;
    const t = this.templateUntil('"');
    if (this.peek() !== '"') this.fail('unterminated string', at, 'close it with " on the same line');
    this.i++;
    return { ...t, pos: this.pos(at) } as Expr;
  }

  /**
   * Template text until `end` (a quote: escapes apply, no newlines) or the end of the text
   * (heredoc or JSON string: no backslash escapes). Folds to a literal without interpolations.
   */
  templateUntil(end: '"' | undefined): Expr {
    const at = this.i;
    const r = this.templateParts(end, [], false);
    if (r.stop !== undefined) this.fail(`%{ ${r.stop} } without its %{ ${r.stop === 'endfor' ? 'for' : 'if'} }`, r.stopAt, 'directives pair up: %{ if C }…%{ else }…%{ endif }, %{ for V in L }…%{ endfor }');
    return this.fold(r.parts, at);
  }

  fold(parts: (string | Expr)[], at: number): Expr {
    const ps = parts.filter((p) => p !== '');
    if (ps.length === 0) return { kind: 'literal', value: '', pos: this.pos(at) };
    if (ps.length === 1 && typeof ps[0] === 'string') return { kind: 'literal', value: ps[0], pos: this.pos(at) };
    return { kind: 'template', parts: ps, pos: this.pos(at) };
  }

  /** The end of a directive (`~}` strips the whitespace after it); true when stripping. */
  closeDirective(dat: number): boolean {
    this.skip(true);
    const strip = this.peek() === '~';
    if (strip) this.i++;
    if (this.peek() !== '}') this.fail(`expected "}" to close the directive opened at column ${this.pos(dat).column}, found ${this.describe()}`);
    this.i++;
    return strip;
  }

  /**
   * Template parts until `end`, the end of the text, or one of the directives `stops` (then
   * consumed and returned, with whether it strips the whitespace after it). `strip`: drop the
   * whitespace at the start (a `~}` before).
   */
  templateParts(end: '"' | undefined, stops: readonly string[], strip: boolean, openedAt = this.i): { parts: (string | Expr)[]; stop?: string; stopAt: number; stripAfter: boolean } {
    const at = this.i;
    const parts: (string | Expr)[] = [];
    let buf = '';
    let stripNext = strip;
    const trimBefore = (): void => {
      buf = buf.trimEnd();
      if (buf === '' && typeof parts[parts.length - 1] === 'string') parts[parts.length - 1] = (parts[parts.length - 1] as string).trimEnd();
    };
    /** Consumes `${` or `%{` (and a `~` after it: trims the text before), ends the text run; returns where it opened. */
    const open = (): number => {
      const opened = this.i;
      this.i += 2;
      if (this.peek() === '~') {
        this.i++;
        trimBefore();
      }
      if (buf !== '') parts.push(buf);
      buf = '';
      this.skip(true);
      return opened;
    };
    for (;;) {
      if (this.i >= this.s.length || (end !== undefined && this.peek() === end)) {
        if (this.i >= this.s.length && end !== undefined) this.fail('unterminated string', at, 'close it with "');
        if (stops.length > 0) this.fail(`missing %{ ${stops[stops.length - 1] ?? ''} } for the directive here`, openedAt, 'directives pair up: %{ if C }…%{ endif }, %{ for V in L }…%{ endfor }');
        break;
      }
      const c = this.peek();
      if (stripNext && /\s/.test(c)) {
        this.i++;
        continue;
      }
      stripNext = false;
      if (end !== undefined && c === '\n') this.fail('unterminated string: a quoted string cannot span lines', at > 0 && this.s[at - 1] === '"' ? at - 1 : at, 'close it with " on the same line, or use a heredoc (<<EOT) for text with newlines');
      if (c === '\\' && end !== undefined) {
        const n = this.peek(1);
        const esc: Record<string, string> = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' };
        if (esc[n] !== undefined) {
          buf += esc[n];
          this.i += 2;
        } else if (n === 'u' || n === 'U') {
          const len = n === 'u' ? 4 : 8;
          const hex = this.s.slice(this.i + 2, this.i + 2 + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) this.fail(`invalid \\${n} escape`, this.i, `write \\${n} and ${len} hex digits`);
          if (parseInt(hex, 16) > 0x10ffff) this.fail(`invalid \\${n} escape: ${hex} is past the last Unicode code point`, this.i, 'Unicode ends at \\U0010FFFF');
          buf += String.fromCodePoint(parseInt(hex, 16));
          this.i += 2 + len;
        } else this.fail(`invalid escape "\\${n}"`, this.i, 'use \\n, \\t, \\r, \\", \\\\, \\uNNNN');
        continue;
      }
      if (this.startsWith('$${') || this.startsWith('%%{')) {
        buf += `${c}{`;
        this.i += 3;
        continue;
      }
      if (this.startsWith('${')) {
        const iat = open();
        const e = this.expr(true);
        this.skip(true);
        if (this.peek() === '~') {
          this.i++;
          stripNext = true;
        }
        if (this.peek() !== '}') this.fail(`expected "}" to close the interpolation opened at column ${this.pos(iat).column}, found ${this.describe()}`);
        this.i++;
        parts.push(e);
        continue;
      }
      if (this.startsWith('%{')) {
        const dat = open();
        const kw = this.ident() ?? '';
        if (stops.includes(kw)) return { parts, stop: kw, stopAt: dat, stripAfter: this.closeDirective(dat) };
        if (kw === 'if') {
          const cond = this.expr(true);
          const then = this.templateParts(end, ['else', 'endif'], this.closeDirective(dat), dat);
          let els: { parts: (string | Expr)[]; stripAfter: boolean } | undefined;
          if (then.stop === 'else') els = this.templateParts(end, ['endif'], then.stripAfter, dat);
          parts.push({ kind: 'templateIf', cond, then: this.fold(then.parts, dat), else: els === undefined ? undefined : this.fold(els.parts, dat), pos: this.pos(dat) });
          stripNext = (els ?? then).stripAfter;
          continue;
        }
        if (kw === 'for') {
          const { keyVar, valueVar } = this.forVars('%{ for');
          if (!this.startsWith('in') || ID_CONT.test(this.peek(2))) this.fail(`expected "in" in %{ for }, found ${this.describe()}`, this.i, 'write %{ for V in LIST }…%{ endfor }');
          this.i += 2;
          const collection = this.expr(true);
          const body = this.templateParts(end, ['endfor'], this.closeDirective(dat), dat);
          parts.push({ kind: 'templateFor', keyVar, valueVar, collection, body: this.fold(body.parts, dat), pos: this.pos(dat) });
          stripNext = body.stripAfter;
          continue;
        }
        this.fail(`unknown template directive "${kw}"`, dat, 'use %{ if C }…%{ else }…%{ endif } or %{ for V in L }…%{ endfor }; write %%{ for a literal %{');
      }
      buf += c;
      this.i++;
    }
    if (buf !== '') parts.push(buf);
    return { parts, stopAt: this.i, stripAfter: false };
  }

  heredoc(): Expr {
    const at = this.i;
    this.i += 2;
    const flush = this.peek() === '-';
    if (flush) this.i++;
    const marker = this.ident();
    if (marker === undefined) this.fail('expected a heredoc marker after <<', this.i, 'write <<EOT, then the text, then EOT on its own line');
    this.skip(false);
    if (this.peek() !== '\n') this.fail(`expected a newline after <<${flush ? '-' : ''}${marker}`, this.i);
    this.i++;
    const lines: string[] = [];
    const startLine = this.pos().line;
    for (;;) {
      if (this.i >= this.s.length) this.fail(`unterminated heredoc: no line "${marker}"`, at, `end the text with ${marker} on its own line`);
      const nl = this.s.indexOf('\n', this.i);
      const lineEnd = nl < 0 ? this.s.length : nl;
      const line = this.s.slice(this.i, lineEnd).replace(/\r$/, '');
      this.i = lineEnd;
      if (line.trim() === marker) break;
      lines.push(line);
      if (nl < 0) this.fail(`unterminated heredoc: no line "${marker}"`, at, `end the text with ${marker} on its own line`);
      this.i++;
    }
    let strip = 0;
    if (flush) {
      const indents = lines.filter((l) => l.trim() !== '').map((l) => /^[ \t]*/.exec(l)?.[0].length ?? 0);
      strip = indents.length === 0 ? 0 : Math.min(...indents);
    }
    const text = lines.map((l) => `${l.slice(Math.min(strip, /^[ \t]*/.exec(l)?.[0].length ?? 0))}\n`).join('');
    const sub = new Parser(text, this.file, { file: this.file, line: startLine, column: 1 + strip, offset: 0 }, this.depth);
    const t = sub.templateUntil(undefined);
    return { ...t, pos: this.pos(at) } as Expr;
  }
}
