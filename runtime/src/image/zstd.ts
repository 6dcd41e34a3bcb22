import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImageStoreError } from '../content/errors.js';

/**
 * Pipes bytes through the `zstd` binary (Node 20's zlib has no zstd): `['-d']` to decode, or a
 * level such as `['-3', '-T0']` to encode. A missing binary is `PREREQUISITE_MISSING`.
 */
export async function* zstdTransform(source: AsyncIterable<Uint8Array>, args: ReadonlyArray<string>): AsyncIterable<Uint8Array> {
  const child = spawn('zstd', ['-q', '-c', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new ImageStoreError('PREREQUISITE_MISSING', 'zstd is not installed', { hint: 'apt-get install -y zstd', cause: e })
          : e,
      ),
    );
    child.once('close', resolve);
  });
  exited.catch(() => undefined);
  const feeding = pipeline(Readable.from(source), child.stdin);
  feeding.catch(() => child.kill('SIGKILL'));
  try {
    for await (const c of child.stdout) yield c as Buffer;
    await feeding;
    const code = await exited;
    if (code !== 0) throw new ImageStoreError('EXPORT_FAILED', `zstd ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
