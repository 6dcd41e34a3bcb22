import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, ImageStore, createBusyboxImage } from '@kiln/runtime';
import { compileCli, makeSandbox, requireTools, runKiln, token, writeTree, type KilnSandbox } from './build-helpers.js';
import { QEMU_HANDLER, holdBinfmt, multiPlatformBusybox, registered, requireEmulation } from './multi-platform-helpers.js';

describe('RUN steps of another platform (arm64 on this amd64 machine) through a QEMU binfmt_misc emulator', () => {
  let sb: KilnSandbox;
  let restore: (() => Promise<void>) | undefined;
  const kiln = (args: readonly string[]): ReturnType<typeof runKiln> => runKiln(sb, args);

  beforeAll(async () => {
    requireTools();
    requireEmulation();
    compileCli();
    sb = await makeSandbox();
    await multiPlatformBusybox(sb);
    // The kernel's handler table is the machine's: held while this file changes it, then put back as it was.
    restore = await holdBinfmt();
  }, 300_000);

  afterAll(async () => {
    await restore?.();
    await sb?.cleanup();
  });

  test('without an emulator an arm64 RUN fails saying why and how to get one; an amd64-only base in an arm64 stage runs natively', async () => {
    expect((await kiln(['binfmt', '--uninstall', 'arm64'])).code).toBe(0);
    expect(existsSync(QEMU_HANDLER)).toBe(false);
    const ctx = join(sb.dir, `no-emu-${token()}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${token()} > /x\n` });
    const r = await kiln(['build', '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64', '-o', `type=local,dest=${join(ctx, 'out')}`, ctx]);
    expect(r.code).toBe(1);
    // runc's own line stays in the step's log (as in BuildKit); the error names the program and what to do
    expect(r.stderr).toContain('Dockerfile:2:1: this step runs linux/arm64 programs, and this linux/amd64 machine has no emulator for them (/bin/sh is a linux/arm64 program)');
    expect(r.stderr).toContain('kiln binfmt --install arm64');
    expect(existsSync(join(ctx, 'out'))).toBe(false);
    // The failed step's state is kept all the same: --invoke on-error opens its shell there, which
    // is an arm64 program too, so the container refuses it by name.
    const inv = await runKiln(sb, ['build', '--root', sb.root, '--progress=quiet', '--platform', 'linux/arm64', '--invoke', 'on-error', ctx], { stdin: 'exit 0\n' });
    expect(inv.code).toBe(1);
    expect(inv.stderr).toContain('this step runs linux/arm64 programs');
    expect(inv.stderr).toMatch(/this container runs linux\/arm64 programs, and this linux\/amd64 machine has no emulator for them \(\/bin\/\S+ is a linux\/arm64 program\)/);
    // kiln inspect lists the host's platform, the CPU's x86-64 levels and 386 (IA-32), no arm64.
    expect((await kiln(['inspect', '--root', sb.root])).stdout).toMatch(/^Platforms: {2}linux\/amd64(, linux\/amd64\/v[234])*(, linux\/386)?$/m);

    // A single-manifest amd64 image resolves for any platform (as containerd resolves it): its
    // programs are the host's, so the arm64 stage's RUN runs them without an emulator, as BuildKit does.
    const content = await ContentStore.open(sb.root);
    await createBusyboxImage(content, { names: ['localhost/host-only:latest'], images: await ImageStore.open(sb.root) });
    const t = token();
    const host = join(sb.dir, `host-only-${t}`);
    await writeTree(host, { Dockerfile: `FROM localhost/host-only\nARG TARGETARCH\nRUN echo "${t} $(uname -m) $TARGETARCH" > /arch\n` });
    const h = await kiln(['build', '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64', '-o', `type=local,dest=${join(host, 'out')}`, host]);
    expect(h.code, h.stderr).toBe(0);
    expect(readFileSync(join(host, 'out', 'arch'), 'utf8')).toBe(`${t} x86_64 arm64\n`);
  });

  test('kiln binfmt --install arm64 registers QEMU with F; a two-platform build then runs each RUN on its own platform', async () => {
    const inst = await kiln(['binfmt', '--install', 'arm64']);
    expect(inst.code).toBe(0);
    expect(inst.stdout).toMatch(/^qemu-aarch64 +linux\/arm64 +enabled +\S*F\S* /m);
    expect(registered()).toBe(true);
    // Installing again keeps it.
    expect((await kiln(['binfmt', '--install', 'arm64'])).stderr).toContain('already registered: arm64');
    // then arm64, in archutil's order (before 386)
    expect((await kiln(['inspect', '--root', sb.root])).stdout).toMatch(/^Platforms: {2}linux\/amd64(, linux\/amd64\/v[234])*, linux\/arm64(, linux\/386)?$/m);

    const t = token();
    const ctx = join(sb.dir, `emu-${t}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nARG TARGETARCH\nRUN echo "${t} $(uname -m) $TARGETARCH" > /arch && ls /bin/ls > /dev/null\n` });
    const out = join(ctx, 'out');
    const r = await kiln(['build', '--root', sb.root, '--progress=plain', '--platform', 'linux/amd64,linux/arm64', '-o', `type=local,dest=${out}`, ctx]);
    expect(r.stderr).toContain('[linux/arm64 2/2] RUN');
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, 'linux_amd64', 'arch'), 'utf8')).toBe(`${t} x86_64 amd64\n`);
    expect(readFileSync(join(out, 'linux_arm64', 'arch'), 'utf8')).toBe(`${t} aarch64 arm64\n`);

    // The image: an index whose arm64 manifest's config says arm64, as skopeo reads it.
    const tar = join(ctx, 'img.oci.tar');
    expect((await kiln(['build', '--root', sb.root, '--progress=plain', '--platform', 'linux/amd64,linux/arm64', '-o', `type=oci,dest=${tar}`, ctx])).code).toBe(0);
    const arm = JSON.parse(execFileSync('skopeo', ['inspect', '--override-arch', 'arm64', `oci-archive:${tar}`], { encoding: 'utf8' })) as { Architecture: string };
    expect(arm.Architecture).toBe('arm64');
  });
});
