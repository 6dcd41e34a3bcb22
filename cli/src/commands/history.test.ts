import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { tempRoots } from '../../test/helpers/temp-roots.js';
import { RawJsonRenderer } from '@kiln/solver';
import type { CliIo } from '../io.js';
import { main } from '../main.js';
import { newRef, type HistoryRecord } from '../history/record.js';
import { HistoryStore, recordFiles } from '../history/store.js';

const root = tempRoots('kiln-history-cmd-');

/** Runs `kiln ARGS` in process (as main does for a user) and returns its exit code and output. */
async function kiln(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdin: (async function* () {})(), stdout: { write: (c: string | Uint8Array) => (stdout += Buffer.from(c).toString('latin1')) }, stderr: { write: (c: string | Uint8Array) => (stderr += String(c)) }, env: {} };
  const code = await main(['node', 'kiln', ...args], io);
  return { code, stdout, stderr };
}

const T = Date.now() - 60_000;

function rec(i: number, over: Partial<HistoryRecord> = {}): HistoryRecord {
  return { version: 1, ref: newRef(), kind: 'build', name: `app${i}`, status: 'completed', createdAt: new Date(T + i * 1000).toISOString(), completedAt: new Date(T + i * 1000 + 500).toISOString(), durationMs: 500, steps: { total: 2, cached: 1, completed: 2 }, exports: [], ...over };
}

/** The gzip rawjson log of one RUN step that printed `hello`. */
function runLog(): Buffer {
  let raw = '';
  const r = new RawJsonRenderer({ write: (s) => (raw += s) });
  r.handle({ kind: 'vertex.started', vertex: 'sha256:1', name: '[1/1] RUN echo hello', time: T });
  r.handle({ kind: 'log', vertex: 'sha256:1', stream: 1, data: Buffer.from('hello\n'), time: T + 12 });
  r.handle({ kind: 'vertex.done', vertex: 'sha256:1', time: T + 300 });
  return gzipSync(raw);
}

describe('kiln history', () => {
  test('ls lists newest first (table and json lines), filters by status', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const a = rec(1);
    const b = rec(2, { status: 'error' });
    await s.write(a);
    await s.write(b);
    const table = await kiln(['history', 'ls', '--root', r]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^BUILD ID +NAME +STATUS +CREATED AT +DURATION$/);
    expect(lines[1]).toMatch(new RegExp(`^${b.ref} +app2 +Error +\\d+ seconds ago +0\\.5s$`));
    expect(lines[2]).toMatch(new RegExp(`^${a.ref} +app1 +Completed `));
    const json = await kiln(['history', 'ls', '--root', r, '--format', 'json', '--filter', 'status=completed']);
    expect(json.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { ref: string }).ref)).toEqual([a.ref]);
    const bad = await kiln(['history', 'ls', '--root', r, '--filter', 'state=error']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('kiln: error KLN0931: invalid --filter "state=error"');
  });

  test('an empty root lists just the header', async () => {
    expect((await kiln(['history', 'ls', '--root', root()])).stdout).toBe('BUILD ID   NAME   STATUS   CREATED AT   DURATION\n');
  });

  test('inspect: the latest by default, ^N and ids; an unknown ref is KLN0930 with what to do', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const a = rec(1, { target: 'web' });
    const b = rec(2);
    await s.write(a);
    await s.write(b);
    expect((await kiln(['history', 'inspect', '--root', r])).stdout).toContain(`ID:             ${b.ref}\nName:           app2\n`);
    expect((await kiln(['history', 'inspect', '^1', '--root', r])).stdout).toContain('Target:         web\n');
    const json = JSON.parse((await kiln(['history', 'inspect', a.ref, '--format', 'json', '--root', r])).stdout) as HistoryRecord;
    expect(json).toMatchObject({ ref: a.ref, target: 'web', status: 'completed', steps: { total: 2, cached: 1 } });
    const unknown = await kiln(['history', 'inspect', 'nosuchbuild', '--root', r]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('kiln: error KLN0930: no build record "nosuchbuild"\nhint: list the recorded builds with kiln history ls (kept: the last 50, and every build of the last 48 h)\n');
  });

  test('typo tour 4: buildx-only history commands are refused with what kiln has (were commander\'s "unknown command" / "too many arguments")', async () => {
    const r = root();
    for (const argv of [['export', '^0', '-o', 'x.dockerbuild'], ['trace'], ['inspect', 'attachment', '^0', '--type', 'sbom']]) {
      const res = await kiln(['history', ...argv, '--root', r]);
      expect(res.code, argv.join(' ')).toBe(1);
      expect(res.stderr, argv.join(' ')).toMatch(/^kiln: error KLN0931: kiln history (export|trace) is not supported|^kiln: error KLN0931: kiln history has no attachments/);
    }
    expect((await kiln(['history', 'inspect', 'a', 'b', '--root', r])).stderr).toContain('kiln history inspect takes one BUILD ID (got also "b")');
    expect((await kiln(['history', 'inspect', '--fromat', 'json', '--root', r])).stderr).toContain('unknown option "--fromat" of kiln history inspect');
  });

  test('logs replays the stored log (plain by default, rawjson as stored); a record without a log is KLN0933', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const withLog = rec(1, { log: { size: 1, truncated: true, limit: 4194304 } });
    await s.write(withLog, runLog());
    const plain = await kiln(['history', 'logs', '--root', r]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('#1 [1/1] RUN echo hello\n#1 0.012 hello\n#1 DONE 0.3s\n');
    // the word kiln history --help uses for it
    expect((await kiln(['history', 'replay', withLog.ref, '--root', r])).stdout).toBe(plain.stdout);
    expect(plain.stderr).toContain('WARNING: the log of build');
    const raw = await kiln(['history', 'logs', withLog.ref, '--progress', 'rawjson', '--root', r]);
    expect(raw.stdout.split('\n')[0]).toBe(`{"vertexes":[{"digest":"sha256:1","name":"[1/1] RUN echo hello","started":"${new Date(T).toISOString()}"}]}`);
    const interrupted = rec(2, { status: 'running', owner: { pid: 4194305 } });
    await s.write(interrupted);
    const none = await kiln(['history', 'logs', '--root', r]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('KLN0933');
    expect(none.stderr).toContain('ended before the build did');
    // A build with steps whose log could not be written (kept without it): not "printed no progress".
    await s.write(rec(3));
    expect((await kiln(['history', 'logs', '--root', r])).stderr).toContain('has no stored log: it could not be written when the build ended');
  });

  test('rm: by ref and ^N (all resolved first: one unknown removes nothing), --all keeps running builds', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const recs = [rec(1), rec(2), rec(3), rec(4, { status: 'running', owner: { pid: process.pid } })];
    for (const x of recs) await s.write(x, runLog());
    const refs = async (): Promise<string[]> => (await s.list()).map((x) => x.record.ref);
    const partial = await kiln(['history', 'rm', recs[0]?.ref as string, 'nosuchbuild', '--root', r]);
    expect(partial.stderr).toContain('KLN0930');
    expect(await refs()).toHaveLength(4);
    const running = await kiln(['history', 'rm', '^0', '--root', r]);
    expect(running.stderr).toContain('kiln: error KLN0932: build');
    const one = await kiln(['history', 'rm', recs[0]?.ref as string, '^1', '--root', r]);
    expect(one.code).toBe(0);
    expect(one.stdout.trimEnd().split('\n').sort()).toEqual([recs[0]?.ref, recs[2]?.ref].sort());
    expect(await refs()).toEqual([recs[3]?.ref, recs[1]?.ref]);
    const all = await kiln(['history', 'rm', '--all', '--root', r]);
    expect(all.stdout).toBe(`${recs[1]?.ref}\n`);
    expect(all.stderr).toContain(`kept ${recs[3]?.ref}: the build is still running`);
    // The logs went with their records.
    expect((await readdir(s.dir)).filter((n) => n.endsWith('.log.gz'))).toHaveLength(1);
    expect((await kiln(['history', 'rm', '--root', r])).stderr).toContain('KLN0931');
  });

  test('hand-edited, torn or foreign records: ls, inspect and logs never crash; wrong fields are left out; a newer version is read; rm --all removes unreadable files', async () => {
    const r = root();
    const s = new HistoryStore(r);
    await mkdir(s.dir, { recursive: true });
    const put = async (ref: string, created: number, body: Record<string, unknown>): Promise<void> => {
      await writeFile(join(s.dir, recordFiles(ref, created).json), JSON.stringify({ version: 1, ref, kind: 'build', name: `n-${ref.slice(0, 4)}`, status: 'completed', createdAt: new Date(created).toISOString(), steps: { total: 1 }, exports: [], ...body }));
    };
    const ref = (c: string): string => c.repeat(25);
    // A running record whose owner was edited to null (or a pid that is not a number).
    await put(ref('a'), T + 1000, { status: 'running', owner: null });
    await put(ref('b'), T + 2000, { status: 'running', owner: { pid: 'x' } });
    // Optional fields of the wrong type.
    await put(ref('c'), T + 3000, { exports: [{}, 5, { type: 'image', names: 'app' }], platforms: 'linux/amd64', secrets: 'tok', buildArgs: [1, 2], labels: { a: 1, b: 'two' }, error: { report: 5 }, log: null, durationMs: 'x', steps: { total: 1, cached: null }, owner: 7 });
    // A newer kiln's record: a higher version, a field this kiln does not know, a time with an offset.
    await put(ref('d'), T + 4000, { version: 2, future: { x: 1 }, createdAt: '2026-11-30T14:00:04.000+02:00', completedAt: '2026-11-30T14:00:05.000+02:00', durationMs: 1000 });
    // Torn and foreign files.
    await writeFile(join(s.dir, recordFiles(ref('e'), T + 5000).json), '{"version":1,"ref":');
    await writeFile(join(s.dir, recordFiles(ref('f'), T + 6000).json), '[1,2,3]');

    const ls = await kiln(['history', 'ls', '--root', r]);
    expect(ls.stderr).toBe('');
    expect(ls.code).toBe(0);
    const lines = ls.stdout.trimEnd().split('\n').slice(1);
    expect(lines.map((l) => l.split(/ +/).slice(0, 3))).toEqual([
      [ref('d'), 'n-dddd', 'Completed'],
      [ref('c'), 'n-cccc', 'Completed'],
      [ref('b'), 'n-bbbb', 'Interrupted'],
      [ref('a'), 'n-aaaa', 'Interrupted'],
    ]);
    expect(lines[1]).not.toContain('NaN');
    expect((await kiln(['history', 'ls', '--format', 'json', '--root', r])).code).toBe(0);

    const c = await kiln(['history', 'inspect', ref('c'), '--root', r]);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('Build Steps:    1 total, 0 cached, 0 completed\n');
    expect(c.stdout).toContain('Labels:         b=two\n');
    expect(c.stdout).not.toMatch(/Platforms|Secrets|Build Args|undefined|NaN/);
    expect(c.stdout).toMatch(/\nimage {3}app\n/);
    const d = await kiln(['history', 'inspect', ref('d'), '--root', r]);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Created:        2026-11-30 12:00:04 UTC\nCompleted:      2026-11-30 12:00:05 UTC\n');
    for (const x of ['a', 'b', 'c']) {
      const logs = await kiln(['history', 'logs', ref(x), '--root', r]);
      expect(logs.code).toBe(1);
      expect(logs.stderr).toMatch(/^kiln: error KLN0933: /);
    }

    const all = await kiln(['history', 'rm', '--all', '--root', r]);
    expect(all.code).toBe(0);
    expect(await readdir(s.dir)).toEqual([]);
  });

  test('ls: running builds first, then newest first (buildx); long names cut to 36 characters from the left', async () => {
    const r = root();
    const s = new HistoryStore(r);
    const old = rec(1, { status: 'running', owner: { pid: process.pid }, name: 'a'.repeat(30) + '/project/Dockerfile.release' });
    const newer = rec(2);
    await s.write(old);
    await s.write(newer);
    const lines = (await kiln(['history', 'ls', '--root', r])).stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(new RegExp(`^${old.ref} +\\.\\.a{7}/project/Dockerfile\\.release +Running `));
    expect(lines[1]?.split(/ +/)[1]).toHaveLength(36);
    expect(lines[2]).toMatch(new RegExp(`^${newer.ref} +app2 +Completed `));
    const json = (await kiln(['history', 'ls', '--format', 'json', '--root', r])).stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { ref: string }).ref);
    expect(json).toEqual([old.ref, newer.ref]);
    // ^N counts by creation time, as buildx: ^0 is the newest build.
    expect((await kiln(['history', 'inspect', '^0', '--root', r])).stdout).toContain(`ID:             ${newer.ref}\n`);
  });
});
