import { existsSync, readFileSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { startRegistry, type TestRegistry } from '../../../runtime/test/helpers/registry.js';
import { compileCli, makeSandbox, requireTools, runKiln, token, writeTree, type KilnSandbox } from './build-helpers.js';
import { pushShellImage } from './external-frontend-image.js';
import { QEMU_HANDLER, binfmt, holdBinfmt, multiPlatformBusybox, registered, requireEmulation } from './multi-platform-helpers.js';

// The other ways a process of another platform starts (kiln build --invoke; an external frontend
// told what the worker runs) and BuildKit's second emulation path (buildkit-qemu-<arch> on PATH),
// with real QEMU, real runc and Debian's arm64 busybox.

describe('arm64 processes outside RUN, and buildkit-qemu-<arch> from PATH', () => {
  let sb: KilnSandbox;
  let restore: (() => Promise<void>) | undefined;
  let registry: TestRegistry | undefined;
  const kiln = (args: readonly string[], opts: Parameters<typeof runKiln>[2] = {}): ReturnType<typeof runKiln> => runKiln(sb, args, opts);

  beforeAll(async () => {
    requireTools();
    requireEmulation();
    compileCli();
    sb = await makeSandbox();
    await multiPlatformBusybox(sb);
    restore = await holdBinfmt();
  }, 300_000);

  afterAll(async () => {
    await restore?.();
    await registry?.stop();
    await sb?.cleanup();
  });

  test('--invoke in an arm64 result and in the state a failed arm64 RUN left runs arm64 programs (binfmt_misc)', async () => {
    binfmt('--install', 'arm64');
    expect(registered()).toBe(true);
    const t = token();
    const ok = join(sb.dir, `invoke-ok-${t}`);
    await writeTree(ok, { Dockerfile: `FROM busybox\nRUN echo ${t} > /t\n` });
    const r = await kiln(['build', ok, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '--invoke', `sh -c 'cat /t; uname -m'`]);
    expect(r.stderr).toContain('--invoke: running');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${t}\naarch64\n`);

    const failed = join(sb.dir, `invoke-failed-${t}`);
    await writeTree(failed, { Dockerfile: `FROM busybox\nRUN uname -m > /arch && exit 3\n` });
    const f = await kiln(['build', failed, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '--invoke', 'on-error'], { stdin: 'cat /arch; uname -m; exit 5\n' });
    expect(f.stderr).toContain('the state the failed step left');
    expect(f.stdout).toBe('aarch64\naarch64\n');
    // the build failed: kiln exits 1 whatever the shell did
    expect(f.code).toBe(1);
  });

  test('--invoke of an arm64 result without an emulator is refused before the container starts (not exec format error); of an amd64-only base it runs', async () => {
    binfmt('--uninstall', 'arm64');
    expect(existsSync(QEMU_HANDLER)).toBe(false);
    // No RUN: the arm64 build itself needs no emulator, its debug shell does.
    const ctx = join(sb.dir, `invoke-none-${token()}`);
    await writeTree(ctx, { Dockerfile: 'FROM busybox\nCOPY f /f\n', f: 'x\n' });
    const r = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '--invoke', 'uname -m']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('this container runs linux/arm64 programs, and this linux/amd64 machine has no emulator for them');
    expect(r.stderr).toContain('kiln binfmt --install arm64');
    expect(r.stderr).not.toContain('exec format error');
    expect(r.stdout).toBe('');
    // The container's platform is arm64, but an amd64-only base's programs are the host's: they run.
    const content = await ContentStore.open(sb.root);
    await createBusyboxImage(content, { names: ['localhost/host-only-invoke:latest'], images: await ImageStore.open(sb.root) });
    const host = join(sb.dir, `invoke-host-${token()}`);
    await writeTree(host, { Dockerfile: 'FROM localhost/host-only-invoke\nCOPY f /f\n', f: 'x\n' });
    const h = await kiln(['build', host, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '--invoke', 'uname -m']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toBe('x86_64\n');
  });

  test("without a handler, BuildKit's buildkit-qemu-aarch64 on PATH runs the RUN steps (and --invoke) of an arm64 stage", async () => {
    expect(existsSync(QEMU_HANDLER)).toBe(false);
    const bin = join(sb.dir, `qemu-bin-${token()}`);
    await mkdir(bin);
    await symlink('/usr/bin/qemu-aarch64-static', join(bin, 'buildkit-qemu-aarch64'));
    const env = { PATH: `${bin}:${sb.path}` };
    const t = token();
    const ctx = join(sb.dir, `qemu-path-${t}`);
    // Busybox's shell runs its applets in its own (emulated) process: uname is the applet, never an execve.
    await writeTree(ctx, { Dockerfile: `FROM busybox\nARG TARGETARCH\nRUN echo "${t} $(uname -m) $TARGETARCH" > /arch\n` });
    const out = join(ctx, 'out');
    const r = await kiln(['build', ctx, '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64', '-o', `type=local,dest=${out}`], { env });
    expect(r.stderr).not.toContain('exec format error');
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'arch'), 'utf8')).toBe(`${t} aarch64 arm64\n`);
    // The emulator mount is the step's only: nothing of it in the result.
    expect(existsSync(join(out, 'dev', '.buildkit_qemu_emulator'))).toBe(false);
    // The debug shell of the result goes through the same emulator (a path: QEMU does not search
    // PATH); shell builtins and the applets busybox runs in its own process work there.
    const inv = await kiln(['build', ctx, '--root', sb.root, '--progress', 'quiet', '--platform', 'linux/arm64', '--invoke', '/bin/sh -c \'read -r l < /arch; echo "$l"; uname -m\''], { env });
    expect(inv.code).toBe(0);
    expect(inv.stdout).toBe(`${t} aarch64 arm64\naarch64\n`);

    // The limit: stock QEMU does not follow execve into another arm64 program (BuildKit's too).
    const exec = join(sb.dir, `qemu-exec-${t}`);
    await writeTree(exec, { Dockerfile: `FROM busybox\nRUN /bin/busybox echo ${t}\n` });
    const e = await kiln(['build', exec, '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64'], { env });
    expect(e.code).toBe(1);
    expect(e.stderr.toLowerCase()).toContain('exec format error');

    // Without the emulator on PATH the same RUN is refused as before.
    const none = await kiln(['build', ctx, '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64', '--no-cache']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("or put BuildKit's buildkit-qemu-aarch64 on kiln's PATH");
  });

  test('an external frontend reads the emulated platforms in BUILDKIT_WORKERS, the host first', async () => {
    registry = await startRegistry();
    const work = join(sb.dir, `fe-${token()}`);
    await mkdir(work);
    const ref = `${registry.host}/kiln-workers:test`;
    await pushShellImage(work, ref, 'echo "kiln-workers: $BUILDKIT_WORKERS" >&2; exit 3', 'moby.buildkit.frontend.inputs');
    const ctx = join(sb.dir, `fe-ctx-${token()}`);
    await writeTree(ctx, { Dockerfile: 'FROM busybox\n' });
    const platformsOf = async (): Promise<string[]> => {
      const r = await kiln(['build', ctx, '--root', sb.root, '--progress=plain', '--frontend', ref]);
      expect(r.code).toBe(1);
      const json = /kiln-workers: (.*)/.exec(r.stderr)?.[1] ?? '[]';
      const workers = JSON.parse(json) as { platforms: { os: string; architecture: string; variant?: string }[] }[];
      return (workers[0]?.platforms ?? []).map((p) => [p.os, p.architecture, ...(p.variant === undefined ? [] : [p.variant])].join('/'));
    };
    const without = await platformsOf();
    expect(without[0]).toBe('linux/amd64');
    expect(without).not.toContain('linux/arm64');
    binfmt('--install', 'arm64');
    const withEmu = await platformsOf();
    expect(withEmu[0]).toBe('linux/amd64');
    expect(withEmu).toEqual([...without.filter((p) => p.startsWith('linux/amd64')), 'linux/arm64', ...without.filter((p) => !p.startsWith('linux/amd64'))]);
  }, 300_000);
});
