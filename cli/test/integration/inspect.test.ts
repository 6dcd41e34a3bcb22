import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { BuilderInfo } from '../../src/commands/inspect.js';

const bin = join(import.meta.dirname, '../../bin/kiln.js');
const dir = mkdtempSync(join(tmpdir(), 'kiln-inspect-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kiln = (args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, KILN_DAEMON: '0', KILN_CONFIG: '', KILN_GC_KEEP_STORAGE: '', ...env } });

test('kiln inspect shows the root, runtime, config file, registries and the GC rules it would apply, in buildx inspect\'s form and as JSON', () => {
  const root = join(dir, 'root');
  const plain = kiln(['inspect', '--root', root]);
  expect(plain.status).toBe(0);
  expect(plain.stdout).toContain(`Root:       ${root} (--root)`);
  expect(plain.stdout).toMatch(/^Runtime: {4}runc version \S+/m);
  expect(plain.stdout).toContain('Cache:      empty (no builds yet)');
  // BuildKit's default policy: four rules, the first for easily reproduced records.
  expect(plain.stdout).toContain('GC Policy rule#0:\n All:           false\n Filters:       type==source.local,type==exec.cachemount\n Keep Duration: 48h0m0s\n Keep Bytes:    512MB\n');
  expect(plain.stdout).toContain('GC Policy rule#3:\n All:           true\n');

  const file = join(dir, 'kiln.toml');
  writeFileSync(file, ['[registry."docker.io"]', 'mirrors = ["127.0.0.1:5000"]', '[registry."10.0.0.5:5000"]', 'http = true', '[[worker.oci.gcpolicy]]', 'filters = ["type==source.local"]', 'keepDuration = "24h"', 'keepBytes = 1000000', '[grpc]', 'address = ["unix:///x"]', ''].join('\n'));
  const json = kiln(['--config', file, 'inspect', '--root', root, '--format', 'json']);
  expect(json.status).toBe(0);
  const info = JSON.parse(json.stdout) as BuilderInfo;
  expect(info.config).toEqual({ path: file, exists: true, ignored: ['grpc'] });
  expect(info.registries).toEqual({ 'docker.io': ['mirrors 127.0.0.1:5000'], '10.0.0.5:5000': ['http'] });
  expect(info.gc).toEqual({ source: 'config file', rules: [{ all: false, filters: ['type==source.local'], keepDuration: 86_400_000, keepBytes: 1_000_000 }] });
  expect(json.stderr).toContain('ignoring keys kiln does not use: grpc');

  const off = kiln(['--config', file, 'inspect', '--root', root], { KILN_GC_KEEP_STORAGE: 'off' });
  expect(off.stdout).toContain('GC:         off');
  const bad = kiln(['--config', join(dir, 'missing.toml'), 'inspect', '--root', root]);
  expect(bad.status).toBe(1);
  expect(bad.stderr).toContain('KLN0940');
});
