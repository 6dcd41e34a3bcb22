import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContentStore, ImageStore, createBusyboxImage, readBinfmtHandlers, writeIndex } from '@kiln/runtime';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { compileCli, kilnBin, makeSandbox, requireTools, runKiln, token, writeTree, type KilnSandbox } from './build-helpers.js';

// Debian's arm64 busybox-static, unpacked by .ci/run (dpkg --add-architecture arm64; apt-get download busybox-static:arm64).
const ARM64_BUSYBOX = '/var/cache/kiln-test/busybox-arm64/bin/busybox';
const QEMU_HANDLER = '/proc/sys/fs/binfmt_misc/qemu-aarch64';

/** Whether the kernel has the arm64 emulator registered, enabled and with F (as kiln binfmt leaves it). */
const registered = (): boolean => readBinfmtHandlers().some((h) => h.name === 'qemu-aarch64' && h.enabled && h.flags.includes('F'));

describe('RUN steps of another platform (arm64 on this amd64 machine) through a QEMU binfmt_misc emulator', () => {
  let sb: KilnSandbox;
  let hadEmulator = false;
  const kiln = (args: readonly string[]): ReturnType<typeof runKiln> => runKiln(sb, args);

  beforeAll(async () => {
    requireTools();
    if (!existsSync(ARM64_BUSYBOX) || spawnSync('sh', ['-c', 'command -v qemu-aarch64-static']).status !== 0) {
      throw new Error(`missing prerequisites: apt-get install -y qemu-user-static, and ${ARM64_BUSYBOX} from busybox-static:arm64 (.ci/run fetches it)`);
    }
    compileCli();
    sb = await makeSandbox();
    hadEmulator = existsSync(QEMU_HANDLER);
    // `busybox` names an index of the host's busybox and the arm64 one, as a multi-platform base on a registry would.
    const content = await ContentStore.open(sb.root);
    const images = await ImageStore.open(sb.root);
    const host = await createBusyboxImage(content, {});
    const arm = await createBusyboxImage(content, { busybox: ARM64_BUSYBOX });
    expect(JSON.parse(arm.configBytes.toString()) as unknown).toMatchObject({ architecture: 'arm64', os: 'linux' });
    const index = await writeIndex(content, [
      { ...host.manifest, platform: { os: 'linux', architecture: 'amd64' } },
      { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64' } },
    ]);
    await images.put('docker.io/library/busybox:latest', index);
  }, 300_000);

  afterAll(async () => {
    // The kernel's handler table is the machine's: leave it as it was.
    const k = (args: string[]): void => void spawnSync(process.execPath, [kilnBin, 'binfmt', ...args]);
    if (hadEmulator && !registered()) k(['--install', 'arm64']);
    if (!hadEmulator && existsSync(QEMU_HANDLER)) k(['--uninstall', 'arm64']);
    await sb?.cleanup();
  });

  test('without an emulator the arm64 RUN is refused before it runs (not exec format error), saying how to get one', async () => {
    expect((await kiln(['binfmt', '--uninstall', 'arm64'])).code).toBe(0);
    expect(existsSync(QEMU_HANDLER)).toBe(false);
    const ctx = join(sb.dir, `no-emu-${token()}`);
    await writeTree(ctx, { Dockerfile: `FROM busybox\nRUN echo ${token()} > /x\n` });
    const r = await kiln(['build', '--root', sb.root, '--progress=plain', '--platform', 'linux/arm64', '-o', `type=local,dest=${join(ctx, 'out')}`, ctx]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Dockerfile:2:1: this step runs linux/arm64 programs, and this linux/amd64 machine has no emulator for them');
    expect(r.stderr).toContain('kiln binfmt --install arm64');
    expect(r.stderr).not.toContain('exec format error');
    // kiln inspect lists only the host's platform.
    expect((await kiln(['inspect', '--root', sb.root])).stdout).toMatch(/^Platforms: {2}linux\/amd64$/m);
  });

  test('kiln binfmt --install arm64 registers QEMU with F; a two-platform build then runs each RUN on its own platform', async () => {
    const inst = await kiln(['binfmt', '--install', 'arm64']);
    expect(inst.code).toBe(0);
    expect(inst.stdout).toMatch(/^qemu-aarch64 +linux\/arm64 +enabled +\S*F\S* /m);
    expect(registered()).toBe(true);
    // Installing again keeps it.
    expect((await kiln(['binfmt', '--install', 'arm64'])).stderr).toContain('already registered: arm64');
    expect((await kiln(['inspect', '--root', sb.root])).stdout).toMatch(/^Platforms: {2}linux\/amd64, linux\/arm64$/m);

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
