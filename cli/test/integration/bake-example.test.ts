import { execFileSync } from 'node:child_process';
import { cp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { repo, runKiln, useSandbox, type KilnSandbox } from './build-helpers.js';

// The README's `kiln bake -f examples/bake/docker-bake.hcl` line, run as written from a copy of
// the repository's examples (real runc, skopeo on the OCI output).

let sb: KilnSandbox;
useSandbox((s) => (sb = s));

test('examples/bake builds both targets from the repository root; their shared stage runs once', async () => {
  const work = join(sb.dir, 'repo');
  await cp(join(repo, 'examples'), join(work, 'examples'), { recursive: true, filter: (src) => !src.includes('/out') });
  const before = await sb.containersStarted();
  const r = await runKiln(sb, ['bake', '-f', 'examples/bake/docker-bake.hcl', '--root', sb.root, '--progress', 'plain'], { env: { KILN_DAEMON: '0' }, cwd: work });
  expect(r.stderr).not.toContain('error');
  expect(r.code).toBe(0);
  expect(await readFile(join(work, 'examples/bake/out/greeting/out/greeting.txt'), 'utf8')).toBe('Hello from kiln bake\n');
  const inspected = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${join(work, 'examples/bake/out/app.tar')}`], { encoding: 'utf8' })) as { config: { Cmd: string[] } };
  expect(inspected.config.Cmd).toEqual(['sh', '/app/hello.sh']);
  // The greeter's RUN (shared by both targets), the counter's and the final one: three containers.
  expect((await sb.containersStarted()) - before).toBe(3);
}, 180_000);
