/**
 * kiln's frontend image entry: what runs inside a frontend container that buildkitd (or kiln's
 * `gateway.v0`) started from an image. It connects LLBBridge on stdin/stdout, runs one of kiln's
 * built-in frontends through it, and calls Return (or Return with an error). stdout carries
 * gRPC only; logs and errors go to stderr, which the daemon shows as the frontend's log.
 *
 * Packed as the standalone file cli/dist/frontend.cjs (cli/scripts/bundle.mjs), run as
 * `node frontend.cjs [frontend]` with the frontend's name as the first argument
 * (default `dockerfile.v0`; also `kiln/ts`, `kiln/buildpacks`). See docs/llbbridge.md.
 *
 * Like BuildKit's Dockerfile frontend image, the Dockerfile frontend here forwards a `# syntax=`
 * (or `build-arg:BUILDKIT_SYNTAX`) naming another frontend: the gateway that started this
 * container did no selection for it (it ran an image, not `dockerfile.v0`).
 */
import { Console } from 'node:console';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { DOCKERFILE_FRONTEND, GATEWAY_FRONTEND, connectLLBBridge, selectFrontend, type BridgeFrontendClient, type FrontendRegistry } from '@kiln/gateway';
import type { FrontendClient, FrontendResult } from '@kiln/llb-core';
import { createFrontendRegistry } from './engine/frontends.js';

/** What {@link frontendMain} talks through: the LLBBridge stream, the log, the environment. */
export interface FrontendMainIo {
  /** The LLBBridge connection (stdin for reading, stdout for writing). */
  readonly stream: Duplex;
  /** Log lines and errors. */
  readonly stderr: Pick<Writable, 'write'>;
  /** `BUILDKIT_FRONTEND_OPT_<n>` and the rest of the environment buildkitd sets. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  return `${typeof code === 'string' ? `${code}: ` : ''}${e.message}`;
}

/**
 * Runs the built-in frontend `argv[0]` (default `dockerfile.v0`) over LLBBridge and resolves to
 * the exit code: 0 after a Return with the result, 1 after a Return with the error (or when
 * the bridge itself failed).
 */
export async function frontendMain(argv: readonly string[], io: FrontendMainIo): Promise<number> {
  const name = argv[0] ?? DOCKERFILE_FRONTEND;
  const log = (line: string): void => {
    io.stderr.write(`${line}\n`);
  };
  let client: BridgeFrontendClient;
  try {
    client = await connectLLBBridge(io.stream, io.env, { log });
  } catch (e) {
    log(`kiln frontend: cannot connect to LLBBridge: ${describe(e)}`);
    return 1;
  }
  let result: FrontendResult;
  try {
    result = await runFrontend(name, client, createFrontendRegistry());
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    log(`kiln frontend ${name}: ${describe(error)}`);
    await client.returnError(error).catch((r: unknown) => log(`kiln frontend: Return failed: ${describe(r)}`));
    return 1;
  }
  try {
    await client.return(result);
  } catch (e) {
    log(`kiln frontend: Return failed: ${describe(e)}`);
    return 1;
  }
  return 0;
}

/**
 * Runs the built-in frontend `name` on `client`. For the Dockerfile frontend, first the syntax
 * selection a gateway does before it (`selectFrontend`: never again once opts carry `cmdline`,
 * `build-arg:BUILDKIT_SYNTAX`, the entry file's directive): a `docker/dockerfile[:…]` syntax stays
 * here (kiln's offline alias, as in process), a frontend this program has built in (`kiln/ts`,
 * `kiln/buildpacks`) runs here with `source` and `cmdline` set, and any other reference is
 * forwarded as BuildKit's dockerfile builder does (`forwardGateway`): `solveFrontend` of
 * `gateway.v0` with the opts plus `source` and `cmdline`, and this frontend's inputs; its result
 * is this frontend's result.
 */
export async function runFrontend(name: string, client: BridgeFrontendClient, registry: FrontendRegistry): Promise<FrontendResult> {
  // No inputs (buildctl --frontend gateway.v0): the Dockerfile is in the local source, as for dockerui.
  const selected = await selectFrontend(client, name, { localEntry: true });
  if (!selected.forwarded) return registry.resolve(selected.name)(client);
  const local = registry.get(selected.name);
  if (local !== undefined) return local(withOpts(client, selected.opts));
  return client.solveFrontend({ frontend: GATEWAY_FRONTEND, opts: selected.opts, inputs: client.inputs });
}

/** `client` with other frontend options (a FrontendClient delegating every call to it). */
function withOpts(client: BridgeFrontendClient, opts: ReadonlyMap<string, string>): FrontendClient {
  return {
    opts,
    inputs: client.inputs,
    solve: (r) => client.solve(r),
    solveFrontend: (r) => client.solveFrontend(r),
    resolveImageConfig: (ref, o) => client.resolveImageConfig(ref, o),
    warn: (w) => client.warn(w),
    log: (line) => client.log(line),
    ...(client.signal === undefined ? {} : { signal: client.signal }),
  };
}

/**
 * The process entry of cli/dist/frontend.cjs: console output moves to stderr (a stray
 * `console.log` must not corrupt the gRPC stream on stdout), then {@link frontendMain} runs on
 * the process's stdin/stdout and the process exits with its code once stdout is flushed.
 */
export async function runFrontendProcess(): Promise<never> {
  globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });
  const stdin: Readable = process.stdin;
  const stdout: Writable = process.stdout;
  const code = await frontendMain(process.argv.slice(2), { stream: Duplex.from({ readable: stdin, writable: stdout }), stderr: process.stderr, env: process.env });
  if (stdout.writableLength > 0) await new Promise((resolve) => stdout.once('drain', resolve));
  process.exit(code);
}
