import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCli, kilnBin, repo } from './build-helpers.js';

// cli/bin/bundle-stamp.js is plain JavaScript next to kiln.js (no types of its own).
interface BundleStamp {
  paths(root?: string): { bundle: string; cache: string; stamp: string; client: string };
  stampOf(root?: string): Array<[string, number, number]>;
  bundleIsFresh(root?: string): boolean;
}
const stampModule = (): Promise<BundleStamp> => import(join(repo, 'cli', 'bin', 'bundle-stamp.js')) as Promise<BundleStamp>;

function kiln(args: readonly string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [kilnBin, ...args], { env: { ...process.env, KILN_DAEMON: '0', KILN_DEBUG_LOAD: '1', ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the CLI bundle (cli/dist/kiln.cjs) and its code cache', () => {
  let dir: string;
  beforeAll(async () => {
    compileCli();
    dir = await mkdtemp(join(tmpdir(), 'kiln-bundle-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is what kiln.js runs after a build, with V8 taking the trained cache', async () => {
    const { bundleIsFresh, paths } = await stampModule();
    expect(bundleIsFresh()).toBe(true);
    expect(existsSync(paths().cache)).toBe(true);
    const r = kiln(['llb', '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('loading cli/dist/kiln.cjs, code cache used');
  });

  it('--version and -V print cli/package.json\'s version and exit 0, bundled or not', async () => {
    const { readFile } = await import('node:fs/promises');
    const { version } = JSON.parse(await readFile(join(repo, 'cli', 'package.json'), 'utf8')) as { version: string };
    for (const [args, env] of [[['--version'], {}], [['-V'], {}], [['--version'], { KILN_BUNDLE: '0' }]] as const) {
      const r = kiln(args, env);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`kiln ${version} (BuildKit v0.11.6 LLB and gateway API; node ${process.version})\n`);
    }
  });

  it('starts without Node\'s ES module loader (kiln.js and both bundles are CommonJS)', () => {
    // a preload reports, at exit, whether an ES module was ever loaded (Node loads its module job
    // code for that; the loader's own entry is there in every process)
    const probe = join(dir, 'esm-probe.cjs');
    writeFileSync(
      probe,
      "process.on('exit', () => process.stderr.write('esm loader: ' + process.moduleLoadList.includes('NativeModule internal/modules/esm/module_job') + '\\n'));",
    );
    const r = kiln(['llb', '--help'], { NODE_OPTIONS: `--require ${probe}` });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('loading cli/dist/kiln.cjs');
    expect(r.stderr).toContain('esm loader: false');
    // dist/main.js is ES modules: the same probe sees the loader there (the probe works)
    const plain = kiln(['llb', '--help'], { NODE_OPTIONS: `--require ${probe}`, KILN_BUNDLE: '0' });
    expect(plain.stderr).toContain('esm loader: true');
  });

  it('holds no import() expression: kiln.js runs it as a vm.Script, where import() throws "A dynamic import callback was not specified"', async () => {
    const { readFile } = await import('node:fs/promises');
    const { paths } = await stampModule();
    const code = await readFile(paths().bundle, 'latin1');
    // `kiln llb` loaded node:https this way for https registries and failed on every one of them.
    expect(code.match(/(?<![\w$.])import\s*\(/g) ?? []).toEqual([]);
  });

  it('prints the same LLB, image config and errors as the unbundled packages', async () => {
    const ctx = join(dir, 'ctx');
    await mkdir(ctx);
    await writeFile(
      join(ctx, 'Dockerfile'),
      [
        'ARG BASE=scratch',
        'FROM ${BASE} AS build',
        'ENV A=1',
        'WORKDIR /src',
        'COPY --chmod=755 . .',
        'RUN --mount=type=cache,target=/c --mount=type=secret,id=s,required=false ["/bin/sh", "-c", "make"]',
        'RUN <<EOF',
        'echo $A',
        'EOF',
        'FROM scratch',
        'COPY --from=build /src/out /out',
        'LABEL a=b',
        'CMD ["/out"]',
        '',
      ].join('\n'),
    );
    const args = ['llb', ctx, '--build-arg', 'BASE=scratch', '--session-id', 's1', '--platform', 'linux/arm64'];
    const results = [];
    for (const env of [{}, { KILN_BUNDLE: '0' }]) {
      const json = kiln([...args, '--image-config', join(dir, `config-${results.length}.json`)], env);
      const dot = kiln([...args, '--format', 'dot'], env);
      results.push({ json, dot });
    }
    const [bundled, plain] = results;
    expect(bundled?.json.stderr).toContain('kiln.cjs');
    expect(plain?.json.stderr).toContain('main.js');
    expect(bundled?.json.code).toBe(0);
    expect(bundled?.json.stdout.split('\n').filter((l) => l !== '').length).toBeGreaterThan(3);
    expect(bundled?.json.stdout).toBe(plain?.json.stdout);
    expect(bundled?.dot.stdout).toBe(plain?.dot.stdout);
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(join(dir, 'config-0.json'), 'utf8')).toBe(await readFile(join(dir, 'config-1.json'), 'utf8'));

    await writeFile(join(ctx, 'Dockerfile.bad'), 'FROM scratch\nCOPY --frm=x a b\n');
    const bad = [kiln(['llb', ctx, '-f', join(ctx, 'Dockerfile.bad')]), kiln(['llb', ctx, '-f', join(ctx, 'Dockerfile.bad')], { KILN_BUNDLE: '0' })];
    expect(bad[0]?.code).toBe(1);
    expect(bad[1]?.code).toBe(1);
    const message = (s: string): string => s.split('\n').filter((l) => !l.startsWith('kiln: loading')).join('\n');
    expect(message(bad[0]?.stderr ?? '')).toContain('Dockerfile.bad:2:');
    expect(message(bad[0]?.stderr ?? '')).toBe(message(bad[1]?.stderr ?? ''));
  });

  it('is stale once tsc rewrote any package, and then kiln.js runs dist/main.js', async () => {
    const { bundleIsFresh, paths, stampOf } = await stampModule();
    // A copy of the layout in a temp tree: the checkout's own build is never touched.
    const root = join(dir, 'tree');
    for (const [file] of stampOf()) {
      await mkdir(join(root, file, '..'), { recursive: true });
      await writeFile(join(root, file), 'x');
    }
    const p = paths(root);
    expect(bundleIsFresh(root)).toBe(false); // no bundle, no stamp
    await writeFile(p.bundle, '');
    await writeFile(p.stamp, JSON.stringify(stampOf(root)));
    expect(bundleIsFresh(root)).toBe(false); // no daemon client bundle
    await writeFile(p.client, '');
    expect(bundleIsFresh(root)).toBe(true);
    const later = new Date(Date.now() + 5000);
    await utimes(join(root, 'solver', 'dist', '.tsbuildinfo'), later, later);
    expect(bundleIsFresh(root)).toBe(false);
    await writeFile(p.stamp, JSON.stringify(stampOf(root)));
    expect(bundleIsFresh(root)).toBe(true);
    // npm installed other dependencies (the bundle holds them): stale; no npm lock files: fine
    await utimes(join(root, 'package-lock.json'), later, later);
    expect(bundleIsFresh(root)).toBe(false);
    await rm(join(root, 'node_modules', '.package-lock.json'));
    await writeFile(p.stamp, JSON.stringify(stampOf(root)));
    expect(bundleIsFresh(root)).toBe(true);
    await rm(join(root, 'frontends', 'ts-dsl', 'dist', '.tsbuildinfo'));
    await writeFile(p.stamp, JSON.stringify(stampOf(root)));
    // a package that was never built: never fresh
    expect(bundleIsFresh(root)).toBe(false);
  });

  it('keeps a cache per node options: V8 refuses one made under other flags, so such a run writes its own', async () => {
    const { readdir, readFile } = await import('node:fs/promises');
    const distDir = join(repo, 'cli', 'dist');
    const flagCaches = async (): Promise<string[]> => (await readdir(distDir)).filter((f) => /^kiln\.cjs\.[0-9a-f]{8}\.cache$/.test(f));
    for (const f of await flagCaches()) await rm(join(distDir, f));
    const trained = await readFile(join(distDir, 'kiln.cjs.cache'));
    const run = (): ReturnType<typeof spawnSync> =>
      spawnSync(process.execPath, ['--stack-size=1000', kilnBin, 'llb', '--help'], { env: { ...process.env, KILN_DAEMON: '0', KILN_DEBUG_LOAD: '1' }, encoding: 'utf8' });
    try {
      const first = run();
      expect(first.status).toBe(0);
      expect(first.stdout).toContain('Usage: kiln llb');
      expect(first.stderr).toContain('code cache absent');
      expect(first.stderr).toContain('wrote a code cache for these node options');
      const written = await flagCaches();
      expect(written).toHaveLength(1);
      const second = run();
      expect(second.stderr).toContain('code cache used');
      expect(second.stderr).not.toContain('wrote');
      // A cache V8 refuses (another Node, a damaged file) still runs, and is replaced.
      await writeFile(join(distDir, written[0] as string), 'not a V8 code cache');
      const third = run();
      expect(third.status).toBe(0);
      expect(third.stderr).toContain('code cache rejected');
      expect(third.stderr).toContain('wrote a code cache');
      expect(run().stderr).toContain('code cache used');
      // V8 compares a cache with the source only by its length and would run an older bundle's
      // bytecode for a new bundle of the same length: a cache made from another bundle (its first
      // line names the bundle) is refused even though V8 would take it.
      const cacheFile = join(distDir, written[0] as string);
      const good = await readFile(cacheFile);
      const hexAt = good.indexOf('kiln-bundle ') + 'kiln-bundle '.length;
      expect(hexAt).toBe('/*kiln-bundle '.length);
      const foreign = Buffer.from(good);
      foreign[hexAt] = foreign[hexAt] === 0x30 ? 0x31 : 0x30;
      await writeFile(cacheFile, foreign);
      const fourth = run();
      expect(fourth.status).toBe(0);
      expect(fourth.stderr).toContain('code cache rejected');
      expect(fourth.stderr).toContain('wrote a code cache');
      const line = good.indexOf(0x0a) + 1;
      expect((await readFile(cacheFile)).subarray(0, line).equals(good.subarray(0, line))).toBe(true);
      // the trained cache of plain runs is untouched
      expect((await readFile(join(distDir, 'kiln.cjs.cache'))).equals(trained)).toBe(true);
    } finally {
      for (const f of await flagCaches()) await rm(join(distDir, f));
    }
  });
});
