import { describe, expect, test } from 'vitest';
import { parseOverrides, printResolved, resolveTargets } from './config.js';
import { BakeError } from './errors.js';
import { loadConfig } from './load.js';

// Robustness: whatever the bake file holds, loading and resolving it either works or throws a
// BakeError (a KLN085x code, with a place when it is about the file), never a TypeError or a
// RangeError (stack overflow) and never takes seconds.

/** Loads and resolves `files`; returns the error thrown, or undefined. */
function attempt(files: { name: string; text: string }[], env: Record<string, string> = {}, names: string[] = []): unknown {
  try {
    const config = loadConfig(files, env);
    const resolved = resolveTargets(config, names, parseOverrides(config, [], env));
    printResolved(resolved);
    for (const v of config.variables.values()) v.value();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** mulberry32: a seeded PRNG, so a failing case reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HCL = `variable "TAG" { default = "latest" }
variable "N" { default = 2 }
variable "L" { default = ["a", "b"] }
function "tag" {
  params = [repo, v]
  variadic_params = rest
  result = "\${repo}:\${v}\${length(rest) > 0 ? "-\${join("-", rest)}" : ""}"
}
group "default" { targets = ["app", "m"] }
target "_base" {
  args = { GO = "1.22", X = null }
  labels = { "a.b" = "c" }
}
target "app" {
  inherits = ["_base"]
  tags = [tag("app", TAG), "x:\${N + 1}"]
  platforms = ["linux/amd64"]
  dockerfile-inline = <<-EOT
    FROM busybox
    %{ for p in L }RUN echo \${p}
    %{ endfor }RUN echo [%{~ if N > 1 ~} big %{~ else ~} small %{~ endif ~}]
    EOT
  output = [{ type = "local", dest = "out" }]
  contexts = { base = "target:_base" }
}
target "m" {
  name = "m-\${v}"
  matrix = { v = [for i in range(3) : "v\${i}"] }
  args = { V = v, J = jsonencode({ k = [1, true, null] }) }
  no-cache = N > 5
}
`;
const JSON_FILE = JSON.stringify({ variable: { T: { default: 'x' } }, group: { default: { targets: ['a'] } }, target: { a: { context: '.', tags: ['a:${T}'], args: { A: '${upper(T)}' } } } }, null, 2);
const COMPOSE = 'services:\n  app:\n    image: app:${TAG:-latest}\n    build:\n      context: .\n      args:\n        - A=1\n      x-bake:\n        platforms: [linux/amd64]\n  db:\n    image: postgres\n';
const CORPUS = [
  { name: 'docker-bake.hcl', text: HCL },
  { name: 'docker-bake.json', text: JSON_FILE },
  { name: 'compose.yaml', text: COMPOSE },
];
const NOISE = ['{', '}', '[', ']', '(', ')', '"', '\\', '$', '${', '%{', '~', '<<EOT\n', '<<-', 'EOT', '\n', ' ', ',', '=', '=>', ':', '?', '.', '*', '...', '#', '/*', '//', '0', '9e999', '-', '!', 'for', 'in', 'if', 'endif', 'null', 'x', 'é', '\u0000', '\uD800', '🙂'];

function mutate(text: string, rnd: () => number): string {
  let s = text;
  const edits = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < edits; k++) {
    const at = Math.floor(rnd() * (s.length + 1));
    const op = Math.floor(rnd() * 5);
    const noise = NOISE[Math.floor(rnd() * NOISE.length)] ?? '';
    if (op === 0) s = s.slice(0, at);
    else if (op === 1) s = s.slice(0, at) + noise + s.slice(at);
    else if (op === 2) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 8));
    else if (op === 3) s = s.slice(0, at) + noise + s.slice(at + 1);
    else {
      const from = Math.floor(rnd() * s.length);
      s = s.slice(0, at) + s.slice(from, from + Math.floor(rnd() * 40)) + s.slice(at);
    }
  }
  return s;
}

const describeError = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : String(e));

describe('bake files that are broken anywhere fail with a BakeError', () => {
  test.for(CORPUS.map((f) => [f.name, f] as const))('%s: random truncations and mutations', ([, f]) => {
    const rnd = prng(0x5eed + f.name.length);
    const bad: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const text = mutate(f.text, rnd);
      const t0 = performance.now();
      const e = attempt([{ name: f.name, text }], { TAG: 'v1' });
      const ms = performance.now() - t0;
      if (e !== undefined && !(e instanceof BakeError)) bad.push(`${describeError(e)}\n--- input ---\n${text}`);
      if (ms > 500) bad.push(`took ${ms.toFixed(0)} ms\n--- input ---\n${text}`);
    }
    expect(bad.slice(0, 3)).toEqual([]);
  });
});

describe('--set values and target names that are broken anywhere fail with a BakeError', () => {
  test('random mutations of --set and of the requested names', () => {
    const rnd = prng(0x5e7);
    const sets = ['app.tags=app:dev', '*.platform=linux/amd64', 'app.args.GO=1', 'app.output=type=local,dest=out', 'm-*.no-cache=true', 'app.tags+=x', 'app.contexts.base=target:_base', '_base.labels.a=b', 'app.push=true', 'app.attest=type=sbom'];
    const names = ['app', 'default', 'm-*', 'm', '_base', '*'];
    const config = loadConfig([{ name: 'docker-bake.hcl', text: HCL }], {});
    const bad: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const set = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => mutate(sets[Math.floor(rnd() * sets.length)] ?? '', rnd));
      const requested = Array.from({ length: Math.floor(rnd() * 3) }, () => mutate(names[Math.floor(rnd() * names.length)] ?? '', rnd));
      try {
        printResolved(resolveTargets(config, requested, parseOverrides(config, set, { GO: '1' })));
      } catch (e) {
        if (!(e instanceof BakeError)) bad.push(`${describeError(e)}: --set ${JSON.stringify(set)} ${JSON.stringify(requested)}`);
      }
    }
    expect(bad.slice(0, 3)).toEqual([]);
  });
});
