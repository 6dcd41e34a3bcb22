#!/usr/bin/env node
// A running `kiln daemon` for this command's root serves it (see cli/src/daemon); otherwise kiln
// runs in this process. The daemon check loads only Node built-ins.
import { runViaDaemon } from '../dist/daemon/client.js';

const viaDaemon = await runViaDaemon(process.argv);
process.exitCode = viaDaemon ?? (await (await import('../dist/main.js')).main(process.argv));
