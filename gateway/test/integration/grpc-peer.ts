/**
 * Running the grpcio peers of the LLBBridge interop tests (grpc_peer.py, grpc_exec_peer.py):
 * Debian's python3 with python3-grpcio, unix sockets in a temp dir, one JSON line per step.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** Debian's python3, where apt installs python3-grpcio (a pyenv python3 first on PATH would not see it). */
export const PYTHON = '/usr/bin/python3';

/** Fails with the install command when grpcio is missing. */
export function requireGrpcio(): void {
  const r = spawnSync(PYTHON, ['-c', 'import grpc'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`missing prerequisite (grpcio for python3): apt-get install -y python3-grpcio\n${r.stderr ?? ''}`);
}

/** Socket paths in temp dirs made on demand; `cleanup` removes them all. */
export function socketDirs(prefix: string): { path(): Promise<string>; cleanup(): Promise<void> } {
  const dirs: string[] = [];
  return {
    async path() {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dirs.push(dir);
      return join(dir, 's.sock');
    },
    async cleanup() {
      for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
    },
  };
}

/** Runs a peer script; resolves with its JSON lines once it exits 0, calling `onLine` as they come. */
export function runPeer<L>(script: string, args: readonly string[], onLine: (l: L) => void = () => undefined): Promise<L[]> {
  const child = spawn(PYTHON, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: L[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (l) => {
    const parsed = JSON.parse(l) as L;
    lines.push(parsed);
    onLine(parsed);
  });
  return new Promise((resolve, reject) =>
    child.once('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`${script} ${args[0] ?? ''} exited ${code}: ${stderr}`)))),
  );
}
