import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileCli, repo, requireTools } from './build-helpers.js';

let root: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  root = await mkdtemp(join(tmpdir(), 'kiln-demo-'));
}, 300_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function demo(): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repo, 'scripts/demo.mjs')], { env: { ...process.env, KILN_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

describe('npm run demo (README command 1)', () => {
  test('creates busybox, builds examples/demo offline, shows the OCI tarball and runs the CMD; a second run is all CACHED', async () => {
    const first = await demo();
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain('creating the busybox base image');
    // Both builder stages and the final RUN ran; skopeo read the OCI tarball; the CMD ran in runc.
    expect(first.out).toMatch(/\[greeter \d\/\d\] RUN/);
    expect(first.out).toMatch(/\[counter \d\/\d\] RUN/);
    expect(first.out).toMatch(/skopeo inspect: digest sha256:[0-9a-f]{64}, linux\/\w+, 5 layers/);
    expect(first.out).toContain('Cmd ["sh","/app/hello.sh"]');
    expect(first.out).toMatch(/\$ sh \/app\/hello.sh\nHello from kiln -- words.txt has 10 words/);

    const second = await demo();
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain('busybox already in the kiln store');
    // Plain progress: `#N name` first, then `#N CACHED` / `#N DONE …` (possibly interleaved).
    const byVertex = new Map<string, string[]>();
    for (const m of second.out.matchAll(/^#(\d+) (.*)$/gm)) byVertex.set(m[1] ?? '', [...(byVertex.get(m[1] ?? '') ?? []), m[2] ?? '']);
    const runs = [...byVertex.values()].filter((lines) => / RUN /.test(lines[0] ?? ''));
    expect(runs.length).toBe(3);
    for (const r of runs) expect(r).toContain('CACHED');
  });
});
