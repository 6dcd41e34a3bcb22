import { chmod, chown } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A unix socket that forwards every connection to an ssh-agent socket on the host. */
export interface SshProxy {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listens on `path` (owned by uid:gid with `mode`, so a non-root user in the container can use it)
 * and pipes each connection to `agentSocket`. The agent itself never becomes visible in the container.
 */
export async function startSshProxy(path: string, agentSocket: string, mode: number, uid: number, gid: number): Promise<SshProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(agentSocket);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  server.unref();
  await chown(path, uid, gid);
  await chmod(path, mode);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
