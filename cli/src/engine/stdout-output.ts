import { open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseOutputSpec, type ExportSpec } from '@kiln/runtime';
import { EngineError } from './errors.js';

/** The caller's standard output as the CLI sees it (a process stream, or a daemon client's frames). */
export interface OutputStream {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean;
  once?(event: 'drain', listener: () => void): unknown;
}

/**
 * An `--output` that goes to the caller's standard output, as buildx writes `-o -` and
 * `type=tar|oci|docker,dest=-`: the exporter writes a private temporary file, which is copied to
 * stdout once the build has succeeded (a failed build writes nothing there).
 */
export interface StdoutOutput {
  /** The temporary file the exporter writes. */
  readonly file: string;
  /** Copies the file to `out`. */
  copyTo(out: OutputStream): Promise<void>;
  /** Removes the temporary directory (idempotent). */
  remove(): Promise<void>;
}

/**
 * Parses the `--output` values, sending the one with `dest=-` (or `-`, buildx's shorthand for
 * `type=tar,dest=-`) to a temporary file. `type=local` and `type=oci,tar=false` make directories
 * and cannot go to stdout; at most one output can; an archive is not written to a terminal.
 */
export async function parseOutputs(values: readonly string[], stdout: OutputStream): Promise<{ specs: ExportSpec[]; stdout?: StdoutOutput }> {
  const specs: ExportSpec[] = [];
  let toStdout: number | undefined;
  const raw: string[] = [];
  for (const value of values) {
    const v = value.trim() === '-' ? 'type=tar,dest=-' : value;
    const fields = v.split(',');
    const at = fields.findIndex((f) => f.trim().toLowerCase() === 'dest=-');
    if (at < 0) {
      specs.push(parseOutputSpec(v));
      raw.push(v);
      continue;
    }
    // Parsed with a placeholder first: the exporter type and its attributes decide what is allowed.
    const probe = parseOutputSpec([...fields.slice(0, at), 'dest=stdout', ...fields.slice(at + 1)].join(','));
    if (probe.type === 'image') {
      // No file to write (dest is not an attribute of type=image): as parsed without it.
      specs.push(parseOutputSpec(v));
      raw.push(v);
      continue;
    }
    if (probe.type === 'local') throw new EngineError('KLN0702', `invalid --output "${value}": type=local cannot write to stdout`, { hint: 'use type=tar,dest=- (or -o -) for a tarball of the files' });
    if (probe.type === 'oci' && !probe.tar) throw new EngineError('KLN0702', `invalid --output "${value}": type=oci,tar=false writes a directory and cannot write to stdout`, { hint: 'drop tar=false' });
    if (toStdout !== undefined) throw new EngineError('KLN0702', `invalid --output "${value}": only one output can be written to stdout`);
    toStdout = specs.length;
    specs.push(probe);
    raw.push(v);
  }
  if (toStdout === undefined) return { specs };
  if (stdout.isTTY === true) {
    throw new EngineError('KLN0702', `--output ${raw[toStdout] ?? '-'}: refusing to write an archive to a terminal`, { hint: 'redirect standard output (> out.tar) or pass dest=FILE' });
  }
  const dir = await mkdtemp(join(tmpdir(), 'kiln-stdout-'));
  const file = join(dir, 'out.tar');
  const probe = specs[toStdout];
  if (probe !== undefined && probe.type !== 'image') specs[toStdout] = { ...probe, dest: file };
  return {
    specs,
    stdout: {
      file,
      copyTo: (out) => copyFile(file, out),
      remove: () => rm(dir, { recursive: true, force: true }),
    },
  };
}

/** Copies `file` to `out` in 1 MiB chunks, waiting for `drain` when the stream is full. */
async function copyFile(file: string, out: OutputStream): Promise<void> {
  const fh = await open(file, 'r');
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(1 << 20);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      const more = out.write(buf.subarray(0, bytesRead));
      if (more === false && out.once !== undefined) await new Promise<void>((resolve) => out.once?.('drain', resolve));
    }
  } finally {
    await fh.close();
  }
}
