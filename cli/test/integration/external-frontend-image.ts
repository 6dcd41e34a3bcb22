import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, chmod, mkdir, mkdtemp, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Frontend images for the external-frontend tests, made without kiln (so kiln's own image code is
 * not its oracle): a rootfs directory packed with GNU tar as one uncompressed layer, an OCI layout
 * written by hand, pushed with skopeo.
 */

/** A file of the host copied into the rootfs at `path` (a symlink is followed). */
export interface HostFile {
  readonly host: string;
  readonly path: string;
  readonly mode?: number;
}

/** What goes in an image's rootfs and config. */
export interface ImageSpec {
  readonly files: readonly HostFile[];
  /** Files written from memory: path → content. */
  readonly text?: Readonly<Record<string, string>>;
  /** Symlinks: path → target. */
  readonly links?: Readonly<Record<string, string>>;
  readonly entrypoint: readonly string[];
  readonly env?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

/** The host's node with every library `ldd` lists, at their paths (the dynamic loader included). */
export function nodeWithLibraries(): HostFile[] {
  const node = process.execPath;
  const out: HostFile[] = [{ host: node, path: '/usr/bin/node', mode: 0o755 }];
  const ldd = execFileSync('ldd', [node], { encoding: 'utf8' });
  for (const line of ldd.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1] !== undefined) out.push({ host: m[1], path: m[1], mode: 0o755 });
  }
  return out;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function writeBlob(layout: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(data);
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Builds the image in `work` and pushes it to `ref` (a plain-HTTP registry on 127.0.0.1). */
export async function pushImage(work: string, ref: string, spec: ImageSpec): Promise<void> {
  const dir = await mkdtemp(join(work, 'image-'));
  try {
    const rootfs = join(dir, 'rootfs');
    await mkdir(join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
    await chmod(join(rootfs, 'tmp'), 0o1777);
    for (const f of spec.files) {
      const dest = join(rootfs, f.path);
      await mkdir(dirname(dest), { recursive: true });
      await copyFile(f.host, dest);
      await chmod(dest, f.mode ?? 0o644);
    }
    for (const [p, content] of Object.entries(spec.text ?? {})) {
      await mkdir(dirname(join(rootfs, p)), { recursive: true });
      await writeFile(join(rootfs, p), content, { mode: 0o644 });
    }
    for (const [p, target] of Object.entries(spec.links ?? {})) {
      await mkdir(dirname(join(rootfs, p)), { recursive: true });
      await symlink(target, join(rootfs, p));
    }
    const layout = join(dir, 'layout');
    await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
    const tar = join(dir, 'layer.tar');
    execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', tar, '.']);
    const layerHex = await sha256File(tar);
    const layerSize = (await stat(tar)).size;
    await rename(tar, join(layout, 'blobs', 'sha256', layerHex));
    const config = await writeBlob(
      layout,
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Entrypoint: spec.entrypoint, Env: spec.env ?? ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: spec.labels ?? {} },
        rootfs: { type: 'layers', diff_ids: [`sha256:${layerHex}`] },
        history: [{ created_by: 'kiln external-frontend test fixture' }],
      }),
    );
    const manifest = await writeBlob(
      layout,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerHex}`, size: layerSize }],
      }),
    );
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'test' } }],
      }),
    );
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:test`, `docker://${ref}`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The standalone frontend bundle the node images run (made by `npm run build`). */
export function frontendBundle(repo: string): string {
  const bundle = join(repo, 'cli/dist/frontend.cjs');
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build (cli/scripts/bundle.mjs makes it)`);
  return bundle;
}

/**
 * Pushes a frontend image running `bundle` (kiln's dockerfile.v0) on the host's node, with
 * `banner` (a script node runs first through NODE_OPTIONS, to report what the frontend saw).
 */
export function pushNodeFrontend(work: string, ref: string, bundle: string, banner: string, caps: string): Promise<void> {
  return pushImage(work, ref, {
    files: [...nodeWithLibraries(), { host: bundle, path: '/frontend.cjs' }],
    text: { '/banner.cjs': banner },
    entrypoint: ['/usr/bin/node', '/frontend.cjs', 'dockerfile.v0'],
    env: ['PATH=/usr/bin:/bin', 'NODE_OPTIONS=--require=/banner.cjs'],
    labels: { 'moby.buildkit.frontend.caps': caps },
  });
}

/** Pushes an image that is no frontend: busybox `sh -c script` (with `sleep` at hand). */
export function pushShellImage(work: string, ref: string, script: string, caps: string): Promise<void> {
  return pushImage(work, ref, {
    files: [{ host: '/bin/busybox', path: '/bin/busybox', mode: 0o755 }],
    links: { '/bin/sh': 'busybox', '/bin/sleep': 'busybox' },
    entrypoint: ['/bin/sh', '-c', script],
    labels: { 'moby.buildkit.frontend.caps': caps },
  });
}

/** A multi-stage Dockerfile whose first line is `firstLine` (a `# syntax=` line, or not). */
export function multiStageDockerfile(firstLine: string, t: string): string {
  return `${firstLine}
FROM busybox AS build
COPY hello.txt /src/hello.txt
RUN tr a-z A-Z < /src/hello.txt > /out.txt && echo ${t} >> /out.txt

FROM busybox
COPY --from=build /out.txt /srv/out.txt
ENV GREETING=hi
WORKDIR /srv
CMD ["cat", "/srv/out.txt"]
`;
}

/** The image in an OCI tarball, read with skopeo (not with kiln). */
export interface OciImage {
  readonly manifestDigest: string;
  readonly config: string;
  readonly diffIds: readonly string[];
}

export function readOci(tarball: string): OciImage {
  const inspect = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${tarball}`], { encoding: 'utf8' })) as { Digest: string };
  const config = execFileSync('skopeo', ['inspect', '--config', '--raw', `oci-archive:${tarball}`], { encoding: 'utf8' });
  return { manifestDigest: inspect.Digest, config, diffIds: (JSON.parse(config) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids };
}
