/**
 * Where in the build file a DSL call was made, read from the call stack: inside the evaluator
 * build files are bundled under the `kiln-build:` namespace and Node maps stack positions back
 * through the bundle's inline source map, so a frame reads `kiln-build:<file>:<line>:<column>`.
 * Outside the evaluator (unit tests, plain scripts) there is no such frame.
 */

/** A position in a build file (1-based line and column). */
export interface BuildLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** The first frame of `stack` that is in a build file. */
export function buildFrame(stack: string | undefined): BuildLocation | undefined {
  if (stack === undefined) return undefined;
  for (const line of stack.split('\n')) {
    const m = /kiln-build:(.+?):(\d+):(\d+)\)?\s*$/.exec(line);
    if (m) return { file: m[1] as string, line: Number(m[2]), column: Number(m[3]) };
  }
  return undefined;
}

/** The build-file location of the current call, if it comes from a build file. */
export function callerLocation(): BuildLocation | undefined {
  return buildFrame(new Error().stack);
}

/**
 * Records on `e` where the build made the call it failed for (a call whose failure comes later,
 * from the parent or at lowering, when the build file is no longer on the stack). The first
 * location recorded wins; returns `e`.
 */
export function withBuildLocation(e: unknown, at: BuildLocation | undefined): unknown {
  if (at !== undefined && e instanceof Error && buildLocationOf(e) === undefined) Object.defineProperty(e, 'buildLocation', { value: at, enumerable: false });
  return e;
}

/** The location {@link withBuildLocation} recorded, if any. */
export function buildLocationOf(e: Error): BuildLocation | undefined {
  const at = (e as { buildLocation?: unknown }).buildLocation;
  return typeof at === 'object' && at !== null ? (at as BuildLocation) : undefined;
}
