export { main } from './main.js';
export { dumpLlb, registerDumpLlb, type DumpLlbFormat } from './commands/dump-llb.js';
export { type CliIo, CliError, processIo, readAll, reportError } from './io.js';
