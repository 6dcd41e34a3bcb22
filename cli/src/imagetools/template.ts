import { ImagetoolsError } from './errors.js';
import { goJson } from './go-json.js';

/**
 * The part of Go's text/template that `imagetools inspect --format` templates use: text with
 * `{{ … }}` actions holding a pipeline of commands — a field path (`.Manifest.Digest`,
 * `.Image.Config.Env`), a string, a parenthesised pipeline, or a function (`json`, `println`,
 * `print`, `index MAP KEY…`) with such arguments — and `{{-`/`-}}` trimming. Field names are Go's
 * (`.Manifest.MediaType`); they find the JSON key of the same name, lower-camel or aliased
 * (`DiffIDs` → `diff_ids`). A non-string value prints as compact JSON, not Go's `%v`.
 */
export function executeTemplate(template: string, data: unknown): string {
  const parts = parseTemplate(template);
  let out = '';
  for (const p of parts) out += typeof p === 'string' ? p : show(evalPipeline(p, data));
  return out;
}

/**
 * Whether buildx prints the summary for this `--format` rather than executing it: for an empty
 * template, and for one whose parsed form (`tpl.Root.String()`: no spaces or trim markers inside
 * the braces, text before the first action kept) starts with `{{.Manifest`.
 */
export function printsSummary(template: string): boolean {
  if (template === '') return true;
  const [first] = parseTemplate(template);
  if (first === undefined || typeof first === 'string') return false;
  const cmd = first[0];
  const arg = cmd?.args[0];
  return cmd?.fn === undefined && arg?.kind === 'path' && `.${arg.path.join('.')}`.startsWith('.Manifest');
}

type Arg = { kind: 'path'; path: string[] } | { kind: 'string'; value: string } | { kind: 'pipe'; pipe: Pipeline; fields: string[] };
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

function bad(template: string, why: string): ImagetoolsError {
  return new ImagetoolsError('KLN0860', `invalid --format template ${JSON.stringify(template)}: ${why}`, {
    hint: "use e.g. '{{json .Manifest}}', '{{json .Image}}', '{{.Manifest.Digest}}', '{{json .Provenance}}' or '{{json .SBOM}}'",
  });
}

/** Splits the template into text and parsed actions; throws KLN0860 on a syntax error. */
export function parseTemplate(template: string): Array<string | Pipeline> {
  const out: Array<string | Pipeline> = [];
  let i = 0;
  let text = '';
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    if (open < 0) {
      text += template.slice(i);
      break;
    }
    text += template.slice(i, open);
    const close = template.indexOf('}}', open + 2);
    if (close < 0) throw bad(template, 'unclosed action');
    let body = template.slice(open + 2, close);
    i = close + 2;
    if (body.startsWith('- ')) {
      text = text.replace(/\s+$/, '');
      body = body.slice(1);
    }
    let trimAfter = false;
    if (body.endsWith(' -')) {
      trimAfter = true;
      body = body.slice(0, -1);
    }
    if (text !== '') out.push(text);
    text = '';
    out.push(parsePipeline(template, tokenize(template, body)));
    if (trimAfter) while (i < template.length && /\s/.test(template[i] as string)) i++;
  }
  if (text !== '') out.push(text);
  return out;
}

function tokenize(template: string, body: string): string[] {
  const toks: string[] = [];
  // `).Field.Sub` stays one token: a field of a parenthesised pipeline's value.
  const re = /\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\(|\)(?:\.[^\s()|"`]+)?|\||[^\s()|"`]+)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(body)) !== null) {
    toks.push(m[1] as string);
    last = re.lastIndex;
  }
  if (body.slice(last).trim() !== '') throw bad(template, `cannot parse "${body.slice(last).trim()}"`);
  return toks;
}

const MAX_DEPTH = 100;

function parsePipeline(template: string, toks: string[]): Pipeline {
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
    if (t === undefined) throw bad(template, 'missing value');
    if (t === '(') {
      // Go's parser has no such limit, but a template nested this deep is no template.
      if (++depth > MAX_DEPTH) throw bad(template, `parentheses nested deeper than ${MAX_DEPTH}`);
      const p = pipeline();
      depth--;
      const close = toks[pos++];
      if (close === undefined || !close.startsWith(')')) throw bad(template, 'unclosed (');
      return { kind: 'pipe', pipe: p, fields: close.length > 1 ? close.slice(2).split('.') : [] };
    }
    if (t.startsWith('"')) return { kind: 'string', value: JSON.parse(t) as string };
    if (t.startsWith('`')) return { kind: 'string', value: t.slice(1, -1) };
    if (t === '.') return { kind: 'path', path: [] };
    if (t.startsWith('.')) return { kind: 'path', path: t.slice(1).split('.') };
    throw bad(template, `unknown function or value "${t}"`);
  };
  const command = (): Command => {
    const t = toks[pos];
    if (t === undefined || t === '|' || t.startsWith(')')) throw bad(template, 'empty command');
    if (FUNCS.has(t)) {
      pos++;
      const args: Arg[] = [];
      while (pos < toks.length && toks[pos] !== '|' && !(toks[pos] ?? '').startsWith(')')) args.push(arg());
      return { fn: t, args };
    }
    const a = arg();
    if (pos < toks.length && toks[pos] !== '|' && !(toks[pos] ?? '').startsWith(')')) throw bad(template, `"${toks[pos] ?? ''}" after a value`);
    return { args: [a] };
  };
  const p = pipeline();
  if (pos !== toks.length) throw bad(template, `unexpected "${toks[pos] ?? ''}"`);
  return p;
}

function field(v: unknown, name: string): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  // Own keys only: inherited ones (constructor, __proto__) are no fields of the Go value.
  for (const k of [name, ALIASES[name], name.charAt(0).toLowerCase() + name.slice(1)]) if (k !== undefined && Object.hasOwn(r, k)) return r[k];
  const lower = name.toLowerCase();
  const k = Object.keys(r).find((x) => x.toLowerCase() === lower);
  return k === undefined ? undefined : r[k];
}

function evalArg(a: Arg, data: unknown): unknown {
  switch (a.kind) {
    case 'string':
      return a.value;
    case 'pipe':
      return a.fields.reduce<unknown>((v, name) => field(v, name), evalPipeline(a.pipe, data));
    case 'path':
      return a.path.reduce<unknown>((v, name) => field(v, name), data);
  }
}

function evalPipeline(p: Pipeline, data: unknown): unknown {
  let prev: unknown[] = [];
  let v: unknown;
  for (const cmd of p) {
    const args = [...cmd.args.map((a) => evalArg(a, data)), ...prev];
    switch (cmd.fn) {
      case undefined:
        v = args[0];
        break;
      case 'json':
        // Go's json template funcs of buildx: MarshalIndent(v, "", "  ").
        v = goJson(args[0] ?? null, '  ');
        break;
      case 'print':
        v = args.map(show).join('');
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
