import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseOutputSpec, parseReference, type ExportSpec } from '@kiln/runtime';
import type { CliIo } from '../io.js';
import { EngineError } from './errors.js';
import { fileTarget, removeMadeDirs, type FileTarget } from './file-target.js';

/** The caller's standard output as the CLI sees it (a process stream, or a daemon client's frames). */
export interface OutputStream {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean;
  once?(event: 'drain', listener: () => void): unknown;
}

/**
 * An archive output that cannot be written where it goes by the exporter's atomic rename: the
 * caller's stdout (`-o -`, `dest=-`, `dest=/dev/stdout`) or an existing device or FIFO
 * (`dest=/dev/null`). The exporter writes a private temporary file, which is copied there once
 * the build has succeeded (a failed build writes nothing).
 */
export interface RedirectedOutput {
  /** The temporary file the exporter writes. */
  readonly file: string;
  /** The destination as the user gave it, for progress and the summary. */
  readonly display: string;
  readonly target: FileTarget;
}

/** The `--output` values parsed, with absolute destinations. */
export interface ParsedOutputs {
  readonly specs: ExportSpec[];
  readonly redirects: readonly RedirectedOutput[];
  /** Copies every redirected archive to its destination. */
  deliver(io: CliIo): Promise<void>;
  /** Removes the temporary files, and the parent directories made for a destination that stayed empty (idempotent). */
  remove(): Promise<void>;
}

/**
 * Parses `--output` values as buildx does: `-` is `type=tar,dest=-`, and `dest=-` writes the
 * archive to stdout. Destinations resolve against the caller's directory (missing parents are
 * made). `type=local` and `type=oci,tar=false` make directories and cannot go to stdout or a
 * device; at most one output goes to stdout; an archive is not written to a terminal. `tags`
 * (`-t`) name the image outputs that name none, as buildx fills them in.
 */
export async function parseOutputs(values: readonly string[], io: CliIo, tags: readonly string[] = []): Promise<ParsedOutputs> {
  const specs: ExportSpec[] = [];
  const redirects: RedirectedOutput[] = [];
  let dir: string | undefined;
  // Parents made for new destinations: a refused or failed build leaves no empty directories behind.
  const made: string[] = [];
  const remove = async (): Promise<void> => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    await removeMadeDirs(made);
  };
  // As buildx, before anything runs: a bad -t failed only when the built image was exported.
  for (const tag of tags) {
    try {
      parseReference(tag);
    } catch (cause) {
      const why = (cause as Error).message.replace(/^invalid image reference "[^"]*": /, '');
      throw new EngineError('KLN0702', `invalid tag "${tag}": ${why}`, { hint: 'use -t [REGISTRY/]NAME[:TAG], lowercase, e.g. app:1.0 or localhost:5000/team/app' });
    }
  }
  try {
    let toStdout: string | undefined;
    for (const value of values) {
      const v = value.trim() === '-' ? 'type=tar,dest=-' : value;
      const fields = v.split(',');
      const at = fields.findIndex((f) => f.trim().toLowerCase() === 'dest=-');
      // dest=- parsed with a placeholder: the exporter type and its attributes decide what is allowed.
      const spec = parseOutputSpec(at < 0 ? v : [...fields.slice(0, at), 'dest=-stdout-', ...fields.slice(at + 1)].join(','), { names: tags });
      if (spec.type === 'image') {
        specs.push(spec);
        continue;
      }
      const directory = spec.type === 'local' || (spec.type === 'oci' && !spec.tar);
      const target: FileTarget = at >= 0 ? { kind: 'stdout', given: '-' } : await fileTarget(io, '--output', spec.dest, directory ? 'directory' : 'file', made);
      if (target.kind === 'file') {
        specs.push({ ...spec, dest: target.path });
        continue;
      }
      if (directory) {
        const what = spec.type === 'local' ? 'type=local' : 'type=oci,tar=false';
        const where = target.kind === 'special' ? `${target.given}, which is not a directory` : 'stdout';
        throw new EngineError('KLN0702', `invalid --output "${value}": ${what} writes a directory and cannot write to ${where}`, {
          hint: target.kind === 'special' ? 'pass dest=DIR' : 'use type=tar,dest=- (or -o -) for a tarball of the files',
        });
      }
      if (target.kind === 'stdout') {
        if (toStdout !== undefined) throw new EngineError('KLN0702', `invalid --output "${value}": only one output can be written to stdout (${toStdout} does)`);
        toStdout = value;
        refuseTerminal(io, `--output ${value}`, 'dest=FILE');
      }
      dir ??= await mkdtemp(join(tmpdir(), 'kiln-output-'));
      const file = join(dir, `${redirects.length}.tar`);
      redirects.push({ file, display: target.given, target });
      specs.push({ ...spec, dest: file });
    }
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    specs,
    redirects,
    deliver: async (io2) => {
      for (const r of redirects) await deliverArchive(io2, r.file, r.target);
    },
    remove,
  };
}

/** Where one archive goes (see {@link archiveDest}). */
export interface ArchiveDest {
  /** The path the exporter writes: the destination itself, or a temporary file. */
  readonly path: string;
  readonly target: FileTarget;
  /** Copies a temporary file to the destination (nothing when the exporter wrote it there). */
  deliver(): Promise<void>;
  remove(): Promise<void>;
}

/**
 * One archive destination (`kiln save -o`): `-` and `/dev/stdout` are the caller's stdout (not a
 * terminal), a device or FIFO is written in place after the fact, anything else is the path.
 */
export async function archiveDest(io: CliIo, flag: string, given: string): Promise<ArchiveDest> {
  const target: FileTarget = given === '-' ? { kind: 'stdout', given } : await fileTarget(io, flag, given);
  if (target.kind === 'file') return { path: target.path, target, deliver: async () => undefined, remove: async () => undefined };
  if (target.kind === 'stdout') refuseTerminal(io, `${flag} ${given}`, `${flag} FILE`);
  const dir = await mkdtemp(join(tmpdir(), 'kiln-output-'));
  const path = join(dir, 'out.tar');
  return {
    path,
    target,
    deliver: () => deliverArchive(io, path, target),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** An archive is not written to a terminal (buildx refuses it too). */
function refuseTerminal(io: CliIo, what: string, instead: string): void {
  if ((io.stdout as OutputStream).isTTY === true) {
    throw new EngineError('KLN0702', `${what}: refusing to write an archive to a terminal`, { hint: `redirect standard output (> out.tar) or pass ${instead}` });
  }
}

/** Copies the archive the exporter wrote to `file` where `target` names: a device or FIFO, or the caller's stream. */
async function deliverArchive(io: CliIo, file: string, target: FileTarget): Promise<void> {
  if (target.kind === 'special') await pipeline(createReadStream(file), createWriteStream(target.path));
  else await copyFile(file, (target.kind === 'stderr' ? io.stderr : io.stdout) as OutputStream);
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
