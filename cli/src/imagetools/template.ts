import { suggest } from '@kiln/llb-core';
import { ImagetoolsError } from './errors.js';
import { goJson } from './go-json.js';

/**
 * The part of Go's text/template that `imagetools inspect --format` templates use: text with
 * `{{ … }}` actions holding a pipeline of commands — a field path (`.Manifest.Digest`,
 * `.Image.Config.Env`, `$.Name` from the top), a string, a parenthesised pipeline, or a function
 * (`json`, `println`, `print`, `index MAP KEY…`) with such arguments — `{{-`/`-}}` trimming, and
 * the control actions `{{if P}}`, `{{with P}}` and `{{range P}}` with `{{else}}`/`{{else if P}}`
 * and `{{end}}` (Go's truth: false, 0, "", null and empty lists and maps are false; `range` walks
 * a list, or a map's values in sorted key order, with `.` set to each). Field names are Go's
 * (`.Manifest.MediaType`); they find the JSON key of the same name, lower-camel or aliased
 * (`DiffIDs` → `diff_ids`). A non-string value prints as compact JSON, not Go's `%v`.
 */
export function executeTemplate(template: string, data: unknown, opts: { readonly struct?: boolean } = {}): string {
  const nodes = parseTemplate(template);
  if (opts.struct !== true || typeof data !== 'object' || data === null) return execNodes(template, nodes, data, data);
  structs.add(data);
  try {
    return execNodes(template, nodes, data, data);
  } finally {
    structs.delete(data);
  }
}

/**
 * Values that are Go structs (`executeTemplate`'s `struct` option: buildx's template input): a
 * field they lack is an error, as Go's "can't evaluate field X in type …", not `<no value>` (a
 * map's missing key), so `{{json .Manfest}}` is refused instead of printing `null`.
 */
const structs = new WeakSet<object>();

/** A field a struct lacks; {@link execNodes} refuses the template at the action that named it. */
class MissingField extends Error {
  constructor(readonly field: string, readonly fields: readonly string[]) {
    super(`can't evaluate field ${field}`);
  }
}

/**
 * Whether buildx prints the summary for this `--format` rather than executing it: for an empty
 * template, and for one whose parsed form (`tpl.Root.String()`: no spaces or trim markers inside
 * the braces, text before the first action kept) starts with `{{.Manifest`.
 */
export function printsSummary(template: string): boolean {
  if (template === '') return true;
  const [first] = parseTemplate(template);
  if (first === undefined || first.kind !== 'action') return false;
  const cmd = first.pipe[0];
  const arg = cmd?.args[0];
  return cmd?.fn === undefined && arg?.kind === 'path' && !arg.root && `.${arg.path.join('.')}`.startsWith('.Manifest');
}

/** A parsed template: text, actions that print a pipeline, and control actions with their bodies. */
type TemplateNode =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline; pos: number }
  /** `pos`: offset of the action's `{{` (execution errors name its line and column). */
  | { kind: 'if' | 'with' | 'range'; pipe: Pipeline; body: TemplateNode[]; otherwise: TemplateNode[]; pos: number };

type Arg =
  | { kind: 'path'; path: string[]; root: boolean }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'pipe'; pipe: Pipeline; fields: string[] };
type Command = { fn?: string | undefined; args: Arg[] };
type Pipeline = Command[];

const FUNCS = new Set(['json', 'println', 'print', 'index']);
const ALIASES: Readonly<Record<string, string>> = {
  DiffIDs: 'diff_ids',
  OSVersion: 'os.version',
  OSFeatures: 'os.features',
  URLs: 'urls',
  CreatedBy: 'created_by',
  EmptyLayer: 'empty_layer',
  RootFS: 'rootfs',
};

/**
 * A KLN0860 refusal of the template, located as Go's template errors are: the line and column
 * (1-based) of the action at `pos`, when there is one.
 */
function bad(template: string, why: string, pos?: number): ImagetoolsError {
  let where = '';
  if (pos !== undefined) {
    const before = template.slice(0, pos);
    const line = before.split('\n').length;
    where = `${line}:${pos - (before.lastIndexOf('\n') + 1) + 1}: `;
  }
  return new ImagetoolsError('KLN0860', `invalid --format template ${JSON.stringify(template)}: ${where}${why}`, {
    hint: "use e.g. '{{json .Manifest}}', '{{json .Image}}', '{{.Manifest.Digest}}', '{{json .Provenance}}', '{{json .SBOM}}' or '{{range .Manifest.Manifests}}{{println .Digest}}{{end}}'",
  });
}

/** Go's space characters: what trim markers need beside them and what they trim. */
const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';

/** One action as Go's lexer delimits it: `{{` at `open`, its body, and whether it trims either side. */
interface ActionSpan {
  readonly open: number;
  /** The text between the delimiters and trim markers; undefined for a comment. */
  readonly body: string | undefined;
  readonly trimBefore: boolean;
  readonly trimAfter: boolean;
  /** Offset just after the closing `}}`. */
  readonly end: number;
}

/**
 * Delimits the action whose `{{` is at `open`, as Go's lexer: a left trim marker is `-` and a
 * space character, a right one a space character and `-`; `}}` inside a quoted or raw string or a
 * character constant does not close the action; a comment (`/* … *\/`) must follow the left
 * delimiter (and trim marker) directly and be followed by the right one.
 */
function scanAction(template: string, open: number): ActionSpan {
  let j = open + 2;
  const trimBefore = template[j] === '-' && isSpace(template[j + 1]);
  if (trimBefore) j += 2;
  const closeAt = (k: number): { trim: boolean; end: number } | undefined => {
    if (isSpace(template[k]) && template[k + 1] === '-' && template.startsWith('}}', k + 2)) return { trim: true, end: k + 4 };
    if (template.startsWith('}}', k)) return { trim: false, end: k + 2 };
    return undefined;
  };
  if (template.startsWith('/*', j)) {
    const c = template.indexOf('*/', j + 2);
    if (c < 0) throw bad(template, 'unclosed comment', open);
    const close = closeAt(c + 2);
    if (close === undefined) throw bad(template, 'comment ends before closing delimiter', open);
    return { open, body: undefined, trimBefore, trimAfter: close.trim, end: close.end };
  }
  for (let k = j; k < template.length; ) {
    const close = closeAt(k);
    if (close !== undefined) return { open, body: template.slice(j, k), trimBefore, trimAfter: close.trim, end: close.end };
    const c = template[k];
    if (c === '"' || c === "'") {
      // a quoted string or character constant: escapes skipped, no newline (Go: unterminated)
      let m = k + 1;
      while (m < template.length && template[m] !== c && template[m] !== '\n') m += template[m] === '\\' ? 2 : 1;
      if (template[m] !== c) throw bad(template, c === '"' ? 'unterminated quoted string' : 'unterminated character constant', open);
      k = m + 1;
    } else if (c === '`') {
      const m = template.indexOf('`', k + 1);
      if (m < 0) throw bad(template, 'unterminated raw quoted string', open);
      k = m + 1;
    } else {
      k++;
    }
  }
  throw bad(template, 'unclosed action', open);
}

/** An open control action while parsing: where its body and else branch go. */
interface Frame {
  readonly node: Extract<TemplateNode, { body: TemplateNode[] }>;
  inElse: boolean;
  /** Opened by `{{else if}}`: closed by the same `{{end}}` as the action it continues. */
  readonly chained: boolean;
}

/** Parses the template into text, actions and control actions; throws KLN0860 on a syntax error. */
export function parseTemplate(template: string): TemplateNode[] {
  const root: TemplateNode[] = [];
  const frames: Frame[] = [];
  const into = (): TemplateNode[] => {
    const f = frames.at(-1);
    return f === undefined ? root : f.inElse ? f.node.otherwise : f.node.body;
  };
  let i = 0;
  let text = '';
  const flushText = (): void => {
    if (text !== '') into().push({ kind: 'text', text });
    text = '';
  };
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) {
      text += template.slice(i);
      break;
    }
    text += template.slice(i, open);
    const span = scanAction(template, open);
    i = span.end;
    if (span.trimBefore) text = text.replace(/[ \t\r\n]+$/, '');
    flushText();
    if (span.body !== undefined) parseAction(template, span.body, open, frames, into);
    if (span.trimAfter) while (i < template.length && isSpace(template[i])) i++;
  }
  flushText();
  if (frames.length > 0) throw bad(template, `missing {{end}} for {{${frames[0]?.node.kind ?? ''}}}`, frames[0]?.node.pos);
  return root;
}

/** Parses one action's body at `pos` into the node list `into()` gives, opening and closing control actions. */
function parseAction(template: string, body: string, pos: number, frames: Frame[], into: () => TemplateNode[]): void {
  const toks = tokenize(template, body, pos);
  const word = toks[0];
  if (word === 'if' || word === 'with' || word === 'range') {
    const node: Frame['node'] = { kind: word, pipe: parsePipeline(template, toks.slice(1), pos), body: [], otherwise: [], pos };
    into().push(node);
    frames.push({ node, inElse: false, chained: false });
  } else if (word === 'else') {
    const f = frames.at(-1);
    if (f === undefined || f.inElse) throw bad(template, '{{else}} without {{if}}, {{with}} or {{range}}', pos);
    const next = toks[1];
    if (next === 'if' || next === 'with') {
      // {{else if P}} continues an {{if}}, {{else with P}} a {{with}} (Go: an if or with inside
      // the else branch, ended by the same {{end}}); anywhere else Go finds it unexpected
      if (f.node.kind !== next) throw bad(template, `{{else ${next}}} continues only an {{${next}}}, not an {{${f.node.kind}}}`, pos);
      f.inElse = true;
      const node: Frame['node'] = { kind: next, pipe: parsePipeline(template, toks.slice(2), pos), body: [], otherwise: [], pos };
      f.node.otherwise.push(node);
      frames.push({ node, inElse: false, chained: true });
    } else if (toks.length > 1) {
      throw bad(template, `unexpected "${next ?? ''}" after else`, pos);
    } else {
      f.inElse = true;
    }
  } else if (word === 'end') {
    if (toks.length > 1) throw bad(template, `unexpected "${toks[1] ?? ''}" after end`, pos);
    let f = frames.pop();
    if (f === undefined) throw bad(template, '{{end}} without {{if}}, {{with}} or {{range}}', pos);
    while (f?.chained === true) f = frames.pop();
  } else {
    into().push({ kind: 'action', pipe: parsePipeline(template, toks, pos), pos });
  }
}

function tokenize(template: string, body: string, pos: number): string[] {
  const toks: string[] = [];
  // `).Field.Sub` stays one token: a field of a parenthesised pipeline's value.
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)(?:\.[^\s()|"`]+)?|\||[^\s()|"`]+)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(body)) !== null) {
    toks.push(m[1] as string);
    last = re.lastIndex;
  }
  if (body.slice(last).trim() !== '') throw bad(template, `cannot parse "${body.slice(last).trim()}"`, pos);
  return toks;
}

const MAX_DEPTH = 100;

function parsePipeline(template: string, toks: string[], at: number): Pipeline {
  let pos = 0;
  let depth = 0;
  const pipeline = (): Pipeline => {
    const cmds: Pipeline = [command()];
    while (toks[pos] === '|') {
      pos++;
      cmds.push(command());
    }
    return cmds;
  };
  const arg = (): Arg => {
    const t = toks[pos++];
    if (t === undefined) throw bad(template, 'missing value', at);
    if (t === '(') {
      // Go's parser has no such limit, but a template nested this deep is no template.
      if (++depth > MAX_DEPTH) throw bad(template, `parentheses nested deeper than ${MAX_DEPTH}`, at);
      const p = pipeline();
      depth--;
      const close = toks[pos++];
      if (close === undefined || !close.startsWith(')')) throw bad(template, 'unclosed (', at);
      return { kind: 'pipe', pipe: p, fields: close.length > 1 ? close.slice(2).split('.') : [] };
    }
    if (t.startsWith('"')) return { kind: 'string', value: JSON.parse(t) as string };
    if (t.startsWith('`')) return { kind: 'string', value: t.slice(1, -1) };
    if (/^-?\d+$/.test(t)) return { kind: 'number', value: Number(t) };
    if (t === 'true' || t === 'false') return { kind: 'bool', value: t === 'true' };
    if (t === '.') return { kind: 'path', path: [], root: false };
    if (t.startsWith('.')) return { kind: 'path', path: t.slice(1).split('.'), root: false };
    // `$` is the data given to the template (the top level inside range and with)
    if (t === '$') return { kind: 'path', path: [], root: true };
    if (t.startsWith('$.')) return { kind: 'path', path: t.slice(2).split('.'), root: true };
    if (t.startsWith('$') || t === ':=' || t === '=') throw bad(template, 'variables ($x, :=) are not supported', at);
    if (['if', 'with', 'range', 'else', 'end', 'define', 'template', 'block', 'break', 'continue'].includes(t)) throw bad(template, `"${t}" is not allowed here`, at);
    throw bad(template, `unknown function or value "${t}"`, at);
  };
  const command = (): Command => {
    const t = toks[pos];
    if (t === undefined || t === '|' || t.startsWith(')')) throw bad(template, 'empty command', at);
    if (FUNCS.has(t)) {
      pos++;
      const args: Arg[] = [];
      while (pos < toks.length && toks[pos] !== '|' && !(toks[pos] ?? '').startsWith(')')) args.push(arg());
      return { fn: t, args };
    }
    const a = arg();
    if (pos < toks.length && toks[pos] !== '|' && !(toks[pos] ?? '').startsWith(')')) throw bad(template, `"${toks[pos] ?? ''}" after a value`, at);
    return { args: [a] };
  };
  const p = pipeline();
  if (pos !== toks.length) throw bad(template, `unexpected "${toks[pos] ?? ''}"`, at);
  return p;
}

function field(v: unknown, name: string): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  // Own keys only: inherited ones (constructor, __proto__) are no fields of the Go value.
  for (const k of [name, ALIASES[name], name.charAt(0).toLowerCase() + name.slice(1)]) if (k !== undefined && Object.hasOwn(r, k)) return r[k];
  const lower = name.toLowerCase();
  const k = Object.keys(r).find((x) => x.toLowerCase() === lower);
  if (k === undefined && structs.has(r)) throw new MissingField(name, Object.keys(r));
  return k === undefined ? undefined : r[k];
}

function evalArg(a: Arg, dot: unknown, top: unknown): unknown {
  switch (a.kind) {
    case 'string':
    case 'number':
    case 'bool':
      return a.value;
    case 'pipe':
      return a.fields.reduce<unknown>((v, name) => field(v, name), evalPipeline(a.pipe, dot, top));
    case 'path':
      return a.path.reduce<unknown>((v, name) => field(v, name), a.root ? top : dot);
  }
}

/** Runs parsed nodes with `.` = `dot` and `$` = `top`. */
function execNodes(template: string, nodes: ReadonlyArray<TemplateNode>, dot: unknown, top: unknown): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind !== 'text') out += execNode(template, n, dot, top);
    else out += n.text;
  }
  return out;
}

/** Runs one action or control action; a field its struct lacks refuses the template there. */
function execNode(template: string, n: Exclude<TemplateNode, { kind: 'text' }>, dot: unknown, top: unknown): string {
  try {
    let out = '';
    switch (n.kind) {
      case 'action':
        out += show(evalPipeline(n.pipe, dot, top));
        break;
      case 'if':
      case 'with': {
        const v = evalPipeline(n.pipe, dot, top);
        if (truth(v)) out += execNodes(template, n.body, n.kind === 'with' ? v : dot, top);
        else out += execNodes(template, n.otherwise, dot, top);
        break;
      }
      case 'range': {
        const items = rangeItems(template, evalPipeline(n.pipe, dot, top), n.pos);
        if (items.length === 0) out += execNodes(template, n.otherwise, dot, top);
        for (const item of items) out += execNodes(template, n.body, item, top);
        break;
      }
    }
    return out;
  } catch (e) {
    if (!(e instanceof MissingField)) throw e;
    const near = suggest(e.field, e.fields);
    throw bad(template, `can't evaluate field ${e.field} (the fields are ${e.fields.join(', ')})${near === undefined ? '' : `: did you mean .${near}?`}`, n.pos);
  }
}

/** Go's truth of a value: false, 0, "", nil and empty lists and maps are false. */
function truth(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** What `range` walks: a list's elements, a map's values in sorted key order (as Go), nothing for no value. */
function rangeItems(template: string, v: unknown, pos: number): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'object') {
    const r = v as Record<string, unknown>;
    return Object.keys(r)
      .sort()
      .map((k) => r[k]);
  }
  throw bad(template, `range can't iterate over ${typeof v === 'string' ? 'a string' : String(v)}`, pos);
}

function evalPipeline(p: Pipeline, dot: unknown, top: unknown): unknown {
  let prev: unknown[] = [];
  let v: unknown;
  for (const cmd of p) {
    const args = [...cmd.args.map((a) => evalArg(a, dot, top)), ...prev];
    switch (cmd.fn) {
      case undefined:
        v = args[0];
        break;
      case 'json':
        // Go's json template funcs of buildx: MarshalIndent(v, "", "  ").
        v = goJson(args[0] ?? null, '  ');
        break;
      case 'print':
        // fmt.Sprint: a space between two operands when neither is a string
        v = args.map((a, i) => (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string' ? ' ' : '') + show(a)).join('');
        break;
      case 'println':
        v = `${args.map(show).join(' ')}\n`;
        break;
      case 'index':
        v = args.slice(1).reduce<unknown>((x, k) => (typeof x === 'object' && x !== null && Object.hasOwn(x, String(k)) ? (x as Record<string, unknown>)[String(k)] : undefined), args[0]);
        break;
    }
    prev = [v];
  }
  return v;
}

function show(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return goJson(v);
}
