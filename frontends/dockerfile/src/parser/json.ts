/**
 * The JSON (exec) form of instruction arguments: a chevrotain grammar for JSON values that keeps
 * the offset of every array element, so a non-string element can be reported at its column.
 * It accepts exactly what `JSON.parse` (and Go's encoding/json) accept, and decodes as Go's
 * Unmarshal into `[]interface{}` does (lone surrogates, numbers out of float64's range).
 */
import { EmbeddedActionsParser, Lexer, createToken } from './chevrotain.js';
import type { IToken } from 'chevrotain';

/** One parsed JSON value with the offset of its first character. */
type JsonNode = { kind: 'string'; value: string; offset: number } | { kind: 'other'; offset: number } | { kind: 'array'; items: JsonNode[]; offset: number };

/** The grammar's lexer and a parse of lexed tokens (undefined when they are not one JSON value). */
interface Grammar {
  readonly lexer: InstanceType<typeof Lexer>;
  parse(tokens: IToken[]): JsonNode | undefined;
  /** True when `t` is a number literal outside float64's range. */
  overflows(t: IToken): boolean;
}

/**
 * Built on first use, and only for text the fast path below does not take: its tokens, lexer and
 * parser cost about 25 ms of start-up, more than the JSON of a whole Dockerfile.
 */
let grammar: Grammar | undefined;

function buildGrammar(): Grammar {
  const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\n\r]+/, group: Lexer.SKIPPED });
  const LSquare = createToken({ name: 'LSquare', pattern: /\[/ });
  const RSquare = createToken({ name: 'RSquare', pattern: /]/ });
  const LCurly = createToken({ name: 'LCurly', pattern: /{/ });
  const RCurly = createToken({ name: 'RCurly', pattern: /}/ });
  const Comma = createToken({ name: 'Comma', pattern: /,/ });
  const Colon = createToken({ name: 'Colon', pattern: /:/ });
  const StringLiteral = createToken({
    name: 'StringLiteral',
    pattern: /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/,
  });
  const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/ });
  const True = createToken({ name: 'True', pattern: /true/ });
  const False = createToken({ name: 'False', pattern: /false/ });
  const Null = createToken({ name: 'Null', pattern: /null/ });

  const allTokens = [WhiteSpace, LSquare, RSquare, LCurly, RCurly, Comma, Colon, StringLiteral, NumberLiteral, True, False, Null];


  class JsonParser extends EmbeddedActionsParser {
    constructor() {
      // chevrotain's grammar-definition checks only guard this fixed grammar against authoring
      // mistakes (json.test.ts covers what it parses); skipping them saves start-up time
      super(allTokens, { recoveryEnabled: false, maxLookahead: 1, skipValidations: true });
      this.performSelfAnalysis();
    }

    readonly value = this.RULE('value', (): JsonNode =>
      this.OR([
        { ALT: () => this.SUBRULE(this.array) },
        { ALT: () => this.SUBRULE(this.object) },
        {
          ALT: () => {
            const t = this.CONSUME(StringLiteral);
            return { kind: 'string', value: this.ACTION(() => decodeString(t)), offset: t.startOffset };
          },
        },
        { ALT: () => ({ kind: 'other', offset: this.CONSUME(NumberLiteral).startOffset }) },
        { ALT: () => ({ kind: 'other', offset: this.CONSUME(True).startOffset }) },
        { ALT: () => ({ kind: 'other', offset: this.CONSUME(False).startOffset }) },
        { ALT: () => ({ kind: 'other', offset: this.CONSUME(Null).startOffset }) },
      ]),
    );

    private readonly array = this.RULE('array', (): JsonNode => {
      const open = this.CONSUME(LSquare);
      const items: JsonNode[] = [];
      this.MANY_SEP({ SEP: Comma, DEF: () => items.push(this.SUBRULE(this.value)) });
      this.CONSUME(RSquare);
      return { kind: 'array', items, offset: open.startOffset };
    });

    private readonly object = this.RULE('object', (): JsonNode => {
      const open = this.CONSUME(LCurly);
      this.MANY_SEP({
        SEP: Comma,
        DEF: () => {
          this.CONSUME(StringLiteral);
          this.CONSUME(Colon);
          this.SUBRULE(this.value);
        },
      });
      this.CONSUME(RCurly);
      return { kind: 'other', offset: open.startOffset };
    });
  }

  const lexer = new Lexer(allTokens, { positionTracking: 'onlyOffset' });
  const parser = new JsonParser();
  return {
    lexer,
    parse(tokens) {
      parser.input = tokens;
      const v = parser.value();
      return parser.errors.length > 0 ? undefined : v;
    },
    overflows: (t) => t.tokenType === NumberLiteral && !Number.isFinite(Number(t.image)),
  };
}

function decodeString(t: IToken): string {
  // the token matched JSON's string grammar, so JSON.parse cannot fail here
  return wellFormed(JSON.parse(t.image) as string);
}

/** A UTF-16 surrogate that pairs with no neighbour (a lone one). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const SURROGATE = /[\ud800-\udfff]/;

/**
 * Go's encoding/json (unquote) decodes an escaped surrogate that does not pair with the escape
 * after it as U+FFFD; JSON.parse keeps it as a lone UTF-16 unit, which would then reach the
 * LLB, the image config and the history differently from BuildKit.
 */
function wellFormed(s: string): string {
  return SURROGATE.test(s) ? s.replace(LONE_SURROGATE, '\ufffd') : s;
}

/** A JSON array of strings with element offsets (relative to the parsed text). */
export interface JsonArray {
  readonly elements: readonly { readonly value: string; readonly offset: number }[];
  /** Offset of the first element that is not a string, when there is one. */
  readonly nonString: number | undefined;
}

/**
 * Parse `text` as a JSON array. Undefined when it is not valid JSON or not an array (the caller
 * then falls back to the shell form, as BuildKit does).
 */
export function parseJsonArray(text: string): JsonArray | undefined {
  return stringArrayFast(text) ?? parseJsonGrammar(text);
}

/**
 * The common case: `text` is valid JSON (JSON.parse accepts exactly the grammar above) and an
 * array of strings only. The offsets then come from a scan that can rely on that validity.
 * Anything else (invalid JSON, other values) takes the grammar, which tells where it failed.
 */
function stringArrayFast(text: string): JsonArray | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  const values = v as unknown[];
  for (const x of values) if (typeof x !== 'string') return undefined;
  const elements: { value: string; offset: number }[] = [];
  // valid JSON whose top value is an array of strings: after '[', each element is a '"' after
  // whitespace or a ',', and a string ends at the first '"' not escaped by a backslash
  let i = text.indexOf('[') + 1;
  for (const value of values as string[]) {
    i = text.indexOf('"', i);
    elements.push({ value: wellFormed(value), offset: i });
    for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    i++;
  }
  return { elements, nonString: undefined };
}

function parseJsonGrammar(text: string): JsonArray | undefined {
  grammar ??= buildGrammar();
  const lexed = grammar.lexer.tokenize(text);
  if (lexed.errors.length > 0) return undefined;
  const v = grammar.parse(lexed.tokens);
  if (v === undefined || v.kind !== 'array') return undefined;
  // Go decodes a number out of float64's range (anywhere in the value) as an UnmarshalTypeError,
  // not errDockerfileNotStringArray, so BuildKit's parseMaybeJSON takes the shell form
  for (const t of lexed.tokens) if (grammar.overflows(t)) return undefined;
  const elements: { value: string; offset: number }[] = [];
  let nonString: number | undefined;
  for (const item of v.items) {
    if (item.kind === 'string') elements.push({ value: item.value, offset: item.offset });
    else if (nonString === undefined) nonString = item.offset;
  }
  return { elements, nonString };
}
