import { findJsonSyntaxError } from '@kiln/llb-core';
import { SourcePolicyError } from './errors.js';
import { compileGoRegexp, compileWildcard, groupsOf, PatternError, templateRefs } from './pattern.js';

/** `PolicyAction` of BuildKit's sourcepolicy/pb/policy.proto. */
export type PolicyAction = 'ALLOW' | 'DENY' | 'CONVERT';
/** `MatchType`: how a selector's identifier is compared with a source's. */
export type MatchType = 'WILDCARD' | 'EXACT' | 'REGEX';
/** `AttrMatch`: how a constraint compares one attribute of the source. */
export type AttrMatch = 'EQUAL' | 'NOTEQUAL' | 'MATCHES';

/** `AttrConstraint`: the source's attribute `key` must equal, differ from or match `value`. */
export interface AttrConstraint {
  readonly key: string;
  readonly value: string;
  readonly condition: AttrMatch;
  /** `value` compiled, for `MATCHES`. */
  readonly regexp?: RegExp;
}

/** `Selector`: which sources a rule applies to. */
export interface PolicySelector {
  readonly identifier: string;
  readonly matchType: MatchType;
  readonly constraints: readonly AttrConstraint[];
  /** The identifier compiled: the wildcard's or the regexp's (none for `EXACT`). */
  readonly pattern?: RegExp;
}

/** `Update`: what a `CONVERT` rule makes of a source. */
export interface PolicyUpdate {
  /** The new identifier (with `${1}`… from a wildcard or regexp match); empty keeps it. */
  readonly identifier: string;
  /** Attributes set on the source (e.g. `http.checksum`). */
  readonly attrs: ReadonlyMap<string, string>;
}

/** `Rule`, with its place in its file for messages. */
export interface PolicyRule {
  /** The 0-based index in the file's `rules`. */
  readonly index: number;
  readonly action: PolicyAction;
  readonly selector: PolicySelector;
  readonly updates?: PolicyUpdate;
}

/** A parsed `Policy` file (`--source-policy-file`, `EXPERIMENTAL_BUILDKIT_SOURCE_POLICY`). */
export interface SourcePolicy {
  /** The file as the user named it, for messages. */
  readonly file: string;
  readonly version: number;
  readonly rules: readonly PolicyRule[];
}

// Enum values as BuildKit's sourcepolicy/pb/json.go reads them: the name or the number.
const ACTIONS: readonly PolicyAction[] = ['ALLOW', 'DENY', 'CONVERT'];
const MATCH_TYPES: readonly MatchType[] = ['WILDCARD', 'EXACT', 'REGEX'];
const ATTR_MATCHES: readonly AttrMatch[] = ['EQUAL', 'NOTEQUAL', 'MATCHES'];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * Parses a source policy file's text (BuildKit's `Policy` as JSON, as buildctl and buildx read
 * it). Keys match case-insensitively as Go's encoding/json does; enum fields take the name or
 * the number; a field left out takes proto3's zero value (`ALLOW`, `WILDCARD`, `EQUAL`), which is
 * how Go writes them. Unlike Go, an unknown key is an error, since a misspelt one would leave a
 * rule silently matching something else. Patterns are compiled here, so a bad one fails before
 * the build. Throws KLN0951 naming `file` and the JSON path.
 */
export function parseSourcePolicy(text: string, file: string): SourcePolicy {
  let doc: Json;
  try {
    doc = JSON.parse(text) as Json;
  } catch (e) {
    throw new SourcePolicyError('KLN0951', jsonSyntaxMessage(file, text, e), { hint: 'a source policy file is JSON: {"rules": [{"action": "DENY", "selector": {"identifier": "docker-image://*"}}]}' });
  }
  const p = new FieldReader(file);
  const root = p.object(doc, '', ['version', 'rules']);
  const version = root.version === undefined ? 0 : p.integer(root.version, 'version');
  const rulesJson = root.rules === undefined ? [] : p.array(root.rules, 'rules');
  const rules = rulesJson.map((r, i) => parseRule(p, r, i));
  return { file, version, rules };
}

function parseRule(p: FieldReader, json: Json, index: number): PolicyRule {
  const at = `rules[${index}]`;
  const r = p.object(json, at, ['action', 'selector', 'updates']);
  const action = r.action === undefined ? 'ALLOW' : p.enumValue(r.action, `${at}.action`, 'action', ACTIONS);
  if (r.selector === undefined || r.selector === null) throw p.error(`${at}.selector`, 'missing', 'every rule needs a selector: {"identifier": "docker-image://docker.io/library/*"}');
  const selector = parseSelector(p, r.selector, `${at}.selector`);
  const updates = r.updates === undefined || r.updates === null ? undefined : parseUpdate(p, r.updates, `${at}.updates`);
  if (action === 'CONVERT' && (updates === undefined || (updates.identifier === '' && updates.attrs.size === 0))) {
    throw p.error(`${at}.updates`, 'a CONVERT rule needs updates with an identifier or attrs', 'add "updates": {"identifier": "docker-image://…@sha256:…"} or {"attrs": {"http.checksum": "sha256:…"}}');
  }
  if (action === 'CONVERT' && updates !== undefined && selector.pattern !== undefined) checkTemplate(p, selector, updates.identifier, `${at}.updates.identifier`);
  return { index, action, selector, ...(updates === undefined ? {} : { updates }) };
}

/**
 * A reference of the update to a group the selector does not have expands to nothing (Go's
 * Expand), so `docker-image://…/busybox:${2}` for a one-`*` selector became `busybox:` and failed
 * as an invalid reference at the FROM; `$1x` is the group named `1x` (write `${1}x`). Refused
 * here, naming the groups there are.
 */
function checkTemplate(p: FieldReader, selector: PolicySelector, template: string, at: string): void {
  if (selector.pattern === undefined) return;
  const { count, names } = groupsOf(selector.pattern);
  for (const ref of templateRefs(template)) {
    const ok = /^[0-9]+$/.test(ref) ? Number(ref) <= count : names.includes(ref);
    if (ok) continue;
    const have = [...Array.from({ length: count }, (_, i) => `\${${i + 1}}`), ...names.map((n) => `\${${n}}`)];
    const what = selector.matchType === 'WILDCARD' ? `its ${count} "*"` : 'its groups';
    throw p.error(at, `"${ref}" names no group of the selector (${have.length === 0 ? 'it has none' : `${what}: ${have.join(', ')}`})`, /^[0-9]+\D/.test(ref) ? `$${ref} is the group named "${ref}", as in Go: write \${${/^[0-9]+/.exec(ref)?.[0] ?? ''}}${ref.replace(/^[0-9]+/, '')}` : 'each "*" of a WILDCARD selector is ${1}, ${2}, …; a REGEX selector\'s groups are ${1}… or ${name}; $$ is a literal $');
  }
}

function parseSelector(p: FieldReader, json: Json, at: string): PolicySelector {
  const s = p.object(json, at, ['identifier', 'match_type', 'constraints']);
  const identifier = s.identifier === undefined ? '' : p.string(s.identifier, `${at}.identifier`);
  if (identifier === '') throw p.error(`${at}.identifier`, 'missing', 'name the sources it selects, e.g. "docker-image://docker.io/library/alpine:*"');
  const matchType = s.match_type === undefined ? 'WILDCARD' : p.enumValue(s.match_type, `${at}.match_type`, 'match type', MATCH_TYPES);
  const constraints = (s.constraints === undefined || s.constraints === null ? [] : p.array(s.constraints, `${at}.constraints`)).map((c, i) => parseConstraint(p, c, `${at}.constraints[${i}]`));
  const pattern = matchType === 'EXACT' ? undefined : p.pattern(`${at}.identifier`, () => (matchType === 'REGEX' ? compileGoRegexp(identifier) : compileWildcard(identifier)));
  return { identifier, matchType, constraints, ...(pattern === undefined ? {} : { pattern }) };
}

function parseConstraint(p: FieldReader, json: Json, at: string): AttrConstraint {
  const c = p.object(json, at, ['key', 'value', 'condition']);
  const key = c.key === undefined ? '' : p.string(c.key, `${at}.key`);
  if (key === '') throw p.error(`${at}.key`, 'missing', 'name the source attribute to compare, e.g. "http.checksum"');
  const value = c.value === undefined ? '' : p.string(c.value, `${at}.value`);
  const condition = c.condition === undefined ? 'EQUAL' : p.enumValue(c.condition, `${at}.condition`, 'condition', ATTR_MATCHES);
  const regexp = condition === 'MATCHES' ? p.pattern(`${at}.value`, () => compileGoRegexp(value)) : undefined;
  return { key, value, condition, ...(regexp === undefined ? {} : { regexp }) };
}

function parseUpdate(p: FieldReader, json: Json, at: string): PolicyUpdate {
  const u = p.object(json, at, ['identifier', 'attrs']);
  const identifier = u.identifier === undefined ? '' : p.string(u.identifier, `${at}.identifier`);
  const attrs = new Map<string, string>();
  if (u.attrs !== undefined && u.attrs !== null) {
    for (const [k, v] of Object.entries(p.object(u.attrs, `${at}.attrs`))) attrs.set(k, p.string(v, `${at}.attrs[${JSON.stringify(k)}]`));
  }
  return { identifier, attrs };
}

/** Reads typed fields of the JSON document, each failure naming the file and the JSON path. */
class FieldReader {
  readonly #file: string;

  constructor(file: string) {
    this.#file = file;
  }

  error(path: string, message: string, hint?: string): SourcePolicyError {
    return new SourcePolicyError('KLN0951', `${this.#file}: ${path === '' ? '' : `${path}: `}${message}`, hint === undefined ? {} : { hint });
  }

  /** An object; with `keys`, its keys (matched case-insensitively) are renamed to those and no others are allowed. */
  object(v: Json | undefined, path: string, keys?: readonly string[]): Record<string, Json> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw this.error(path, `expected an object, got ${describe(v)}`);
    if (keys === undefined) return v;
    const out: Record<string, Json> = {};
    for (const [k, val] of Object.entries(v)) {
      const known = keys.find((name) => name.toLowerCase() === k.toLowerCase());
      if (known === undefined) {
        const close = keys.find((name) => name.replaceAll('_', '').toLowerCase() === k.replaceAll('_', '').toLowerCase());
        throw this.error(`${path === '' ? '' : `${path}.`}${k}`, `unknown field${close === undefined ? '' : ` (did you mean "${close}"?)`}`, `${path === '' ? 'the top level' : path} has ${keys.map((n) => `"${n}"`).join(', ')}`);
      }
      out[known] = val;
    }
    return out;
  }

  array(v: Json, path: string): Json[] {
    if (!Array.isArray(v)) throw this.error(path, `expected an array, got ${describe(v)}`);
    return v;
  }

  string(v: Json, path: string): string {
    if (typeof v !== 'string') throw this.error(path, `expected a string, got ${describe(v)}`);
    return v;
  }

  integer(v: Json, path: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw this.error(path, `expected an integer, got ${describe(v)}`);
    return v;
  }

  enumValue<T extends string>(v: Json, path: string, what: string, names: readonly T[]): T {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < names.length) return names[v] as T;
    if (typeof v === 'string' && (names as readonly string[]).includes(v)) return v as T;
    const upper = typeof v === 'string' ? names.find((n) => n === v.toUpperCase()) : undefined;
    throw this.error(path, `unknown ${what} ${JSON.stringify(v)}`, upper !== undefined ? `write "${upper}" (names are upper case)` : `use one of ${names.join(', ')} (or its number 0–${names.length - 1})`);
  }

  pattern(path: string, compile: () => RegExp): RegExp {
    try {
      return compile();
    } catch (e) {
      if (e instanceof PatternError) throw this.error(path, e.message, 'a REGEX selector is a Go regular expression; a WILDCARD one uses * for any run of characters');
      throw e;
    }
  }
}

function describe(v: Json | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Where and how the file is malformed, as `file:line:col: invalid JSON: …`: JSON.parse names no
 * offset for a trailing comma, and its message then holds the text's tail, newlines included.
 */
function jsonSyntaxMessage(file: string, text: string, e: unknown): string {
  const at = findJsonSyntaxError(text);
  if (at !== undefined) return `${file}:${at.line}:${at.column}: invalid JSON: ${at.message}`;
  const msg = e instanceof Error ? e.message : String(e);
  return `${file}: invalid JSON: ${msg.split('\n')[0] ?? msg}`;
}
