#!/usr/bin/env node
// Runs every bench/*.bench.mjs (or the ones named on the command line) one after another
// against the built packages (`npm run build` first). Each file prints its own table.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.startsWith(o)))
  .sort();
for (const f of files) {
  process.stdout.write(`\n## ${f.replace('.bench.mjs', '')}\n`);
  const mod = await import(pathToFileURL(join(dir, f)).href);
  await mod.run();
}
