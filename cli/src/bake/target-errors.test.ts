import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { CliIo } from '../io.js';
import { bakeCommand } from './run.js';

// A target's values are checked as kiln build's flags before anything runs (no engine is opened).
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-bake-target-errors-'));
  await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function bakeStderr(hcl: string): Promise<string> {
  await writeFile(join(dir, 'docker-bake.hcl'), hcl);
  let stderr = '';
  const io: CliIo = {
    stdin: (async function* (): AsyncGenerator<Uint8Array> {})(),
    stdout: { write: () => true },
    stderr: { write: (c: string | Uint8Array) => void (stderr += c.toString()) },
    cwd: dir,
    env: {},
  };
  await expect(bakeCommand([], { file: [], set: [], cache: true, progress: 'quiet', root: join(dir, 'root') }, io)).rejects.toMatchObject({ exitCode: 1 });
  return stderr;
}

// Before: "kiln: error OUTPUT_SPEC_INVALID: invalid --output …" with no target and no place, and
// for a missing dockerfile the hint of kiln build ("pass -f PATH"), which is bake's bake-file flag.
test('a bad value names the bake file, the target built (also when it inherits the value) and keeps its code and hint', async () => {
  const out = await bakeStderr('group "default" {\n  targets = ["web"]\n}\n\ntarget "app" {\n  output = ["type=lcoal,dest=out"]\n}\n\ntarget "web" {\n  inherits = ["app"]\n}\n');
  expect(out).toBe('kiln: error OUTPUT_SPEC_INVALID: docker-bake.hcl:9:1: target "web": invalid --output "type=lcoal,dest=out": unknown exporter type "lcoal"\nhint: use one of oci, docker, image, registry, local, tar\n');
});

test("a missing dockerfile gets bake's hint", async () => {
  const out = await bakeStderr('target "default" {\n  dockerfile = "Nope"\n}\n');
  expect(out).toBe(`kiln: error KLN0702: docker-bake.hcl:1:1: target "default": cannot read Dockerfile ${join(dir, 'Nope')}: no such file\nhint: set the target's dockerfile (relative to its context) or dockerfile-inline\n`);
});
