import { SourcePolicyError } from './errors.js';
import { expandTemplate, goReplaceAll } from './pattern.js';
import type { PolicyRule, PolicySelector, SourcePolicy } from './policy.js';

/** A source as the policy sees it: a `SourceOp`'s identifier and attributes. */
export interface PolicySource {
  readonly identifier: string;
  readonly attrs: ReadonlyMap<string, string>;
}

/** What the policy made of a source. */
export interface PolicyDecision extends PolicySource {
  /** Whether a CONVERT rule changed the identifier or an attribute. */
  readonly mutated: boolean;
}

/** BuildKit's limit (sourcepolicy/engine.go `maxIterr`): past it, rules are taken to loop. */
const MAX_CONVERSIONS = 20;

const DOCKER_IMAGE = 'docker-image://';

/**
 * BuildKit's source policy engine (sourcepolicy/engine.go): each policy's rules are read in
 * order; for ALLOW and DENY the last matching rule wins; a matching CONVERT that changes the
 * source ends the pass, and the converted source is evaluated again from the first rule (at most
 * 20 times). A source left denied fails with KLN0952. Stateless: one engine serves every solve
 * of a build.
 */
export class SourcePolicyEngine {
  readonly policies: readonly SourcePolicy[];

  constructor(policies: readonly SourcePolicy[]) {
    this.policies = policies;
  }

  /** Whether any policy has a rule (no rules: every source is left as it is). */
  get empty(): boolean {
    return this.policies.every((p) => p.rules.length === 0);
  }

  /** Evaluates `source`; throws {@link SourcePolicyError} KLN0952, KLN0953 or KLN0954. */
  evaluate(source: PolicySource): PolicyDecision {
    if (this.empty) return { ...source, mutated: false };
    let cur: PolicySource = source;
    let mutated = false;
    for (let i = 0; ; i++) {
      if (i > MAX_CONVERSIONS) {
        throw new SourcePolicyError('KLN0953', `source ${shown(source.identifier)}: more than ${MAX_CONVERSIONS} conversions by the source policy (last ${shown(cur.identifier)})`, {
          identifier: redactIdentifier(cur.identifier),
          hint: 'two CONVERT rules turn sources into each other: make each conversion end in an identifier no CONVERT rule selects',
        });
      }
      const next = this.#pass(cur, source.identifier);
      if (next === undefined) break;
      cur = next;
      mutated = true;
    }
    return { ...cur, mutated };
  }

  /** One pass over the policies: the converted source, or undefined when nothing changed. */
  #pass(src: PolicySource, original: string): PolicySource | undefined {
    for (const policy of this.policies) {
      let deny: PolicyRule | undefined;
      for (const rule of policy.rules) {
        if (!matches(rule.selector, src)) continue;
        switch (rule.action) {
          case 'ALLOW':
            deny = undefined;
            break;
          case 'DENY':
            deny = rule;
            break;
          case 'CONVERT': {
            const next = convert(rule, src, policy.file);
            if (next !== undefined) return next;
            break;
          }
          default: {
            const never: never = rule.action;
            throw new Error(`unknown policy action ${String(never)}`);
          }
        }
      }
      if (deny !== undefined) throw denied(src.identifier, original, deny, policy.file);
    }
    return undefined;
  }
}

/**
 * `identifier` for messages: the user and password of a URL (`https://user:token@host/…`, as
 * an ADD or a CONVERT to an authenticated mirror may write) taken out, as kiln's git errors do.
 * Image references keep their `@sha256:…`.
 */
export function redactIdentifier(identifier: string): string {
  if (identifier.startsWith(DOCKER_IMAGE) || identifier.startsWith('oci-layout://')) return identifier;
  // up to the authority's last `@`: a password may hold an unescaped one (Go's url.Parse splits there too)
  return identifier.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}

const shown = (identifier: string): string => JSON.stringify(redactIdentifier(identifier));

function denied(identifier: string, original: string, rule: PolicyRule, file: string): SourcePolicyError {
  const from = identifier === original ? '' : ` (converted from ${shown(original)})`;
  return new SourcePolicyError('KLN0952', `source ${shown(identifier)}${from} denied by policy: rules[${rule.index}] (DENY ${shown(rule.selector.identifier)}) in ${file}`, {
    identifier: redactIdentifier(identifier),
    ruleIndex: rule.index,
    hint: `use an allowed source, or allow this one in ${file} with an ALLOW rule after rules[${rule.index}]`,
  });
}

/**
 * BuildKit's sourcepolicy match: every attribute constraint holds, and the identifier equals the
 * selector's or matches its wildcard or regexp. For `docker-image://`, as in BuildKit's matcher,
 * a pinned `@sha256:…` is taken off first when the whole identifier is not the selector's, and
 * patterns see the identifier without it: a rule for `alpine:latest`, `docker.io/library/*:latest`
 * or `^…/alpine:latest$` applies to the `alpine:latest@sha256:…` a frontend writes after
 * resolving the image.
 */
export function matches(sel: PolicySelector, src: PolicySource): boolean {
  for (const c of sel.constraints) {
    const v = src.attrs.get(c.key) ?? '';
    switch (c.condition) {
      case 'EQUAL':
        if (v !== c.value) return false;
        break;
      case 'NOTEQUAL':
        if (v === c.value) return false;
        break;
      case 'MATCHES':
        if (c.regexp?.test(v) !== true) return false;
        break;
      default: {
        const never: never = c.condition;
        throw new Error(`unknown attribute condition ${String(never)}`);
      }
    }
  }
  if (sel.identifier === src.identifier) return true;
  const ref = withoutDigest(src.identifier) ?? src.identifier;
  if (sel.identifier === ref) return true;
  return sel.pattern?.test(ref) === true;
}

function withoutDigest(identifier: string): string | undefined {
  if (!identifier.startsWith(DOCKER_IMAGE)) return undefined;
  const at = identifier.indexOf('@');
  return at < 0 ? undefined : identifier.slice(0, at);
}

/** The source a matching CONVERT rule makes (BuildKit's mutate), or undefined when it is unchanged. */
function convert(rule: PolicyRule, src: PolicySource, file: string): PolicySource | undefined {
  const updates = rule.updates;
  if (updates === undefined) return undefined;
  const identifier = updates.identifier === '' ? src.identifier : format(rule.selector, src.identifier, updates.identifier);
  let changed = identifier !== src.identifier;
  let attrs = src.attrs;
  for (const [k, v] of updates.attrs) {
    if (attrs.get(k) === v) continue;
    if (attrs === src.attrs) attrs = new Map(src.attrs);
    (attrs as Map<string, string>).set(k, v);
    changed = true;
  }
  if (!changed) return undefined;
  const scheme = identifier.indexOf('://');
  if (scheme <= 0 || scheme + 3 === identifier.length) {
    throw new SourcePolicyError('KLN0954', `rules[${rule.index}] in ${file} converts ${shown(src.identifier)} to ${shown(identifier)}, which is not a source identifier`, {
      identifier: redactIdentifier(src.identifier),
      ruleIndex: rule.index,
      hint: 'an update identifier is a whole source, scheme included: "docker-image://…", "https://…", "git://…"',
    });
  }
  return { identifier, attrs };
}

/**
 * The converted identifier (BuildKit's selectorCache.Format): a wildcard's `*`s and a regexp's
 * groups fill `${1}`… of the update; a regexp replaces what it matched of the identifier, as Go's
 * ReplaceAllString. An EXACT selector, or one that matched only by equality, gives the update as
 * written. A pattern that matched only the image without its digest is expanded from that (where
 * BuildKit would leave the source as it is, or `${1}` unexpanded).
 */
function format(sel: PolicySelector, identifier: string, template: string): string {
  if (sel.pattern === undefined) return template;
  const subject = sel.pattern.test(identifier) ? identifier : withoutDigest(identifier);
  if (subject === undefined || !sel.pattern.test(subject)) return template;
  if (sel.matchType === 'REGEX') return goReplaceAll(subject, sel.pattern, template);
  const m = sel.pattern.exec(subject);
  return m === null ? template : expandTemplate(template, m);
}
