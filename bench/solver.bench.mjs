// Solver micro-benchmarks (run after `npm run build`): local context transfer + content hashing,
// and the scheduler's cache-hit path. Prints a table; targets from issue #5 in brackets.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { syncLocalSource } from '@kiln/solver';

function makeContext(root, n) {
  for (let i = 0; i < n; i++) {
    const dir = join(root, `d${i % 50}`, `s${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`.repeat(20 + (i % 100)));
  }
}

async function time(fn) {
  const t0 = performance.now();
  const r = await fn();
  return { ms: performance.now() - t0, r };
}

export async function run() {
  const work = mkdtempSync(join(tmpdir(), 'kiln-bench-solver-'));
  try {
    const src = join(work, 'ctx');
    makeContext(src, 5000);
    const opts = { src, dest: join(work, 'mirror'), statePath: join(work, 'state.json') };
    const cold = await time(() => syncLocalSource(opts));
    const warm = await time(() => syncLocalSource(opts));
    writeFileSync(join(src, 'd1', 's1', 'f1.txt'), 'changed\n');
    utimesSync(join(src, 'd1', 's1', 'f1.txt'), new Date(), new Date(Date.now() + 5000));
    const one = await time(() => syncLocalSource(opts));
    const rows = [
      ['5,000-file context, cold transfer+hash', cold.ms, 3000, `hashed ${cold.r.stats.hashed}`],
      ['5,000-file context, unchanged', warm.ms, 300, `hashed ${warm.r.stats.hashed}`],
      ['5,000-file context, one file changed', one.ms, 1500, `hashed ${one.r.stats.hashed}`],
    ];
    console.log('| case | ms | target ms | note |\n| --- | ---: | ---: | --- |');
    for (const [name, ms, target, note] of rows) console.log(`| ${name} | ${ms.toFixed(0)} | < ${target} | ${note} |`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
