import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Option, type Command } from 'commander';
import { runnablePlatforms, usernsMaps, usernsState, type IdMapLine, type RegistryHostOptions } from '@kiln/runtime';
import { CacheStore, formatBytes } from '@kiln/solver';
import { callerEnv, type CliIo } from '../io.js';
import { kilnRoot } from '../engine/cli-support.js';
import { commandConfig, configLocation, type KilnConfig } from '../engine/config.js';
import { GC_KEEP_STORAGE_ENV } from '../engine/auto-gc.js';
import { resolveGcPolicy, rulesNow, type GcPolicy } from '../engine/gc-policy.js';
import { versionLine } from '../version.js';

/** What `kiln inspect` reports: the builder a kiln command here would use (buildx inspect's fields). */
export interface BuilderInfo {
  readonly name: 'kiln';
  readonly version: string;
  readonly root: string;
  /** Where the root came from: `--root`, `KILN_ROOT` or the default. */
  readonly rootSource: string;
  readonly runtime: string;
  /**
   * Rootless kiln (docs/rootless.md): the user whose namespace the engine runs in and its id maps
   * (inside → host), as BuildKit's rootless worker runs under rootlesskit; false for root.
   */
  readonly rootless: RootlessInfo | false;
  readonly platforms: readonly string[];
  readonly config: { readonly path: string; readonly exists: boolean; readonly ignored: readonly string[] };
  readonly registries: Readonly<Record<string, readonly string[]>>;
  /** Undefined: no automatic GC. */
  readonly gc: { readonly source: string; readonly rules: readonly GcRuleInfo[] } | undefined;
  readonly cache: { readonly records: number; readonly bytes: number } | undefined;
  readonly history: number;
}

/** The user namespace of a rootless builder. */
export interface RootlessInfo {
  readonly user: string;
  readonly uid: number;
  /** `single`: only uid/gid 0 (the user); `ranged`: its /etc/subuid and /etc/subgid ranges after it. */
  readonly mode: 'single' | 'ranged';
  readonly uidMap: readonly IdMapLine[];
  readonly gidMap: readonly IdMapLine[];
}

/** One GC rule as buildx inspect prints it. */
export interface GcRuleInfo {
  readonly all: boolean;
  readonly filters: readonly string[];
  readonly keepDuration?: number;
  readonly keepBytes?: number;
  readonly minFreeSpace?: number;
}

/** Registers `kiln inspect [--root DIR] [--format text|json]`. */
export function registerInspect(program: Command, io: CliIo): void {
  program
    .command('inspect')
    .description('show the builder: version, root, runtime, platforms, config file, registries, GC policy, cache and history (as buildx inspect)')
    .option('--root <dir>', 'kiln state directory')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { root?: string; format: 'text' | 'json' }) => {
      const info = await inspectBuilder(opts.root, io);
      io.stdout.write(opts.format === 'json' ? `${JSON.stringify(info, null, 2)}\n` : formatBuilderInfo(info));
    });
}

/** Reads what {@link BuilderInfo} holds, without opening an engine (a daemon may hold the root). */
export async function inspectBuilder(rootFlag: string | undefined, io: CliIo): Promise<BuilderInfo> {
  const root = kilnRoot(rootFlag, io);
  const env = callerEnv(io);
  const loc = configLocation(io);
  const config: KilnConfig = commandConfig(io);
  const envSetting = env[GC_KEEP_STORAGE_ENV];
  const policy = resolveGcPolicy({ env: envSetting, file: config.gc }, root.path);
  const gcSource = envSetting !== undefined && envSetting.trim() !== '' ? GC_KEEP_STORAGE_ENV : config.gc !== undefined ? 'config file' : 'default';
  const cache = cacheTotals(root.path);
  return {
    name: 'kiln',
    version: versionLine(),
    root: root.path,
    rootSource: rootFlag !== undefined ? '--root' : env['KILN_ROOT'] !== undefined && env['KILN_ROOT'] !== '' ? 'KILN_ROOT' : 'default',
    runtime: await runcVersion(),
    rootless: rootlessInfo(),
    // The host's, then those a binfmt_misc emulator runs (kiln binfmt), as buildx inspect lists them.
    platforms: runnablePlatforms(),
    config: { path: loc.path, exists: config.path !== undefined, ignored: config.ignored },
    registries: Object.fromEntries(Object.entries(config.registry).map(([host, o]) => [host, registrySettings(o)])),
    gc: policy === undefined ? undefined : { source: gcSource, rules: gcRules(policy, config, gcSource, cache?.bytes ?? 0) },
    cache,
    history: historyCount(root.path),
  };
}

/** buildx inspect's layout: `Key: value` lines, then one block per GC rule. */
export function formatBuilderInfo(i: BuilderInfo): string {
  const lines = [
    `Name:       ${i.name}`,
    `Version:    ${i.version}`,
    `Root:       ${i.root} (${i.rootSource})`,
    `Runtime:    ${i.runtime}, overlayfs snapshots`,
    `Rootless:   ${i.rootless === false ? 'no' : rootlessLine(i.rootless)}`,
    `Platforms:  ${i.platforms.join(', ')}`,
    `Config:     ${i.config.exists ? i.config.path : `none (${i.config.path} does not exist)`}`,
  ];
  if (i.config.ignored.length > 0) lines.push(`Ignored:    ${i.config.ignored.join(', ')}`);
  const hosts = Object.entries(i.registries);
  if (hosts.length === 0) lines.push('Registries: defaults (plain http for localhost, 127.* and ::1 only)');
  for (const [n, [host, settings]] of hosts.entries()) lines.push(`${n === 0 ? 'Registries: ' : '            '}${host}: ${settings.join('; ') || 'defaults'}`);
  lines.push(`Cache:      ${i.cache === undefined ? 'empty (no builds yet)' : `${i.cache.records} records, ${formatBytes(i.cache.bytes)}`}`);
  lines.push(`History:    ${i.history} build record(s)`);
  if (i.gc === undefined) lines.push('GC:         off');
  else {
    lines.push(`GC:         after each build (${i.gc.source})`);
    for (const [n, r] of i.gc.rules.entries()) {
      lines.push(`GC Policy rule#${n}:`, ` All:           ${String(r.all)}`);
      if (r.filters.length > 0) lines.push(` Filters:       ${r.filters.join(',')}`);
      if (r.keepDuration !== undefined) lines.push(` Keep Duration: ${duration(r.keepDuration)}`);
      if (r.keepBytes !== undefined) lines.push(` Keep Bytes:    ${formatBytes(r.keepBytes)}`);
      if (r.minFreeSpace !== undefined) lines.push(` Min Free:      ${formatBytes(r.minFreeSpace)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** This process's user namespace, when it is rootless kiln's (inspect runs in it for a non-root user). */
function rootlessInfo(): RootlessInfo | false {
  const ns = usernsState();
  const maps = usernsMaps();
  if (ns === undefined || maps === undefined) return false;
  return { user: ns.user, uid: ns.hostUid, mode: ns.mode, uidMap: maps.uids, gidMap: maps.gids };
}

/** `yes, as alice (uid 1000); uids 0:1000:1 1:100000:65536, gids … (inside:host:count)`, as docs/rootless.md writes maps. */
export function rootlessLine(r: RootlessInfo): string {
  const map = (m: readonly IdMapLine[]): string => m.map((l) => `${l.inside}:${l.outside}:${l.count}`).join(' ');
  const note = r.mode === 'single' ? '; no subordinate ids: only root inside' : '';
  return `yes, as ${r.user} (uid ${r.uid}); uids ${map(r.uidMap)}, gids ${map(r.gidMap)} (inside:host:count${note})`;
}

function registrySettings(o: RegistryHostOptions): string[] {
  const out: string[] = [];
  if (o.mirrors !== undefined && o.mirrors.length > 0) out.push(`mirrors ${o.mirrors.join(', ')}`);
  if (o.plainHttp === true) out.push('http');
  if (o.plainHttp === false) out.push('https');
  if (o.insecure === true) out.push('insecure (no certificate check)');
  if (o.ca !== undefined && o.ca.length > 0) out.push(`${o.ca.length} CA certificate(s)`);
  if (o.keypairs !== undefined && o.keypairs.length > 0) out.push(`${o.keypairs.length} client certificate(s)`);
  return out;
}

/** The rules as a GC after a build now would apply them (a minFreeSpace rule's keepBytes from the disk now). */
function gcRules(policy: GcPolicy, config: KilnConfig, source: string, total: number): GcRuleInfo[] {
  const fileRules = source === 'config file' ? config.gc?.policy : undefined;
  return rulesNow(policy, () => total).map((r, n) => {
    const filters = fileRules?.[n]?.filters ?? (r.types ?? []).map((t) => `type==${t}`);
    return {
      all: r.all === true,
      filters: [...filters],
      ...(r.keepDuration === undefined ? {} : { keepDuration: r.keepDuration }),
      ...(r.keepBytes === undefined ? {} : { keepBytes: r.keepBytes }),
      ...(policy.rules[n]?.space?.minFreeSpace ? { minFreeSpace: policy.rules[n]?.space?.minFreeSpace } : {}),
    };
  });
}

/** Records and bytes of the build cache, or undefined when the root has none yet (nothing is created). */
function cacheTotals(root: string): { records: number; bytes: number } | undefined {
  const db = join(root, 'cache', 'solver.db');
  if (!existsSync(db)) return undefined;
  const store = CacheStore.open({ path: db });
  try {
    const rows = store.du();
    return { records: rows.length, bytes: rows.reduce((n, r) => n + r.size, 0) };
  } finally {
    store.close();
  }
}

function historyCount(root: string): number {
  try {
    return readdirSync(join(root, 'history')).filter((f) => f.endsWith('.json')).length;
  } catch {
    return 0;
  }
}

async function runcVersion(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('runc', ['--version'], { timeout: 10_000 });
    return stdout.split('\n')[0]?.trim() ?? 'runc';
  } catch {
    return 'runc not found (apt-get install runc)';
  }
}

/** Go's time.Duration form, as buildx prints Keep Duration (`48h0m0s`). */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m${s % 60}s`;
}
