/**
 * Errors of the `kiln/buildpacks` frontend, shaped like the other frontends' KilnError: a stable
 * `code`, a one-line message, an optional location (file, 1-based line and column) and a hint.
 */

/** Stable error codes of the `kiln/buildpacks` frontend. */
export type BuildpacksErrorCode =
  /** A TOML file (project.toml, buildpack.toml, order.toml, a layer's toml…) is invalid. */
  | 'KLN0901'
  /** A buildpack named by the order or project.toml is not in the builder, or the order is malformed. */
  | 'KLN0902'
  /** No buildpack group passed detection (lifecycle exit 20). */
  | 'KLN0903'
  /** A buildpack's detect failed with another status than 0 or 100 (lifecycle exit 21). */
  | 'KLN0904'
  /** A buildpack's build output is invalid (layer metadata, processes, reserved names). */
  | 'KLN0905'
  /** A feature the frontend does not support (remote buildpack URIs, …). */
  | 'KLN0906'
  /** An invalid frontend option. */
  | 'KLN0907'
  /** An image extension's generate output breaks the rules (its Dockerfiles, extend-config.toml). */
  | 'KLN0908'
  /** An image extension's Dockerfile could not be applied (the Dockerfile frontend failed, a run image left to root). */
  | 'KLN0909';

/** A position in a file (1-based line and column). */
export interface BuildpacksLocation {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** An error a user of the `kiln/buildpacks` frontend sees. */
export class BuildpacksError extends Error {
  override readonly name = 'BuildpacksError';
  readonly code: BuildpacksErrorCode;
  readonly location: BuildpacksLocation | undefined;
  readonly hint: string | undefined;

  constructor(code: BuildpacksErrorCode, message: string, extra: { location?: BuildpacksLocation | undefined; hint?: string; cause?: unknown } = {}) {
    const where = extra.location === undefined ? '' : `${extra.location.file}:${extra.location.line}:${extra.location.column}: `;
    super(`${where}${message}`, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.location = extra.location;
    this.hint = extra.hint;
  }
}
