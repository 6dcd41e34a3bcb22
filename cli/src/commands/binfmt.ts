import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import { binfmtStatus, formatBinfmtStatus, installEmulators, uninstallEmulators } from '../engine/binfmt.js';
import { EngineError } from '../engine/errors.js';

const list = (v: string, prev: string[]): string[] => [...prev, v];

/** `kiln binfmt [--install ARCH,…|all] [--uninstall ARCH,…|all] [--format json]`. */
export function registerBinfmt(program: Command, io: CliIo): void {
  program
    .command('binfmt')
    .description('show or register the QEMU emulators that let RUN steps of other platforms run (binfmt_misc)')
    .option('--install <arches>', 'register QEMU emulators from qemu-user-static, with the F flag: arm64,riscv64,… or all (repeatable)', list, [] as string[])
    .option('--uninstall <arches>', 'remove registered QEMU emulators: arm64,… or all (repeatable)', list, [] as string[])
    .option('--format <format>', 'output format: text (default) or json')
    .action(async (flags: { install: string[]; uninstall: string[]; format?: string }) => {
      const format = flags.format ?? 'text';
      if (format !== 'text' && format !== 'json') throw new EngineError('KLN0713', `--format ${JSON.stringify(format)} is not text or json`);
      if (flags.uninstall.length > 0) {
        const removed = await uninstallEmulators(flags.uninstall);
        if (format === 'text') io.stderr.write(removed.length === 0 ? 'no such emulator was registered\n' : `removed ${removed.join(', ')}\n`);
      }
      if (flags.install.length > 0) {
        const { installed, kept } = await installEmulators(flags.install);
        if (format === 'text') {
          if (installed.length > 0) io.stderr.write(`installed ${installed.join(', ')}\n`);
          if (kept.length > 0) io.stderr.write(`already registered: ${kept.join(', ')}\n`);
        }
      }
      const s = binfmtStatus();
      io.stdout.write(format === 'json' ? `${JSON.stringify({ supported: s.supported, emulators: s.emulators.map((h) => h.name) }, null, 2)}\n` : formatBinfmtStatus(s));
    });
}
