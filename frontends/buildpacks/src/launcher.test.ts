import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { launcherScript } from './launcher.js';

// Runs the generated script with the host's /bin/sh (busybox ash or dash): behaviour, not text.
const dir = mkdtempSync(join(tmpdir(), 'kiln-launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const layer = join(dir, 'layers/bp/tools');
mkdirSync(join(layer, 'exec.d/web'), { recursive: true });
writeFileSync(join(layer, 'exec.d/a-global'), '#!/bin/sh\nprintf \'EXECD = "ok"\\nBAD KEY = "x"\\nQUOTED="a b"\\n\' >&3\nprintf "%s\\n" "LITERAL = \'say \\"hi\\"\'" >&3\n');
writeFileSync(join(layer, 'exec.d/web/only-web'), '#!/bin/sh\necho \'WEBONLY = "yes"\' >&3\n');
chmodSync(join(layer, 'exec.d/a-global'), 0o755);
chmodSync(join(layer, 'exec.d/web/only-web'), 0o755);
const script = launcherScript({
  processes: [
    { type: 'web', command: ['sh', '-c', 'echo "web:$*:$GREETING:$EXECD:$QUOTED:${WEBONLY-}:$PATH:$(pwd)"', 'x'], args: ["it's", 'default'], direct: true, default: true, buildpackId: 'bp' },
    { type: 'worker', command: ['sh', '-c', 'echo "worker:$*:${WEBONLY-unset}:$ONLYWORKER:$GREETING"', 'x'], args: [], direct: true, default: false, workingDir: '/', buildpackId: 'bp' },
  ],
  defaultType: 'web',
  env: [
    { op: 'prepend', name: 'PATH', value: '/layers/bp/tools/bin', delim: ':' },
    { op: 'override', name: 'ONLYWORKER', value: 'w', process: 'worker' },
    { op: 'default', name: 'GREETING', value: 'hello $HOME `x`' },
    { op: 'override', name: 'GREETING', value: 'from worker', process: 'worker' },
    { op: 'override', name: 'GREETING', value: 'later layer', process: 'nobody' },
  ],
  layerDirs: [layer],
  appDir: dir,
});
const launcher = join(dir, 'launcher');
writeFileSync(launcher, script, { mode: 0o755 });
mkdirSync(join(dir, 'process'));
symlinkSync(launcher, join(dir, 'process/web'));
symlinkSync(launcher, join(dir, 'process/worker'));

const run = (bin: string, args: string[], env: Record<string, string> = {}): { out: string; code: number | null } => {
  const r = spawnSync(bin, args, { env: { PATH: '/usr/bin:/bin', HOME: '/root', ...env }, cwd: dir, encoding: 'utf8' });
  return { out: r.stdout.trim() + r.stderr.trim(), code: r.status };
};

describe('launcher script', () => {
  test('default process: default args, literal env values (no expansion), path prepend, exec.d (global and per type), app dir', () => {
    expect(run(join(dir, 'process/web'), [])).toEqual({ out: `web:it's default:hello $HOME \`x\`:ok:a b:yes:/layers/bp/tools/bin:/usr/bin:/bin:${dir}`, code: 0 });
  });
  test('user args replace the process args; a user value wins over a default', () => {
    expect(run(join(dir, 'process/web'), ['mine'], { GREETING: 'user' }).out).toMatch(/^web:mine:user:ok:/);
  });
  test('a default applies to a variable set empty (lifecycle: Get(name) != "")', () => {
    expect(run(join(dir, 'process/web'), ['mine'], { GREETING: '' }).out).toMatch(/^web:mine:hello \$HOME `x`:ok:/);
  });
  test('another process: its own env and working dir, no exec.d of other types', () => {
    expect(run(join(dir, 'process/worker'), ['one', 'two'])).toEqual({ out: 'worker:one two:unset:w:from worker', code: 0 });
  });
  test('launcher without arguments runs the default; launcher <type>; launcher <command> runs in the app env', () => {
    expect(run(launcher, []).out).toMatch(/^web:it's default:/);
    expect(run(launcher, ['worker', 'a']).out).toBe('worker:a:unset:w:from worker');
    expect(run(launcher, ['sh', '-c', 'echo "$EXECD|$QUOTED|$0|$(pwd)"', 'z']).out).toBe(`ok|a b|z|${dir}`);
    // `launcher -- CMD ARGS`: lifecycle's direct user-provided process (the `--` is not a command)
    expect(run(launcher, ['--', 'sh', '-c', 'echo "direct $EXECD"'])).toEqual({ out: 'direct ok', code: 0 });
    // a TOML literal string (single quotes) from exec.d, as lifecycle's toml.Decode reads it
    expect(run(launcher, ['sh', '-c', 'echo "$LITERAL"']).out).toBe('say "hi"');
  });
  test('an unknown process type fails', () => {
    symlinkSync(launcher, join(dir, 'process/nope'));
    expect(run(join(dir, 'process/nope'), [])).toEqual({ out: 'launcher: unknown process type nope', code: 1 });
  });
});
