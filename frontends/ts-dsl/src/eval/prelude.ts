/**
 * The first module of every bundled build: it runs before any build code and takes away the
 * process methods Node 20's permission model leaves open. `process.kill` (and its raw `_kill`)
 * can signal any process of the user (root, for kiln): SIGUSR1 opens a Node parent's inspector
 * on 127.0.0.1:9229, which build code could then drive over the network, outside the sandbox;
 * `_debugProcess` does the same directly. `getBuiltinModule` would hand out `node:net` (unix
 * sockets such as the daemon's) past the import hooks; `binding`, `_linkedBinding` and `dlopen`
 * reach native code. Each becomes a function that throws, fixed so build code cannot put the
 * original back; so do the network globals (`fetch`, `WebSocket`, `EventSource`). Before that,
 * started as root, it gives up root for nobody.
 */

/** The unprivileged user and group the evaluator runs as when started as root. */
const NOBODY = 65534;

// Run as root (kiln builds are: runc, overlayfs), first give up root: the bundle and the hooks
// are already read, the protocol pipes stay open, and whatever build code might still reach (a
// process to signal, a socket such as the root daemon's, a file) is then out of reach of nobody.
if (process.getuid?.() === 0) {
  process.setgroups?.([]);
  process.setgid?.(NOBODY);
  process.setuid?.(NOBODY);
}

// stdout carries the protocol to kiln: every console method writes to stderr instead, from the
// build module's first top-level line on (a Console whose two streams are both stderr, so dir,
// table, group, count and timeLog, which write to stdout, follow too).
globalThis.console = new console.Console({ stdout: process.stderr, stderr: process.stderr });

const BLOCKED = ['kill', '_kill', '_debugProcess', '_debugEnd', 'getBuiltinModule', 'binding', '_linkedBinding', 'dlopen'] as const;

for (const name of BLOCKED) {
  const blocked = (): never => {
    throw new Error(`process.${name} is not available in a build file`);
  };
  Object.defineProperty(process, name, { value: blocked, writable: false, configurable: false, enumerable: false });
}

// Node 20's permission model has no network permission, and the built-ins that reach the
// network are refused when bundling and by the import hooks; what is left are these globals.
// A build file reads its inputs through ctx (sources the solver fetches and caches), never
// directly, so its LLB stays a function of those inputs.
for (const name of ['fetch', 'WebSocket', 'EventSource'] as const) {
  if (!(name in globalThis)) continue;
  const blocked = (): never => {
    throw new Error(`${name} is not available in a build file: the network is reached through sources (image(), git(), http()), which the solver fetches and caches`);
  };
  Object.defineProperty(globalThis, name, { value: blocked, writable: false, configurable: false, enumerable: false });
}
// undici keeps the socket pool behind fetch on this global symbol, made on first use (kiln's own
// evaluator code never fetches): pinned empty, it can neither be made nor reached.
Object.defineProperty(globalThis, Symbol.for('undici.globalDispatcher.1'), { value: undefined, writable: false, configurable: false, enumerable: false });

export {};
