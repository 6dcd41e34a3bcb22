import { chmod, chown } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A unix socket that forwards every connection to an ssh-agent socket on the host. */
export interface SshProxy {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Listens on `path` (owned by uid:gid with `mode`, so a non-root user in the container can use it)
 * and pipes each connection to `agent`: a socket path, or a function that names, for each new
 * connection, the agents to try in turn, so a shared step keeps working when the build whose agent
 * it used first leaves, or its agent dies while the build is still attached (BuildKit picks one
 * session's agent when the step's container starts and keeps it for the whole step). A
 * connection no agent takes is closed: the client in the container sees its agent refuse. The
 * agent itself never becomes visible in the container.
 */
export async function startSshProxy(path: string, agent: string | (() => readonly string[]), mode: number, uid: number, gid: number): Promise<SshProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    let agents: readonly string[];
    try {
      agents = typeof agent === 'string' ? [agent] : agent();
    } catch {
      // A 'connection' listener that throws is an uncaught exception: the whole daemon would die
      // for one connection nobody can serve.
      agents = [];
    }
    sockets.add(client);
    // What the client sends meanwhile waits in its stream until an agent is connected.
    client.pause();
    let gone = false;
    const dropClient = (): void => {
      gone = true;
      client.destroy();
      sockets.delete(client);
    };
    client.on('error', dropClient).on('close', dropClient);
    const connect = (i: number): void => {
      const agentSocket = agents[i];
      if (gone) return;
      if (agentSocket === undefined) return dropClient();
      const upstream = createConnection(agentSocket);
      sockets.add(upstream);
      // Not answering (socket gone, agent dead): the next build's agent.
      const next = (): void => {
        upstream.destroy();
        sockets.delete(upstream);
        connect(i + 1);
      };
      upstream.once('error', next);
      upstream.once('connect', () => {
        upstream.off('error', next);
        const drop = (): void => {
          dropClient();
          upstream.destroy();
          sockets.delete(upstream);
        };
        if (gone) return drop();
        client.off('error', dropClient).off('close', dropClient);
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.pipe(upstream).pipe(client);
      });
    };
    connect(0);
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
