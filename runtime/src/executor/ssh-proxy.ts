import { chmod, chown } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A unix socket that forwards every connection to an ssh-agent socket on the host. */
export interface SshProxy {
  readonly path: string;
  close(): Promise<void>;
}

/** How long an agent may take to answer (`KILN_SSH_AGENT_TIMEOUT`, seconds; 10 by default). */
function agentTimeoutMs(): number {
  const s = Number(process.env['KILN_SSH_AGENT_TIMEOUT']);
  return Number.isFinite(s) && s > 0 ? s * 1000 : 10_000;
}

/**
 * Per agent socket, the proxied connections the agent has answered before and that wait for its
 * answer to a later request. OpenSSH's agent answers nobody while it asks the owner to confirm
 * a key's use (`ssh-add -c`), or a security key waits for a touch: a first request waiting behind
 * that is not a stuck agent, and cutting it off failed the client ('communication with agent failed').
 * (An agent stopped while such a request is pending holds the new connections as it holds that one.)
 */
const waitedOn = new Map<string, Set<object>>();
/** Per agent socket, when it last answered a proxied connection (see {@link busy}). */
const answeredAt = new Map<string, number>();

/** `conn` sent `agent` a request, had its answer, or is closed. */
function waiting(agent: string, conn: object, now: 'asked' | 'answered' | 'closed'): void {
  const set = waitedOn.get(agent) ?? new Set<object>();
  if (now === 'asked') set.add(conn);
  else if (set.delete(conn) && now === 'answered') {
    const t = Date.now();
    // a daemon sees a socket per build: old ones go
    for (const [a, at] of answeredAt) if (t - at > 600_000) answeredAt.delete(a);
    answeredAt.set(agent, t);
  }
  if (set.size > 0) waitedOn.set(agent, set);
  else waitedOn.delete(agent);
}

/** Whether `agent` is busy with another request, or answered one within `ms`: then it is no stuck agent. */
function busy(agent: string, ms: number): boolean {
  return waitedOn.has(agent) || Date.now() - (answeredAt.get(agent) ?? -Infinity) < ms;
}

/**
 * Listens on `path` (owned by uid:gid with `mode`, so a non-root user in the container can use it)
 * and pipes each connection to `agent`: a socket path, or a function that names, for each new
 * connection, the agents to try in turn, so a shared step keeps working when the build whose agent
 * it used first leaves, or its agent dies while the build is still attached (BuildKit picks one
 * session's agent when the step's container starts and keeps it for the whole step). An agent
 * that accepts but has not answered the client's first request within `answerWithinMs` (a
 * stopped or stuck agent, which the client would wait on for ever; not while it is still busy with
 * another proxied connection's request, see {@link waitedOn}) is given up too: the next one
 * gets what the client sent so far. A connection no agent takes is closed: the client in the
 * container sees its agent refuse. The agent itself never becomes visible in the container.
 */
export async function startSshProxy(
  path: string,
  agent: string | (() => readonly string[]),
  mode: number,
  uid: number,
  gid: number,
  answerWithinMs = agentTimeoutMs(),
): Promise<SshProxy> {
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
    // What the client sent that no agent has answered yet: sent again to the next agent.
    const unanswered: Buffer[] = [];
    const connect = (i: number): void => {
      const agentSocket = agents[i];
      if (gone) return;
      if (agentSocket === undefined) return dropClient();
      const upstream = createConnection(agentSocket);
      sockets.add(upstream);
      // Not answering (socket gone, agent dead, silent): the next build's agent.
      const next = (): void => {
        upstream.destroy();
        sockets.delete(upstream);
        connect(i + 1);
      };
      upstream.once('error', next);
      upstream.once('connect', () => {
        upstream.off('error', next);
        const conn = {};
        const drop = (): void => {
          clearTimeout(timer);
          waiting(agentSocket, conn, 'closed');
          dropClient();
          upstream.destroy();
          sockets.delete(upstream);
        };
        let timer: NodeJS.Timeout | undefined;
        if (gone) return drop();
        const silent = (): void => {
          if (busy(agentSocket, answerWithinMs)) {
            timer = setTimeout(silent, answerWithinMs).unref();
            return;
          }
          client.off('data', request).pause();
          client.off('error', drop).off('close', drop).on('error', dropClient).on('close', dropClient);
          upstream.off('error', drop).off('close', drop);
          next();
        };
        const request = (d: Buffer): void => {
          unanswered.push(d);
          upstream.write(d);
          timer ??= setTimeout(silent, answerWithinMs).unref();
        };
        client.off('error', dropClient).off('close', dropClient);
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        upstream.once('data', (answer: Buffer) => {
          // It answers: from now on a plain pipe, however long the agent takes (a key that asks
          // its owner to confirm each use).
          clearTimeout(timer);
          unanswered.length = 0;
          client.off('data', request);
          client.write(answer);
          // ssh waits for each answer before its next request: pending from a request to its answer
          client.on('data', () => waiting(agentSocket, conn, 'asked'));
          upstream.on('data', () => waiting(agentSocket, conn, 'answered'));
          client.pipe(upstream);
          upstream.pipe(client);
        });
        for (const d of unanswered.splice(0)) request(d);
        client.on('data', request);
        client.resume();
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
