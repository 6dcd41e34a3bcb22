import { chmod, chown } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A unix socket that forwards every connection to an ssh-agent socket on the host. */
export interface SshProxy {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listens on `path` (owned by uid:gid with `mode`, so a non-root user in the container can use it)
 * and pipes each connection to `agent`: a socket path, or a function that names the agent for each
 * new connection (BuildKit's sshforward asks its session group per connection), so a shared step
 * keeps working when the build whose agent it used first leaves. A connection no agent is named
 * for is closed at once: the client in the container sees its agent refuse. The agent itself
 * never becomes visible in the container.
 */
export async function startSshProxy(path: string, agent: string | (() => string | undefined), mode: number, uid: number, gid: number): Promise<SshProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    let agentSocket: string | undefined;
    try {
      agentSocket = typeof agent === 'string' ? agent : agent();
    } catch {
      // A 'connection' listener that throws is an uncaught exception: the whole daemon would die
      // for one connection nobody can serve.
      agentSocket = undefined;
    }
    if (agentSocket === undefined) {
      client.destroy();
      return;
    }
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
