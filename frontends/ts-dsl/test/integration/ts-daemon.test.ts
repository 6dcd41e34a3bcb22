/**
 * kiln/ts through `kiln daemon` (the long-lived process a `kiln` client hands its build to), and
 * the buildx options a DSL build applies, end to end with real runc: the evaluator child is then
 * the daemon's, so the sandbox and its errors must hold there too.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileCli, fresh, makeSandbox, repo, requireTools, writeTree, type Run, type Sandbox } from './helpers.js';

let sb: Sandbox;
let daemon: ChildProcess | undefined;
let daemonLog = '';
let sock: string;

beforeAll(async () => {
  requireTools();
  compileCli();
  sb = await makeSandbox();
  sock = join(sb.dir, 'kilnd.sock');
  daemon = spawn(process.execPath, [join(repo, 'cli/bin/kiln.js'), 'daemon', '--root', sb.root, '--addr', `unix://${sock}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start: ${daemonLog}`)), 60_000);
    const onData = (d: Buffer): void => {
      daemonLog += d.toString();
      if (daemonLog.includes('serving')) {
        clearTimeout(timer);
        resolve();
      }
    };
    daemon?.stdout?.on('data', onData);
    daemon?.stderr?.on('data', onData);
  });
}, 300_000);

afterAll(async () => {
  if (daemon !== undefined && daemon.exitCode === null) {
    const exited = new Promise((res) => daemon?.once('exit', res));
    daemon.kill('SIGTERM');
    await exited;
  }
  await sb?.cleanup();
});

/** Runs the `kiln` launcher (which hands served commands to the daemon) with KILN_HOST set. */
function client(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repo, 'cli/bin/kiln'), args, { cwd: sb.dir, env: { ...process.env, KILN_HOST: `unix://${sock}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('kiln/ts through kiln daemon', { timeout: 240_000 }, () => {
  test('a kiln.build.ts builds through the daemon; --label reaches the image config', async () => {
    const ctx = join(sb.dir, 'via-daemon');
    await writeTree(ctx, {
      'kiln.build.ts': `import { image, sh } from "kiln";\nexport default () => image("kt/busybox").run(sh\`echo daemon >/d\`).image({ cmd: ["cat", "/d"], labels: { own: "1" } });\n`,
    });
    const out = fresh(sb, 'out');
    const oci = `${fresh(sb, 'oci')}.tar`;
    const before = daemonLog.length;
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain', '--label', 'org.example.v=2', '--output', `type=local,dest=${out}`, '--output', `type=oci,dest=${oci}`]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(await readFile(join(out, 'd'), 'utf8')).toBe('daemon\n');
    const cfg = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${oci}`], { encoding: 'utf8' })) as { config: { Labels?: Record<string, string>; Cmd?: string[] } };
    expect(cfg.config.Labels).toEqual({ own: '1', 'org.example.v': '2' });
    expect(cfg.config.Cmd).toEqual(['cat', '/d']);
    // served by the daemon, not by a kiln process of the client's own
    expect(daemonLog.slice(before)).toMatch(/build: client pid \d+ → exit 0/);
  });

  test('the sandbox holds in the daemon: process.kill is refused with the build file location, the daemon keeps serving', async () => {
    const ctx = join(sb.dir, 'kill-daemon');
    await writeTree(ctx, {
      'kiln.build.ts': `import { image } from "kiln";\nexport default () => {\n  (globalThis as any).process.kill((globalThis as any).process.ppid, "SIGUSR1");\n  return image("kt/busybox");\n};\n`,
    });
    const r = await client(['build', ctx, '--root', sb.root, '--progress', 'plain', '--output', `type=local,dest=${fresh(sb, 'out')}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('KLN0803');
    expect(r.stderr).toContain('kiln.build.ts:3:31: process.kill is not available in a build file');
    expect(daemonLog).not.toContain('Debugger listening');
    expect(daemon?.exitCode).toBe(null);
  });
});
