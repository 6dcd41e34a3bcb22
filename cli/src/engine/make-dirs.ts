// Moved to the runtime, which makes the local cache layout with it too (runtime must not import cli).
export { danglingLink, makeDirs } from '@kiln/runtime';
