import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { treeChanges } from './changes.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes `body` at `dir/name` with mtime `at` (`<seconds>.<nanoseconds>`, exact: GNU touch). */
function file(dir: string, name: string, body: string, at: string): void {
  writeFileSync(join(dir, name), body);
  execFileSync('touch', ['-m', '-d', `@${at}`, join(dir, name)]);
}

async function changed(lower: string, upper: string): Promise<string[]> {
  const out: string[] = [];
  for await (const c of treeChanges(lower, upper)) out.push(`${c.kind} ${c.path}`);
  return out;
}

describe('treeChanges (DiffOp of unrelated trees), as containerd sameFile', () => {
  test('mtimes compared to the nanosecond; bytes read only when both are whole seconds', async () => {
    const lower = mkdtempSync(join(tmpdir(), 'kiln-changes-'));
    const upper = mkdtempSync(join(tmpdir(), 'kiln-changes-'));
    dirs.push(lower, upper);
    // 1 ns apart, same size and bytes: a change (mtimeMs, a double, made them equal).
    file(lower, 'ns', 'same', '1700000000.123456789');
    file(upper, 'ns', 'same', '1700000000.123456790');
    // Equal sub-second mtimes: unchanged without reading (different bytes are not looked at).
    file(lower, 'eq', 'aaaa', '1700000000.5');
    file(upper, 'eq', 'bbbb', '1700000000.5');
    // Whole seconds (from a tar): the bytes decide.
    file(lower, 'whole-same', 'xxxx', '1700000000');
    file(upper, 'whole-same', 'xxxx', '1700000000');
    file(lower, 'whole-diff', 'xxxx', '1700000000');
    file(upper, 'whole-diff', 'yyyy', '1700000000');
    execFileSync('touch', ['-m', '-d', '@1700000000', lower, upper]);
    expect(await changed(lower, upper)).toEqual(['add ns', 'add whole-diff']);
  });
});
