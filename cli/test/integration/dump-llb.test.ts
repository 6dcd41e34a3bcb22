import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';

const repo = join(import.meta.dirname, '../../..');
const bin = join(repo, 'cli/bin/kiln.js');
const conf = join(repo, '../shared/conformance');

const cases = [
  ...readdirSync(join(conf, 'llb-ops'))
    .filter((f) => f.endsWith('.pb'))
    .map((f) => ({ name: `llb-ops/${f}`, pb: join(conf, 'llb-ops', f), json: join(conf, 'llb-ops', f.replace(/\.pb$/, '.json')) })),
  ...readdirSync(join(conf, 'dockerfile2llb'))
    .filter((d) => existsSync(join(conf, 'dockerfile2llb', d, 'llb.pb')))
    .map((d) => ({
      name: `dockerfile2llb/${d}`,
      pb: join(conf, 'dockerfile2llb', d, 'llb.pb'),
      json: join(conf, 'dockerfile2llb', d, 'llb.json'),
    })),
];

function kiln(args: string[], input?: Uint8Array): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { input, maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** {@link kiln} without blocking, so the three formats of a case run side by side (each is a whole CLI process). */
function kilnAsync(args: string[], input?: Uint8Array): Promise<{ status: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) => resolve({ status: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(input);
  });
}

beforeAll(() => {
  // Build the CLI and the packages it references, as a user would before running it.
  execFileSync('npx', ['tsc', '-b', 'cli'], { cwd: repo, stdio: 'inherit' });
});

const parse = (s: string): unknown[] => s.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);

/** What a dot rendering of `c` must look like: one node per op of the reference JSON lines. */
function expectDot(text: string, c: (typeof cases)[number]): void {
  expect(text.startsWith('digraph {\n') && text.endsWith('}\n')).toBe(true);
  const nodes = text.split('\n').filter((l) => /^ {2}"sha256:[a-f0-9]{64}" \[label=/.test(l));
  expect(nodes.length).toBe(parse(readFileSync(c.json, 'utf8')).length);
}

// Every reference definition through the renderer the command calls (in process: a CLI process
// per case and format took a minute of CI); the command's own plumbing is tested below, once per format.
describe('dump-llb renderings of the conformance definitions', () => {
  test.for(cases)('$name: json, dot and pb', async (c) => {
    const { dumpLlb } = await import('../../src/commands/dump-llb.js');
    const bytes = readFileSync(c.pb);
    expect(parse(dumpLlb(bytes, 'json') as string)).toEqual(parse(readFileSync(c.json, 'utf8')));
    expect(Buffer.from(dumpLlb(bytes, 'pb')).equals(bytes)).toBe(true);
    expectDot(dumpLlb(bytes, 'dot') as string, c);
  });
});

describe('kiln dump-llb', () => {
  test('each format from a file and from stdin, as the CLI prints it', async () => {
    const c = cases.find((x) => x.name.startsWith('dockerfile2llb/')) ?? (cases[0] as (typeof cases)[number]);
    const [json, pb, dot, dotFlag] = await Promise.all([
      kilnAsync(['dump-llb', c.pb]),
      kilnAsync(['dump-llb', '--format', 'pb', '-'], readFileSync(c.pb)),
      kilnAsync(['dump-llb', '--format', 'dot', c.pb]),
      kilnAsync(['dump-llb', '--dot', c.pb]),
    ]);
    expect(json.stderr).toBe('');
    expect(json.status).toBe(0);
    expect(parse(json.stdout.toString())).toEqual(parse(readFileSync(c.json, 'utf8')));
    expect(pb.status).toBe(0);
    expect(pb.stdout.equals(readFileSync(c.pb))).toBe(true);
    expect(dot.status).toBe(0);
    expectDot(dot.stdout.toString(), c);
    expect(dotFlag.stdout.equals(dot.stdout)).toBe(true);
  });

  test('reads stdin when no file is given', () => {
    const c = cases[0] as (typeof cases)[number];
    const r = kiln(['dump-llb'], readFileSync(c.pb));
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toBe(readFileSync(c.json, 'utf8'));
  });

  test('a truncated definition fails with the decoder\'s error, a hint and exit 1', () => {
    const pb = readFileSync(join(conf, 'llb-ops/exec-mounts.pb'));
    const r = kiln(['dump-llb', '-'], pb.subarray(0, pb.length - 5));
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(/^kiln: error LLB_TRUNCATED: .+\nhint: dump-llb reads pb bytes, .+\n$/);
    expect(r.stderr).not.toMatch(/\bat .+\.js:\d+/);
  });

  test('garbage and a missing file fail cleanly', () => {
    const g = kiln(['dump-llb'], new Uint8Array([0x0a, 0xff, 0xff, 0x01, 0x02]));
    expect(g.status).toBe(1);
    expect(g.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^kiln: error LLB_\w+: /), 'hint: dump-llb reads pb bytes, as kiln llb --format pb or llb.Definition.ToPB().Marshal() write them']);
    const m = kiln(['dump-llb', join(conf, 'does-not-exist.pb')]);
    expect(m.status).toBe(1);
    expect(m.stderr).toContain('no such file');
  });

  // Before: "kiln: error LLB_DECODE: decode definition: unsupported wire type 6 at offset 1", no hint.
  test('a Dockerfile given to dump-llb fails with a pointer to kiln llb', () => {
    const r = kiln(['dump-llb', '-'], new TextEncoder().encode('FROM busybox\nRUN echo hi\n'));
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    const [first, hint, ...rest] = r.stderr.split('\n').filter(Boolean);
    expect(first).toMatch(/^kiln: error LLB_\w+: the input is text, not a marshaled LLB Definition: /);
    expect(hint).toBe('hint: dump-llb reads pb bytes; for a Dockerfile or kiln.build.ts run kiln llb CONTEXT (or kiln llb CONTEXT --format pb | kiln dump-llb)');
    expect(rest).toEqual([]);
  });

  test('a closed stdout pipe ends quietly', async () => {
    const { image, encodeDefinition } = await import('@kiln/llb-core');
    let st = image('busybox');
    for (let i = 0; i < 2000; i++) st = st.run({ args: ['echo', String(i)] });
    const big = encodeDefinition(await st.marshal({ platform: 'linux/amd64' }));
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" dump-llb - | head -c 10 >/dev/null`], {
      input: big,
    });
    expect(r.stderr.toString()).toBe('');
    const direct = kiln(['dump-llb', '--format', 'pb', '-'], big);
    expect(direct.status).toBe(0);
    expect(direct.stdout.equals(Buffer.from(big))).toBe(true);
  });

  test('an unknown format is rejected', () => {
    const r = kiln(['dump-llb', '--format', 'xml', '-'], new Uint8Array());
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('xml');
  });
});
