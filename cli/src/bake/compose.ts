import { dirname } from 'node:path';
import { parse } from 'yaml';
import { suggest } from '@kiln/llb-core';
import type { BakeConfig } from './config.js';
import { BakeError } from './errors.js';
import type { BakeFile } from './files.js';
import { decodeTarget, mergeTarget, type Target } from './target.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Compose's variable interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?err}`, `${VAR?err}`, `$VAR`, and `$$` for a literal `$`.
 */
export function interpolate(s: string, env: Env, where: string): string {
  return s.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (m === '$$') return '$';
    const name = braced ?? bare ?? '';
    const v = env[name];
    const unsetOrEmpty = v === undefined || v === '';
    switch (op) {
      case ':-':
        return unsetOrEmpty ? interpolate(arg ?? '', env, where) : (v ?? '');
      case '-':
        return v === undefined ? interpolate(arg ?? '', env, where) : v;
      case ':?':
      case '?':
        if (op === ':?' ? unsetOrEmpty : v === undefined) throw new BakeError('KLN0852', `${where}: required variable ${name} is not set${arg ? `: ${arg}` : ''}`, { hint: `set ${name} in the environment` });
        return v ?? '';
      case ':+':
        return unsetOrEmpty ? '' : interpolate(arg ?? '', env, where);
      case '+':
        return v === undefined ? '' : interpolate(arg ?? '', env, where);
      default:
        return v ?? '';
    }
  });
}

function interpolateAll(v: unknown, env: Env, where: string): unknown {
  if (typeof v === 'string') return interpolate(v, env, where);
  if (Array.isArray(v)) return v.map((x) => interpolateAll(x, env, where));
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, interpolateAll(x, env, where)]));
  return v;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A scalar of a Compose map (a string, number or bool); a list or map there is an error, as compose-go's. */
function scalarOf(x: unknown, what: string, file: string): string {
  if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') return String(x);
  throw new BakeError('KLN0853', `${file}: ${what} must be a string, number or bool`, { location: { file, line: 1, column: 1 } });
}

/** A Compose map that may be written as a list of `K=V` (or `K`, taken from the environment). */
function mapOf(v: unknown, env: Env, sep = '=', what = 'a map value', file = 'compose.yaml'): Record<string, string | null> | undefined {
  if (v === undefined || v === null) return undefined;
  const out: Record<string, string | null> = {};
  if (Array.isArray(v)) {
    for (const x of v) {
      const s = scalarOf(x, what, file);
      const i = s.indexOf(sep);
      if (i < 0) out[s] = env[s] ?? null;
      else out[s.slice(0, i)] = s.slice(i + 1);
    }
    return out;
  }
  if (isRecord(v)) {
    for (const [k, x] of Object.entries(v)) out[k] = x === null || x === undefined ? (env[k] ?? null) : scalarOf(x, `${what} ${k}`, file);
    return out;
  }
  return undefined;
}

/** Named contexts as buildx maps Compose's: `service:NAME` (or `target:NAME`) is the target NAME, sanitized. */
function namedContexts(m: Readonly<Record<string, string | null>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === null) continue;
    const link = /^(service|target):(.*)$/.exec(v);
    out[k] = link === null ? v : `target:${(link[2] ?? '').replaceAll('.', '_')}`;
  }
  return out;
}

/**
 * The keys of a service's build section, as compose-go's schema has them (additionalProperties
 * false, `x-*` extensions aside): buildx fails the file on any other ("Additional property
 * dockerfil is not allowed"), where kiln dropped it and built with the default Dockerfile.
 */
const BUILD_KEYS = ['context', 'dockerfile', 'dockerfile_inline', 'args', 'ssh', 'labels', 'cache_from', 'cache_to', 'no_cache', 'additional_contexts', 'network', 'provenance', 'sbom', 'pull', 'target', 'shm_size', 'extra_hosts', 'isolation', 'privileged', 'secrets', 'tags', 'ulimits', 'platforms', 'entitlements'];

/** The first line of `text` that writes `key:` after `after` (a YAML key; best effort: the place to look). */
function keyLocation(file: string, text: string, key: string, after: string): { file: string; line: number; column: number } {
  const lines = text.split('\n');
  const esc = (k: string): string => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const start = Math.max(0, lines.findIndex((l) => new RegExp(`^\\s*["']?${esc(after)}["']?\\s*:`).test(l)));
  for (let i = start; i < lines.length; i++) {
    const m = new RegExp(`^(\\s*)["']?${esc(key)}["']?\\s*:`).exec(lines[i] ?? '');
    if (m !== null) return { file, line: i + 1, column: (m[1]?.length ?? 0) + 1 };
  }
  return { file, line: 1, column: 1 };
}

const listOf = (v: unknown): string[] | undefined => (v === undefined || v === null ? undefined : Array.isArray(v) ? v.map(String) : [String(v)]);

/**
 * Reads Compose files as buildx does: every service with a `build` section is a target (named
 * after the service, `.` as `_`), all of them in the `default` group; the service's `image` is
 * a tag; `x-bake` in the build section sets bake keys Compose lacks (output, tags, …).
 */
export function loadCompose(config: BakeConfig, files: readonly BakeFile[], env: Env): void {
  const targets = new Map<string, Target>();
  for (const f of files) {
    let doc: unknown;
    try {
      // Warnings (an unknown tag, say) would go to stderr as Node process warnings, without the file's name.
      // `<<: *anchor` merge keys are merged, as compose-go's yaml.v3 does (YAML 1.2 has none:
      // the yaml package kept `<<` as a key, an unknown build key, and lost the anchor's keys).
      doc = parse(f.text, { logLevel: 'error', merge: true });
    } catch (e) {
      const pos = (e as { linePos?: { line: number; col: number }[] }).linePos?.[0];
      // the yaml package ends its first line with "at line 3, column 12:", which the location says
      const first = ((e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new BakeError('KLN0851', `invalid YAML: ${first}`, {
        location: { file: f.name, line: pos?.line ?? 1, column: pos?.col ?? 1 },
        hint: 'a Compose file is YAML with a services: map',
      });
    }
    if (!isRecord(doc) || !isRecord(doc['services'])) throw new BakeError('KLN0853', `${f.name}: a Compose file needs a services: map`, { location: { file: f.name, line: 1, column: 1 } });
    const secrets = isRecord(doc['secrets']) ? doc['secrets'] : {};
    for (const [service, rawDef] of Object.entries(doc['services'])) {
      if (!isRecord(rawDef)) continue;
      const def = interpolateAll(rawDef, env, `${f.name}: service ${service}`) as Record<string, unknown>;
      const b = def['build'];
      if (b === undefined || b === null) continue;
      const build: Record<string, unknown> = typeof b === 'string' ? { context: b } : isRecord(b) ? b : {};
      for (const k of Object.keys(build)) {
        if (BUILD_KEYS.includes(k) || k.startsWith('x-')) continue;
        const near = suggest(k, BUILD_KEYS);
        throw new BakeError('KLN0853', `service ${service}: build: unknown key "${k}"${near === undefined ? '' : ` (did you mean ${near}?)`}`, {
          location: keyLocation(f.name, f.text, k, service),
          hint: `a Compose build section takes ${BUILD_KEYS.join(', ')} and x-* extensions (x-bake for bake keys)`,
        });
      }
      const name = service.replaceAll('.', '_');
      const t: Target = {};
      if (typeof build['context'] === 'string') t.context = build['context'];
      if (typeof build['dockerfile'] === 'string') t.dockerfile = build['dockerfile'];
      if (typeof build['dockerfile_inline'] === 'string') t['dockerfile-inline'] = build['dockerfile_inline'];
      const args = mapOf(build['args'], env, '=', `service ${service}: build args`, f.name);
      if (args !== undefined) t.args = args;
      const labels = mapOf(build['labels'], env, '=', `service ${service}: build labels`, f.name);
      if (labels !== undefined) t.labels = labels;
      const contexts = mapOf(build['additional_contexts'], env, '=', `service ${service}: additional_contexts`, f.name);
      if (contexts !== undefined) t.contexts = namedContexts(contexts);
      // buildx: the image is the tag only when the build section names none.
      const buildTags = listOf(build['tags']) ?? [];
      const tags = buildTags.length > 0 ? buildTags : typeof def['image'] === 'string' ? [def['image']] : [];
      if (tags.length > 0) t.tags = tags;
      if (typeof build['target'] === 'string') t.target = build['target'];
      const platforms = listOf(build['platforms']);
      if (platforms !== undefined) t.platforms = platforms;
      const cacheFrom = listOf(build['cache_from']);
      if (cacheFrom !== undefined) t['cache-from'] = cacheFrom;
      const cacheTo = listOf(build['cache_to']);
      if (cacheTo !== undefined) t['cache-to'] = cacheTo;
      if (typeof build['network'] === 'string') t.network = build['network'];
      if (build['no_cache'] === true) t['no-cache'] = true;
      if (build['pull'] === true) t.pull = true;
      if (build['shm_size'] !== undefined) t['shm-size'] = String(build['shm_size']);
      const hosts = mapOf(build['extra_hosts'], env, ':', `service ${service}: extra_hosts`, f.name);
      if (hosts !== undefined) t['extra-hosts'] = hosts;
      if (isRecord(build['ulimits'])) {
        t.ulimits = Object.entries(build['ulimits']).map(([k, v]) => (isRecord(v) ? `${k}=${String(v['soft'])}:${String(v['hard'])}` : `${k}=${String(v)}`));
      }
      const ent = [...(listOf(build['entitlements']) ?? []), ...(build['privileged'] === true ? ['security.insecure'] : [])];
      if (ent.length > 0) t.entitlements = ent;
      const ssh = build['ssh'];
      if (ssh !== undefined) t.ssh = isRecord(ssh) ? Object.entries(ssh).map(([k, v]) => `${k}=${String(v)}`) : (listOf(ssh) ?? []);
      // build.secrets name top-level secrets (a file or an environment variable).
      for (const s of listOf(build['secrets']) ?? []) {
        const ref = isRecord(s) ? String((s as Record<string, unknown>)['source']) : s;
        const top = secrets[ref];
        if (!isRecord(top)) throw new BakeError('KLN0853', `${f.name}: service ${service} uses secret "${ref}", which the file does not define`, { hint: `add secrets: ${ref}: file: PATH (or environment: VAR) at the top level` });
        const spec = typeof top['file'] === 'string' ? `id=${ref},src=${interpolate(top['file'], env, f.name)}` : typeof top['environment'] === 'string' ? `id=${ref},env=${top['environment']}` : undefined;
        if (spec === undefined) throw new BakeError('KLN0853', `${f.name}: secret "${ref}" has neither file nor environment`);
        t.secret = [...(t.secret ?? []), spec];
      }
      const xbake = build['x-bake'];
      if (isRecord(xbake)) {
        // buildx's x-bake keys are bake keys, with `platforms`/`tags` lists and `secret`/`ssh` strings.
        const x = decodeTarget(name, xbake, () => ({ file: f.name, line: 1, column: 1 }));
        // buildx's composeExtTarget adds the lists to the build section's (duplicates dropped), and
        // the build section's named contexts win over x-bake's.
        for (const k of ['tags', 'platforms', 'no-cache-filter', 'output', 'cache-from', 'cache-to', 'secret', 'ssh'] as const) {
          const v = x[k];
          if (v === undefined) continue;
          t[k] = [...new Set([...(t[k] ?? []), ...v])];
          delete x[k];
        }
        if (x.contexts !== undefined) {
          t.contexts = { ...namedContexts(x.contexts), ...(t.contexts ?? {}) };
          delete x.contexts;
        }
        mergeTarget(t, x);
      }
      const cur = targets.get(name);
      if (cur === undefined) targets.set(name, t);
      else mergeTarget(cur, t);
    }
  }
  const dir = files[0]?.path === undefined ? undefined : dirname(files[0].path);
  for (const [name, t] of targets) config.addTarget(name, t, { file: files[0]?.name ?? 'compose.yaml', line: 1, column: 1 }, dir);
  if (targets.size > 0) config.addGroup('default', { targets: [...targets.keys()] });
}
